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
 * - `wasm`: XNNPACK + SIMD; single-threaded under Deno (see docs/model.md).
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
  /** wasm: requested thread count (only effective when threads are available; see docs). */
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
  return await import(spec);
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
      if (opts.threads !== undefined) wasm.setThreadsCount(opts.threads);
      if (!(await tf.setBackend("wasm"))) {
        throw new BackendUnavailableError("the wasm backend failed to initialise");
      }
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
      if (!(await tf.setBackend("webgpu"))) {
        throw new BackendUnavailableError("the webgpu backend failed to initialise");
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
  return info;
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
