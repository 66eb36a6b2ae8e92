/**
 * OpenBLAS through Deno's FFI, for the "blas" KME scoring engine (blas_kme.ts, `cblas_sgemm`)
 * and the linear probe's products (logistic_products.ts, `cblas_dgemm`), plus three
 * informational calls. Optional: `findOpenBlas()` only looks for the
 * file (cheap, loads nothing: it feeds the cache-key facet), `loadOpenBlas()` opens it.
 *
 * Where: $KME_OPENBLAS (a path to the library, or "none" to never use it), else the usual
 * names in $LD_LIBRARY_PATH and the usual library folders (Debian/Ubuntu multiarch, lib64,
 * /usr/local, Homebrew). Debian: `apt-get install libopenblas0`.
 *
 * OpenBLAS picks its kernels for the CPU when it loads (`corename`: e.g. Haswell = AVX2 + FMA,
 * SkylakeX = AVX-512); $OPENBLAS_CORETYPE overrides the choice. Scores agree with the wasm
 * engine's to f32 rounding, not bit for bit, and may differ in the last bits between
 * corenames; the protocol records the corename.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";

/** The engine cannot run here; a setup problem the user fixes, so exit code 2, no stack. */
export class OpenBlasUnavailableError extends Error {
  override name = "OpenBlasUnavailableError";
  readonly exitCode = 2;
}

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env: behave as if unset
  }
}

const NAMES = Deno.build.os === "darwin"
  ? ["libopenblas.0.dylib", "libopenblas.dylib"]
  : ["libopenblas.so.0", "libopenblas.so"];

const DIRS = [
  "/usr/lib/x86_64-linux-gnu",
  "/lib/x86_64-linux-gnu",
  "/usr/lib/aarch64-linux-gnu",
  "/lib/aarch64-linux-gnu",
  "/usr/lib64",
  "/usr/lib",
  "/usr/local/lib",
  "/opt/homebrew/opt/openblas/lib",
  "/usr/local/opt/openblas/lib",
];

/**
 * The OpenBLAS library file to use, or undefined (none found, or $KME_OPENBLAS=none).
 * Throws when $KME_OPENBLAS names a file that does not exist (a typo should not silently
 * fall back to the slower engine).
 */
export function findOpenBlas(): string | undefined {
  const forced = env("KME_OPENBLAS");
  if (forced !== undefined && forced !== "") {
    if (forced === "none") return undefined;
    if (!existsSync(forced)) {
      throw new OpenBlasUnavailableError(
        `KME_OPENBLAS=${forced}: no such file (expected the path of libopenblas, or "none")`,
      );
    }
    return forced;
  }
  const dirs = [...(env("LD_LIBRARY_PATH") ?? "").split(":").filter(Boolean), ...DIRS];
  for (const d of dirs) {
    for (const n of NAMES) {
      const p = join(d, n);
      if (existsSync(p)) return p;
    }
  }
  return undefined;
}

const SYMBOLS = {
  cblas_sgemm: {
    parameters: [
      "i32", // order
      "i32", // transA
      "i32", // transB
      "i32", // M
      "i32", // N
      "i32", // K
      "f32", // alpha
      "pointer", // A
      "i32", // lda
      "pointer", // B
      "i32", // ldb
      "f32", // beta
      "pointer", // C
      "i32", // ldc
    ],
    result: "void",
  },
  cblas_dgemm: {
    parameters: [
      "i32", // order
      "i32", // transA
      "i32", // transB
      "i32", // M
      "i32", // N
      "i32", // K
      "f64", // alpha
      "buffer", // A
      "i32", // lda
      "buffer", // B
      "i32", // ldb
      "f64", // beta
      "buffer", // C
      "i32", // ldc
    ],
    result: "void",
  },
  openblas_set_num_threads: { parameters: ["i32"], result: "void" },
  openblas_get_corename: { parameters: [], result: "pointer" },
  openblas_get_config: { parameters: [], result: "pointer" },
} as const;

const ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112;

export interface OpenBlas {
  path: string;
  /** The kernel family OpenBLAS chose for this CPU, e.g. "Haswell", "SkylakeX". */
  corename: string;
  /** Build configuration, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64". */
  config: string;
  /**
   * C[m x n] = A[m x k] B[n x k]^T, all row-major f32 at the given pointers (lda = ldb = k).
   * Runs on the calling thread (OpenBLAS's own threads are set to 1: callers parallelise).
   */
  sgemmABt(
    m: number,
    n: number,
    k: number,
    a: Deno.PointerValue,
    b: Deno.PointerValue,
    c: Deno.PointerValue,
    ldc: number,
  ): void;
  /**
   * C[m x n] = op(A) op(B), row-major f64, op = transpose when the flag is set (A is [k x m]
   * then, B [n x k]); leading dimensions are the stored row lengths. One thread, as sgemmABt.
   */
  dgemm(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    a: Float64Array,
    lda: number,
    b: Float64Array,
    ldb: number,
    c: Float64Array,
    ldc: number,
  ): void;
}

let loaded: OpenBlas | undefined;

const KME_WAY_OUT =
  'use the "wasm" engine (retrieval param `kme_engine: wasm`, or KME_OPENBLAS=none)';

/**
 * Opens OpenBLAS (once per thread) or throws OpenBlasUnavailableError saying why, ending with
 * `wayOut` (what the user can do instead).
 */
export function loadOpenBlas(wayOut = KME_WAY_OUT): OpenBlas {
  const WAY_OUT = wayOut;
  if (loaded) return loaded;
  const path = findOpenBlas();
  if (!path) {
    throw new OpenBlasUnavailableError(
      "OpenBLAS not found (looked for libopenblas in $LD_LIBRARY_PATH and the usual library " +
        "folders; $KME_OPENBLAS names it explicitly). Install it (Debian: apt-get install " +
        `libopenblas0) or ${WAY_OUT}.`,
    );
  }
  let lib;
  try {
    lib = Deno.dlopen(path, SYMBOLS);
  } catch (e) {
    throw new OpenBlasUnavailableError(
      `cannot open ${path} as OpenBLAS (${e instanceof Error ? e.message : e}); ${WAY_OUT}`,
    );
  }
  const s = lib.symbols;
  const cstr = (p: Deno.PointerValue) => p ? new Deno.UnsafePointerView(p).getCString() : "";
  const config = cstr(s.openblas_get_config()).trim();
  // Scoring workers call sgemm concurrently, one OpenBLAS thread each; releases before 0.3.7
  // were not safe to call from several threads at once (wrong results, no error).
  const v = /OpenBLAS (\d+)\.(\d+)\.(\d+)/.exec(config);
  const [maj, min, patch] = v ? [+v[1], +v[2], +v[3]] : [0, 0, 0];
  if (!(maj > 0 || min > 3 || (min === 3 && patch >= 7))) {
    lib.close();
    throw new OpenBlasUnavailableError(
      `${path}: "${config}" is not OpenBLAS 0.3.7 or later, which concurrent scoring needs; ` +
        WAY_OUT,
    );
  }
  s.openblas_set_num_threads(1);
  loaded = {
    path,
    corename: cstr(s.openblas_get_corename()),
    config,
    sgemmABt(m, n, k, a, b, c, ldc) {
      s.cblas_sgemm(ROW_MAJOR, NO_TRANS, TRANS, m, n, k, 1, a, k, b, k, 0, c, ldc);
    },
    dgemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc) {
      const ta = transA ? TRANS : NO_TRANS, tb = transB ? TRANS : NO_TRANS;
      s.cblas_dgemm(ROW_MAJOR, ta, tb, m, n, k, 1, a, lda, b, ldb, 0, c, ldc);
    },
  };
  return loaded;
}
