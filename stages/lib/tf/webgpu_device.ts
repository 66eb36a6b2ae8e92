/**
 * How we start tfjs-backend-webgpu 4.22, where its own start-up falls short for training:
 * - The device is asked for the adapter's `maxStorageBuffersPerShaderStage` (tfjs asks for the
 *   default, 8): the in-place AdamW (kernels/adamw.ts) binds a group of parameters, their
 *   gradients and both moments in one dispatch, so more bindings mean fewer dispatches.
 * - Uploads go through `queue.writeBuffer` into a pooled buffer. tfjs 4.22 maps a new staging
 *   buffer for every upload and never reuses it (`acquireBuffer(..., reuse = false)`): a fresh
 *   GPUBuffer per tensor created on the host, every step.
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
