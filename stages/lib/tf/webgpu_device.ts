/**
 * How we start tfjs-backend-webgpu 4.22, where its own start-up falls short for training:
 * - The device is asked for the adapter's `maxStorageBuffersPerShaderStage` (tfjs asks for the
 *   default, 8): the in-place AdamW (kernels/adamw.ts) binds a group of parameters, their
 *   gradients and both moments in one dispatch, so more bindings mean fewer dispatches.
 * - Uploads go through `queue.writeBuffer` into a pooled buffer. tfjs 4.22 maps a new staging
 *   buffer for every upload and never reuses it (`acquireBuffer(..., reuse = false)`): a fresh
 *   GPUBuffer per tensor created on the host, every step.
 * - Matmuls never take tfjs's split-K program, which adds partial products with float atomics
 *   in whatever order the GPU runs them: results would change from run to run, and a resumed
 *   training would not equal an uninterrupted one. tfjs picks it for a product with a long inner
 *   dimension (>= 2000) and few 32 x 32 output tiles, as a weight gradient over B * T tokens can
 *   be; we run those on its small-output-tile program (deterministic, also many workgroups).
 * Everything else is tfjs's own factory (adapter, features, limits) unchanged.
 */
import type { Tf } from "./backend.ts";

interface TensorData {
  values: ArrayLike<number> | null;
  dtype: string;
  shape: number[];
  resource?: unknown;
}

interface BackendInternals {
  device: GPUDevice;
  queue: GPUQueue;
  tensorMap: { get(dataId: object): TensorData };
  bufferManager: { acquireBuffer(size: number, usage: number): GPUBuffer };
  uploadToGPU(dataId: object): void;
}

let registered = false;

/**
 * Replaces tfjs's 'webgpu' backend factory by ours, once per process (call before
 * tf.setBackend("webgpu"); a second registration would make a second device).
 */
export async function registerWebgpuBackend(tf: Tf): Promise<void> {
  if (registered) return;
  registered = true;
  const { WebGPUBackend } = await import("@tensorflow/tfjs-backend-webgpu");
  tf.removeBackend("webgpu");
  tf.registerBackend("webgpu", async () => {
    const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
    if (!adapter) throw new Error("navigator.gpu gave no adapter");
    const features: GPUFeatureName[] = [];
    if (adapter.features.has("timestamp-query")) features.push("timestamp-query");
    const l = adapter.limits;
    const device = await adapter.requestDevice({
      requiredFeatures: features,
      requiredLimits: {
        maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
        maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
        maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
        maxBufferSize: l.maxBufferSize,
        maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
        maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
        maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      },
    });
    const backend = new WebGPUBackend(device, adapter.info);
    uploadByWriteBuffer(backend as unknown as BackendInternals);
    return backend;
  }, 3);
}

const STORAGE = 0x80;
const COPY_SRC = 0x04;
const COPY_DST = 0x08;

function uploadByWriteBuffer(backend: BackendInternals): void {
  const upload = backend.uploadToGPU.bind(backend);
  backend.uploadToGPU = (dataId: object) => {
    const d = backend.tensorMap.get(dataId);
    if (d.resource != null || d.values == null) return upload(dataId);
    const n = d.shape.reduce((a, b) => a * b, 1);
    const size = 4 * n;
    // A pooled buffer is free only once no unsubmitted command uses it (tfjs releases buffers
    // after the submit), and writeBuffer lands before every command submitted after it.
    const buffer = backend.bufferManager.acquireBuffer(size, STORAGE | COPY_SRC | COPY_DST);
    const v = d.values;
    const typed = d.dtype === "float32"
      ? (v instanceof Float32Array ? v : Float32Array.from(v))
      : (v instanceof Int32Array ? v : Int32Array.from(v)); // int32 and bool: 4 bytes on the GPU
    // For a typed array, writeBuffer's offset and size count elements.
    if (n > 0) backend.queue.writeBuffer(buffer, 0, typed as Float32Array<ArrayBuffer>, 0, n);
    d.values = null;
    d.resource = buffer;
  };
}

/** tfjs-webgpu's MatMulProgramType: 1 is split-K, 2 the small-output-size program. */
const SPLIT_K = 1;
const SMALL_OUTPUT = 2;
const PROGRAM_FLAG = "WEBGPU_MATMUL_PROGRAM_TYPE";

interface MatmulArgs {
  inputs: { a: { shape: number[] }; b: { shape: number[] } };
  attrs: { transposeA?: boolean; transposeB?: boolean };
  backend: { thresholdToIncreaseWorkgroups: number };
}

/** The program tfjs-webgpu 4.22's batchMatMulImpl would choose (its heuristic, restated). */
export function tfjsMatmulProgram(
  aShape: number[],
  bShape: number[],
  transposeA: boolean,
  transposeB: boolean,
  threshold: number,
): number {
  const ra = aShape.length;
  const rb = bShape.length;
  const inner = transposeB ? bShape[rb - 1] : bShape[rb - 2];
  const outerA = transposeA ? aShape[ra - 1] : aShape[ra - 2];
  const outerB = transposeB ? bShape[rb - 2] : bShape[rb - 1];
  const size = (s: number[]) => s.slice(0, -2).reduce((x, y) => x * y, 1);
  const batch = Math.max(size(aShape), size(bShape));
  const tiles = batch * Math.ceil(outerA / 32) * Math.ceil(outerB / 32);
  const few = tiles <= threshold || (outerA <= 8 && tiles <= threshold * 2);
  if (!few) return 3;
  if (batch * outerA * outerB <= 128) return 0;
  return batch === 1 && inner >= 2000 ? SPLIT_K : SMALL_OUTPUT;
}

let matmulsWrapped = false;

/** Wraps the webgpu matmul kernels so that split-K is never chosen (call once webgpu is set). */
export function deterministicMatmul(tf: Tf): void {
  if (matmulsWrapped) return;
  matmulsWrapped = true;
  for (const name of ["BatchMatMul", "_FusedMatMul"]) {
    const k = tf.getKernel(name, "webgpu");
    if (!k) continue;
    const inner = k.kernelFunc;
    tf.unregisterKernel(name, "webgpu");
    tf.registerKernel({
      ...k,
      kernelFunc: ((args: Parameters<typeof inner>[0]) => {
        const m = args as unknown as MatmulArgs;
        const choice = tfjsMatmulProgram(
          m.inputs.a.shape,
          m.inputs.b.shape,
          m.attrs.transposeA ?? false,
          m.attrs.transposeB ?? false,
          m.backend.thresholdToIncreaseWorkgroups,
        );
        const env = tf.env();
        if (choice !== SPLIT_K || env.getNumber(PROGRAM_FLAG) >= 0) return inner(args);
        env.set(PROGRAM_FLAG, SMALL_OUTPUT);
        try {
          return inner(args);
        } finally {
          env.set(PROGRAM_FLAG, -1);
        }
      }) as typeof inner,
    });
  }
}
