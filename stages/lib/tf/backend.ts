/**
 * TensorFlow.js backend selection.
 *
 * `initBackend(name)` imports tfjs-core, registers gradients (tfjs-core's bundle registers none;
 * importing tfjs-layers does), imports and activates the requested backend and applies the
 * kernel patches the training code relies on (`wasm_patches/`, `kernels/`). `resolveBackendName(name)` is
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
import { join } from "node:path";
import type * as TF from "@tensorflow/tfjs-core";
import { BackendUnavailableError } from "./backend_error.ts";
import { nodeModulesDirs, wasmBinaryDir } from "./package_paths.ts";
import { cpuCount, defaultWasmThreads, startWasm, WASM_THREADS_ENV } from "./wasm_threads.ts";
import { guardWebgpu, webgpuErrors } from "./webgpu_guard.ts";

// What other modules import from here, wherever it lives now.
export {
  BackendUnavailableError,
  cpuCount,
  defaultWasmThreads,
  WASM_THREADS_ENV,
  wasmBinaryDir,
  webgpuErrors,
};

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

const TFJS_NODE_PACKAGES = ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"] as const;
const TFJS_NODE_HINT =
  "The 'tensorflow' backend needs the native TensorFlow.js binding, which is not installed. " +
  "Install it with `deno add npm:@tensorflow/tfjs-node` (or `deno add npm:@tensorflow/tfjs-node-gpu` " +
  "for CUDA); its install step downloads libtensorflow, so it needs internet access. " +
  "Or choose `backend: wasm` (default fallback of `auto`) or `backend: cpu`.";

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
  const { installWasmPatches } = await import("./wasm_patches/mod.ts");
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
      guardWebgpu(tf.backend()); // once per backend instance, though initBackend runs again
      info = { tf, backend: "webgpu", version: tf.version_core, threads: 0, adapter };
      break;
    }
    default:
      throw new BackendUnavailableError(
        `unknown backend '${name as string}' (expected one of ${BACKEND_NAMES.join(", ")})`,
      );
  }
  await tf.ready();
  if (info.backend === "wasm") installWasmPatches(tf);
  registerKernels(tf);
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
