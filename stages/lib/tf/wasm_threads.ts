/**
 * tfjs-backend-wasm 4.22's threads under Deno: the thread count policy and what it takes to start
 * the threaded module at all (see `startWasm`).
 */
import { existsSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import type { Tf } from "./backend.ts";
import { BackendUnavailableError } from "./backend_error.ts";
import { wasmBinaryDir } from "./package_paths.ts";

/** Environment variable that sets the wasm thread count (default: the number of CPUs, max 8). */
export const WASM_THREADS_ENV = "KME_WASM_THREADS";

/** Threads the wasm backend uses unless told otherwise: $KME_WASM_THREADS, else cpuCount(). */
export function defaultWasmThreads(): number {
  let env: string | undefined;
  try {
    env = Deno.env.get(WASM_THREADS_ENV);
  } catch { /* no env permission */ }
  if (env !== undefined && env.trim() !== "") {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1) {
      throw new BackendUnavailableError(`${WASM_THREADS_ENV}=${env}: expected an integer >= 1`);
    }
    return Math.min(n, MAX_WASM_THREADS);
  }
  return Math.max(1, Math.min(cpuCount(), MAX_WASM_THREADS));
}

/** XNNPACK's pthreadpool in tfjs-backend-wasm 4.22 is capped at 8 threads. */
const MAX_WASM_THREADS = 8;

type WasmModule = typeof import("@tensorflow/tfjs-backend-wasm");

/**
 * Activates tfjs' wasm backend with `threads` XNNPACK threads (1: the plain SIMD module).
 *
 * tfjs-backend-wasm 4.22 never uses threads under Node/Deno, for three reasons, each handled here:
 * 1. The flag `WASM_HAS_MULTITHREAD_SUPPORT` is hard-wired to false when `IS_NODE`: we set it.
 * 2. The pthread worker script is handed to `new Worker()` as a blob URL, which Node's (and
 *    Deno's node:) `worker_threads` cannot load, and the script itself assumes Node's worker
 *    global (`Object.assign(global, {location, ...})` throws on Deno's getter-only `location`)
 *    and receives the main script as a Blob it cannot import. We write a patched copy to disk
 *    (`<tmp>/kme-clip-tfjs-wasm-<hash>.cjs`: per-property `defineProperty`, the Emscripten
 *    factory read from `wasm-out/tfjs-backend-wasm-threaded-simd.js`) and hand out its path.
 * 3. The root cause of "XNNPACK reports 1 thread": backend.cc computes
 *    `num_cores = emscripten_num_logical_cores() / 2` (assuming hyper-threading) at static
 *    initialisation and caps every request at it, so on a 2-CPU machine `setThreadsCount(2)`
 *    still yields 1. Under Node/Deno `emscripten_num_logical_cores()` is `os.cpus().length`:
 *    we make it report `2 * threads` while the module initialises.
 * Finally the pthreads' workers are `ref()`ed by Emscripten and would keep the process alive
 * forever; we `unref()` them (XNNPACK's threads block in Atomics.wait between kernels).
 *
 * Results do not depend on the thread count (XNNPACK splits the output, never the reduction;
 * see tests/ml_wasm.test.ts), so threaded training stays bit-reproducible.
 */
export async function startWasm(tf: Tf, wasm: WasmModule, threads: number): Promise<void> {
  const nodeLike = typeof (globalThis as { process?: { versions?: { node?: string } } }).process
    ?.versions?.node === "string";
  const threaded = threads > 1 && nodeLike && typeof SharedArrayBuffer === "function";
  if (threaded) {
    const { default: os } = await import("node:os");
    const workerPath = await writeWasmWorkerScript();
    tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", true);
    wasm.setThreadsCount(threads);
    const createObjectURL = URL.createObjectURL;
    const cpus = os.cpus;
    URL.createObjectURL = (obj: Blob) =>
      obj instanceof Blob && obj.type === "application/javascript"
        ? workerPath
        : createObjectURL(obj);
    (os as { cpus: () => unknown[] }).cpus = () => Array(2 * threads).fill(cpus()[0]);
    let ok = false;
    try {
      ok = await withTimeout(tf.setBackend("wasm"), 60_000, "starting the threaded wasm module");
    } finally {
      URL.createObjectURL = createObjectURL;
      os.cpus = cpus;
    }
    if (!ok) {
      throw new BackendUnavailableError(
        `the threaded wasm backend failed to initialise (set ${WASM_THREADS_ENV}=1 for the ` +
          "single-threaded module)",
      );
    }
    unrefWasmWorkers(tf);
    return;
  }
  tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false);
  wasm.setThreadsCount(1);
  if (!(await tf.setBackend("wasm"))) {
    throw new BackendUnavailableError("the wasm backend failed to initialise");
  }
}

/** Lets the process exit although XNNPACK's pthread workers run forever. */
function unrefWasmWorkers(tf: Tf): void {
  const be = tf.findBackend("wasm") as unknown as {
    wasm?: { PThread?: { runningWorkers?: { unref?: () => void }[] } };
  } | null;
  for (const w of be?.wasm?.PThread?.runningWorkers ?? []) w.unref?.();
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new BackendUnavailableError(`timed out after ${ms / 1000} s ${what}`)),
      ms,
    );
    Deno.unrefTimer(timer as unknown as number);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Writes the patched pthread worker script (once per content) and returns its path. */
async function writeWasmWorkerScript(): Promise<string> {
  const { createRequire } = await import("node:module");
  const { tmpdir } = await import("node:os");
  const { createHash } = await import("node:crypto");
  const out = join(wasmBinaryDir(), "..", "wasm-out");
  const factory = join(out, "tfjs-backend-wasm-threaded-simd.js");
  const require = createRequire(import.meta.url);
  const { wasmWorkerContents } = require(join(out, "tfjs-backend-wasm-threaded-simd.worker.js"));
  // As tfjs does before making its blob: string literals in the script held backslash-n
  // escapes, which the template literal turned into real newlines; escape them again.
  let src = (wasmWorkerContents as string).replace(/\n/g, "\\n");
  const patch = (from: string, to: string) => {
    if (!src.includes(from)) {
      throw new BackendUnavailableError(
        `unexpected tfjs-backend-wasm worker script (no '${from.slice(0, 40)}...')`,
      );
    }
    src = src.replace(from, to);
  };
  patch(
    "Object.assign(global,{",
    "((o)=>{for(const k of Object.keys(o)){try{Object.defineProperty(global,k," +
      "{value:o[k],writable:true,configurable:true})}catch(_){}}})({",
  );
  patch(
    'if(typeof e.data.urlOrBlob=="string"){importScripts(e.data.urlOrBlob)}else{var objectUrl=' +
      "URL.createObjectURL(e.data.urlOrBlob);importScripts(objectUrl);URL.revokeObjectURL(objectUrl)}",
    `importScripts(${JSON.stringify(factory)});`,
  );
  const hash = createHash("sha256").update(src).digest("hex").slice(0, 16);
  const path = join(tmpdir(), `kme-clip-tfjs-wasm-${hash}.cjs`);
  if (!existsSync(path)) {
    const tmp = `${path}.${Deno.pid}.tmp`;
    await Deno.writeTextFile(tmp, src);
    await Deno.rename(tmp, path);
  }
  return path;
}

/** Number of logical CPUs (what a threaded backend could use). */
export function cpuCount(): number {
  return cpus().length;
}
