/**
 * TensorFlow.js backend selection.
 *
 * `initBackend(name)` imports tfjs-core, registers gradients (tfjs-core's bundle registers none;
 * importing tfjs-layers does), imports and activates the requested backend and applies the
 * kernel patches the training code relies on (see `patches.ts`). `resolveBackendName(name)` is
 * the cheap variant for cache-key facets: it never imports tfjs.
 *
 * Backends:
 * - `tensorflow`: `@tensorflow/tfjs-node-gpu`, else `@tensorflow/tfjs-node` (native
 *   libtensorflow). Optional: imported by bare name, so it works once added to the import map
 *   (`deno add npm:@tensorflow/tfjs-node`); otherwise a clear error.
 * - `wasm`: XNNPACK + SIMD, multi-threaded (`threads`, default $KME_WASM_THREADS or the CPU
 *   count; see `startWasm` for what it takes under Deno).
 * - `cpu`: pure JS reference backend.
 * - `webgpu`: Deno's WebGPU (`navigator.gpu`). Never call `dataSync()` on it; use `await data()`.
 */
import { existsSync } from "node:fs";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import type * as TF from "@tensorflow/tfjs-core";

export type BackendName = "auto" | "tensorflow" | "wasm" | "cpu" | "webgpu";
export type ResolvedBackendName = Exclude<BackendName, "auto">;
export const BACKEND_NAMES: readonly BackendName[] = [
  "auto",
  "tensorflow",
  "wasm",
  "cpu",
  "webgpu",
];

export type Tf = typeof TF;

export interface BackendInfo {
  tf: Tf;
  /** The backend actually active (never "auto"). */
  backend: ResolvedBackendName;
  /** Package version of the backend implementation (e.g. tfjs-backend-wasm's). */
  version: string;
  /** Threads used by the backend's kernels (1 for cpu; wasm: what the module reports). */
  threads: number;
  /** WebGPU adapter description, when `backend` is webgpu. */
  adapter?: string;
  /** The npm package that supplied the tensorflow backend. */
  package?: string;
}

export interface BackendOptions {
  /** wasm: XNNPACK threads (default `defaultWasmThreads()`); fixed by the first wasm start. */
  threads?: number;
  /** Skip tf.enableProdMode() (keeps tfjs' debug checks; slower). */
  debug?: boolean;
}

/** Error thrown when a requested backend cannot be used. */
export class BackendUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BackendUnavailableError";
  }
}

const TFJS_NODE_PACKAGES = ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"] as const;
const TFJS_NODE_HINT =
  "The 'tensorflow' backend needs the native TensorFlow.js binding, which is not installed. " +
  "Install it with `deno add npm:@tensorflow/tfjs-node` (or `deno add npm:@tensorflow/tfjs-node-gpu` " +
  "for CUDA); its install step downloads libtensorflow, so it needs internet access. " +
  "Or choose `backend: wasm` (default fallback of `auto`) or `backend: cpu`.";

/** Candidate node_modules folders: the project's (relative to this file) and the cwd's. */
function nodeModulesDirs(): string[] {
  const dirs: string[] = [];
  try {
    const here = dirname(fileURLToPath(import.meta.url));
    dirs.push(join(here, "..", "..", "..", "node_modules"));
  } catch { /* non-file URL */ }
  try {
    dirs.push(join(Deno.cwd(), "node_modules"));
  } catch { /* no cwd permission */ }
  return dirs;
}

/** The first tfjs-node package present in node_modules, without importing it. */
export function findTfjsNodePackage(): string | undefined {
  for (const pkg of TFJS_NODE_PACKAGES) {
    for (const nm of nodeModulesDirs()) {
      if (existsSync(join(nm, pkg, "package.json"))) return pkg;
    }
  }
  return undefined;
}

/**
 * Which backend `name` will resolve to, without importing tfjs (cheap; for cache-key facets).
 * `auto` is `tensorflow` when a tfjs-node package is installed, else `wasm`.
 */
export function resolveBackendName(name: BackendName): ResolvedBackendName {
  if (name !== "auto") return name;
  return findTfjsNodePackage() !== undefined ? "tensorflow" : "wasm";
}

interface WebgpuBackendLike {
  device: { limits: { maxStorageBufferBindingSize: number } };
  bufferManager: { acquireBuffer(size: number, usage: number, ...rest: unknown[]): unknown };
}

/**
 * tfjs-backend-webgpu 4.22 binds each tensor as one storage buffer and never checks the device's
 * maxStorageBufferBindingSize: a bigger tensor silently computes garbage (seen: KME-CLIP's
 * logits at batch 512, 256 MiB, on llvmpipe's 128 MiB limit gave a loss 0.045 off, no error).
 * Fail loudly instead, naming the sizes.
 */
function guardBindingSize(backend: WebgpuBackendLike): void {
  const limit = backend.device.limits.maxStorageBufferBindingSize;
  const manager = backend.bufferManager;
  const acquire = manager.acquireBuffer.bind(manager);
  const STORAGE = 0x80; // GPUBufferUsage.STORAGE
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
  manager.acquireBuffer = (size: number, usage: number, ...rest: unknown[]) => {
    if ((usage & STORAGE) !== 0 && size > limit) {
      // A setting to change, not a bug: exit code 2 and no stack (cli/worker.ts).
      throw Object.assign(
        new RangeError(
          `webgpu: a ${mib(size)} tensor exceeds this adapter's maxStorageBufferBindingSize ` +
            `(${mib(limit)}); use a smaller batch (or fewer points), or another backend`,
        ),
        { exitCode: 2 },
      );
    }
    return acquire(size, usage, ...rest);
  };
}

/**
 * WebGPU reports an invalid shader or pipeline as an event, and the dispatch then silently
 * writes nothing (a kernel with a WGSL error gave zeros). Say so on stderr, once per message,
 * and keep the messages for `webgpuErrors()` (tests assert there are none).
 */
function reportDeviceErrors(backend: WebgpuBackendLike): void {
  const device = backend.device as unknown as EventTarget;
  device.addEventListener("uncapturederror", (e: Event) => {
    const msg = String((e as unknown as { error?: { message?: string } }).error?.message ?? e);
    if (deviceErrors.includes(msg)) return;
    deviceErrors.push(msg);
    console.error(`webgpu error: ${msg.trim()}`);
  });
}

const deviceErrors: string[] = [];
const prepared = new WeakSet<object>();

/** WebGPU validation errors seen so far in this process (see reportDeviceErrors). */
export function webgpuErrors(): readonly string[] {
  return deviceErrors;
}

/** Folder of tfjs-backend-wasm's .wasm binaries, as a file path with a trailing slash. */
export function wasmBinaryDir(): string {
  for (const nm of nodeModulesDirs()) {
    const dir = join(nm, "@tensorflow", "tfjs-backend-wasm", "dist");
    if (existsSync(join(dir, "tfjs-backend-wasm-simd.wasm"))) return dir + "/";
  }
  throw new BackendUnavailableError(
    "Cannot find tfjs-backend-wasm's .wasm files under node_modules/@tensorflow/tfjs-backend-wasm/dist " +
      "(run `deno install` in the project root).",
  );
}

let tfPromise: Promise<Tf> | undefined;

/** tfjs-core with gradients registered (via tfjs-layers) and the cpu backend available. */
export function loadTf(): Promise<Tf> {
  tfPromise ??= (async () => {
    const tf = await import("@tensorflow/tfjs-core");
    // tfjs-core's package entry registers no gradients; tfjs-layers imports
    // register_all_gradients as a side effect (verified: without it tf.grad of Sum fails).
    await import("@tensorflow/tfjs-layers");
    await import("@tensorflow/tfjs-backend-cpu");
    return tf;
  })();
  return tfPromise;
}

async function importOptional(specifier: string): Promise<unknown> {
  // A non-literal specifier keeps `deno check` from requiring the optional package.
  const spec = specifier;
  return await import(spec); // fingerprint: optional npm package
}

/**
 * Imports tfjs, activates the requested backend and returns what was actually used.
 * Calling it again with another name switches the global tfjs backend.
 */
export async function initBackend(
  name: BackendName,
  opts: BackendOptions = {},
): Promise<BackendInfo> {
  const tf = await loadTf();
  if (!opts.debug) tf.enableProdMode(); // also silences tfjs' "install tfjs-node" console banner
  const { installPatches } = await import("./patches.ts");
  const { registerKernels } = await import("./kernels/mod.ts");

  let info: BackendInfo;
  switch (name) {
    case "auto": {
      if (findTfjsNodePackage() !== undefined) {
        try {
          return await initBackend("tensorflow", opts);
        } catch (e) {
          // Installed but unusable (e.g. libtensorflow missing): fall back, but say so.
          console.warn(`backend auto: tensorflow unusable (${(e as Error).message}); using wasm`);
        }
      }
      return await initBackend("wasm", opts);
    }
    case "tensorflow": {
      let pkg: string | undefined;
      const errors: string[] = [];
      for (const candidate of TFJS_NODE_PACKAGES) {
        try {
          await importOptional(candidate);
          pkg = candidate;
          break;
        } catch (e) {
          errors.push(`${candidate}: ${(e as Error).message.split("\n")[0]}`);
        }
      }
      if (pkg === undefined) {
        throw new BackendUnavailableError(`${TFJS_NODE_HINT}\n  (${errors.join("; ")})`);
      }
      if (!(await tf.setBackend("tensorflow"))) {
        throw new BackendUnavailableError(
          `${pkg} imported but the 'tensorflow' backend failed to start`,
        );
      }
      info = { tf, backend: "tensorflow", version: tf.version_core, threads: 0, package: pkg };
      break;
    }
    case "wasm": {
      const wasm = await import("@tensorflow/tfjs-backend-wasm");
      // Deno serves no bundler URLs: point the loader at the binaries on disk (file path).
      wasm.setWasmPaths(wasmBinaryDir());
      await startWasm(tf, wasm, opts.threads ?? defaultWasmThreads());
      info = { tf, backend: "wasm", version: wasm.version_wasm, threads: wasm.getThreadsCount() };
      break;
    }
    case "cpu": {
      const cpu = await import("@tensorflow/tfjs-backend-cpu");
      if (!(await tf.setBackend("cpu"))) {
        throw new BackendUnavailableError("the cpu backend failed to initialise");
      }
      info = { tf, backend: "cpu", version: cpu.version_cpu, threads: 1 };
      break;
    }
    case "webgpu": {
      const adapter = await webgpuAdapterDescription();
      if (adapter === undefined) {
        throw new BackendUnavailableError(
          "WebGPU is not available: navigator.gpu gave no adapter (Deno needs a Vulkan/Metal/DX12 " +
            "driver; a software adapter such as llvmpipe also works, slowly).",
        );
      }
      await import("@tensorflow/tfjs-backend-webgpu"); // exports no version: same release as core
      const { deterministicMatmul, registerWebgpuBackend } = await import("./webgpu_device.ts");
      await registerWebgpuBackend(tf);
      // tfjs-webgpu runs an op on the CPU when all its inputs are small and still on the host
      // (fresh parameters, a loaded checkpoint, constants). The CPU's exp and the GPU's differ
      // in the last bits, so a resumed run drifted from an uninterrupted one at its first step
      // (seen with stock kernels too). Every op runs on the GPU instead.
      tf.env().set("WEBGPU_CPU_FORWARD", false);
      if (!(await tf.setBackend("webgpu"))) {
        throw new BackendUnavailableError("the webgpu backend failed to initialise");
      }
      deterministicMatmul(tf);
      const webgpu = tf.backend() as unknown as WebgpuBackendLike;
      if (!prepared.has(webgpu)) { // once per backend instance, though initBackend runs again
        prepared.add(webgpu);
        guardBindingSize(webgpu);
        reportDeviceErrors(webgpu);
      }
      info = { tf, backend: "webgpu", version: tf.version_core, threads: 0, adapter };
      break;
    }
    default:
      throw new BackendUnavailableError(
        `unknown backend '${name as string}' (expected one of ${BACKEND_NAMES.join(", ")})`,
      );
  }
  await tf.ready();
  installPatches(tf, info.backend);
  registerKernels(tf);
  return info;
}

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
async function startWasm(tf: Tf, wasm: WasmModule, threads: number): Promise<void> {
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

/** Description of the WebGPU adapter, or undefined when there is none. */
export async function webgpuAdapterDescription(): Promise<string | undefined> {
  // deno-lint-ignore no-explicit-any
  const gpu = (globalThis.navigator as any)?.gpu;
  if (!gpu) return undefined;
  try {
    const adapter = await gpu.requestAdapter();
    if (!adapter) return undefined;
    const i = adapter.info ?? {};
    const parts = [i.description, i.vendor && `vendor ${i.vendor}`, i.architecture]
      .filter((s) => typeof s === "string" && s.length > 0);
    if (adapter.isFallbackAdapter || i.isFallbackAdapter) parts.push("fallback adapter");
    return parts.join(", ") || "unknown adapter";
  } catch {
    return undefined;
  }
}

/** Number of logical CPUs (what a threaded backend could use). */
export function cpuCount(): number {
  return cpus().length;
}
