/**
 * Guards on tfjs-backend-webgpu 4.22's backend object: a tensor above the device's storage
 * binding limit is refused (tfjs binds it anyway and computes garbage), and WebGPU validation
 * errors, which tfjs never looks at, are printed and kept.
 */
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
      // A setting to change, not a bug: exit code 2 and no stack (pipeline/worker.ts).
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

/** Installs both guards on `backend`, once per backend instance. */
export function guardWebgpu(backend: object): void {
  if (prepared.has(backend)) return;
  prepared.add(backend);
  guardBindingSize(backend as WebgpuBackendLike);
  reportDeviceErrors(backend as WebgpuBackendLike);
}
