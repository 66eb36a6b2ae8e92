/**
 * What a webgpu training step costs outside the kernels' arithmetic: compute dispatches, ops that
 * ran on the CPU, bytes uploaded and read back, GPU buffers created. The profile
 * (`deno task bench gpu-profile`) and the llvmpipe test read these to hold the step to its
 * budget: no CPU fallback, no read-back on a non-logging step, only the batch's raw bytes up.
 *
 * Written against tfjs-backend-webgpu 4.22's backend object: it wraps `runWebGPUProgram`,
 * `uploadToGPU`, `getBufferData`, `readSync`, `shouldExecuteOnCPU` and the device's
 * `createBuffer` on the one backend instance, and every webgpu kernel function (to name the op
 * each event happened in); our raw dispatches report through `rawDispatches`. Upgrading tfjs means re-checking those names, nothing else.
 */
import type { Tf } from "./backend.ts";
import { rawDispatches } from "./kernels/webgpu_program.ts";

/** Per-op tallies: how often and how many bytes, by TF.js kernel name. */
export type Tally = Record<string, { count: number; bytes: number }>;

export interface WebgpuCounts {
  /** Compute dispatches (one per WebGPU program run). */
  dispatches: number;
  /** Dispatches by kernel name (and program class, "Kernel/Program"). */
  dispatchesByOp: Record<string, number>;
  /** Ops computed on the CPU (tfjs-webgpu's small-input CPU forwarding, or a sync read). */
  cpuOps: Tally;
  /** Host -> GPU uploads (tensor values written into GPU buffers). */
  uploads: Tally;
  uploadBytes: number;
  /** GPU -> host reads; "(data)" is a `tensor.data()` outside any kernel. */
  readbacks: Tally;
  readbackBytes: number;
  /** New GPUBuffers (a pool hit creates none). */
  buffersCreated: number;
}

interface BackendLike {
  device: GPUDevice;
  tensorMap: {
    get(dataId: object): {
      values: ArrayLike<number> | null;
      dtype: string;
      shape: number[];
      resource?: unknown;
    };
  };
  runWebGPUProgram(program: { constructor: { name: string } }, ...rest: unknown[]): unknown;
  uploadToGPU(dataId: object): void;
  getBufferData(buffer: GPUBuffer): Promise<ArrayBuffer>;
  readSync(dataId: object): unknown;
  shouldExecuteOnCPU(inputs: unknown[], threshold?: number): boolean;
}

function emptyCounts(): WebgpuCounts {
  return {
    dispatches: 0,
    dispatchesByOp: {},
    cpuOps: {},
    uploads: {},
    uploadBytes: 0,
    readbacks: {},
    readbackBytes: 0,
    buffersCreated: 0,
  };
}

function bump(t: Tally, key: string, bytes: number): void {
  const e = (t[key] ??= { count: 0, bytes: 0 });
  e.count += 1;
  e.bytes += bytes;
}

/** Counters on the active webgpu backend; `take()` returns what happened since the last take. */
export interface WebgpuCounters {
  take(): WebgpuCounts;
}

let installed: WebgpuCounters | undefined;

/**
 * Instruments the active webgpu backend (once per process) and returns its counters. Kernels
 * registered after this call are counted but not named (their events show the enclosing op).
 */
export function webgpuCounters(tf: Tf): WebgpuCounters {
  if (installed) return installed;
  if (tf.getBackend() !== "webgpu") throw new Error("webgpu counters need the webgpu backend");
  const backend = tf.backend() as unknown as BackendLike;
  let counts = emptyCounts();
  const stack: string[] = [];
  const here = () => stack.at(-1) ?? "(data)";

  for (const k of tf.getKernelsForBackend("webgpu")) {
    const inner = k.kernelFunc;
    tf.unregisterKernel(k.kernelName, "webgpu");
    tf.registerKernel({
      ...k,
      kernelFunc: ((args: Parameters<typeof inner>[0]) => {
        stack.push(k.kernelName);
        try {
          return inner(args);
        } finally {
          stack.pop();
        }
      }) as typeof inner,
    });
  }

  const run = backend.runWebGPUProgram.bind(backend);
  backend.runWebGPUProgram = (program, ...rest) => {
    counts.dispatches += 1;
    const key = `${here()}/${program.constructor.name}`;
    counts.dispatchesByOp[key] = (counts.dispatchesByOp[key] ?? 0) + 1;
    return run(program, ...rest);
  };
  rawDispatches.listener = (name) => {
    counts.dispatches += 1;
    const key = `${here()}/${name}`;
    counts.dispatchesByOp[key] = (counts.dispatchesByOp[key] ?? 0) + 1;
  };
  const upload = backend.uploadToGPU.bind(backend);
  backend.uploadToGPU = (dataId) => {
    const d = backend.tensorMap.get(dataId);
    if (d.resource == null && d.values != null) {
      const bytes = 4 * d.values.length; // float32 and int32 alike: 4 bytes an element on the GPU
      counts.uploadBytes += bytes;
      bump(counts.uploads, here(), bytes);
    }
    upload(dataId);
  };
  const getBufferData = backend.getBufferData.bind(backend);
  backend.getBufferData = (buffer) => {
    counts.readbackBytes += buffer.size;
    bump(counts.readbacks, here(), buffer.size);
    return getBufferData(buffer);
  };
  const readSync = backend.readSync.bind(backend);
  backend.readSync = (dataId) => {
    const d = backend.tensorMap.get(dataId);
    if (d.values == null && d.resource != null) {
      const bytes = 4 * d.shape.reduce((a, b) => a * b, 1);
      counts.readbackBytes += bytes;
      bump(counts.readbacks, `${here()} (sync)`, bytes);
      bump(counts.cpuOps, here(), 0);
    }
    return readSync(dataId);
  };
  const onCpu = backend.shouldExecuteOnCPU.bind(backend);
  backend.shouldExecuteOnCPU = (inputs, threshold) => {
    const yes = onCpu(inputs, threshold);
    if (yes) bump(counts.cpuOps, here(), 0);
    return yes;
  };
  const device = backend.device;
  const createBuffer = device.createBuffer.bind(device);
  device.createBuffer = (desc: GPUBufferDescriptor) => {
    counts.buffersCreated += 1;
    return createBuffer(desc);
  };

  installed = {
    take() {
      const out = counts;
      counts = emptyCounts();
      return out;
    },
  };
  return installed;
}
