/**
 * What the wasm patches share: the slice of tfjs-backend-wasm 4.22's kernel and backend API they
 * use, and how a kernel is replaced (the wasm one stays reachable, with its setup and dispose).
 */
import type { Tf } from "../backend.ts";

export type KernelFunc = (args: {
  inputs: Record<string, TensorInfoLike>;
  backend: unknown;
  attrs?: Record<string, unknown>;
}) => TensorInfoLike | TensorInfoLike[];

export type KernelArgs = Parameters<KernelFunc>[0];

export interface TensorInfoLike {
  dataId: object;
  shape: number[];
  dtype: string;
}

export interface WasmBackendLike {
  readSync(dataId: object): ArrayLike<number>;
  makeOutput(shape: number[], dtype: string): TensorInfoLike;
  typedArrayFromHeap(t: TensorInfoLike): Float32Array | Int32Array | Uint8Array;
  disposeData(dataId: object): boolean;
}

/**
 * Replaces wasm kernel `name` by `make(wasmKernel)`, or registers `make(undefined)` where wasm
 * has none. Returns whether anything was installed (false: `make` declined by returning
 * undefined).
 */
export function replaceWasmKernel(
  tf: Tf,
  name: string,
  make: (wasm: KernelFunc | undefined) => KernelFunc | undefined,
): boolean {
  const k = tf.getKernel(name, "wasm");
  const f = make(k?.kernelFunc as unknown as KernelFunc | undefined);
  if (f === undefined) return false;
  if (k !== undefined) tf.unregisterKernel(name, "wasm");
  tf.registerKernel({
    kernelName: name,
    backendName: "wasm",
    setupFunc: k?.setupFunc,
    disposeFunc: k?.disposeFunc,
    kernelFunc: f as never,
  });
  return true;
}

/** Int32 (or byte) views of a tensor's heap memory, for bit-exact copies. */
export function heapView(backend: WasmBackendLike, t: TensorInfoLike): Int32Array | Uint8Array {
  const v = backend.typedArrayFromHeap(t);
  return v instanceof Uint8Array ? v : new Int32Array(v.buffer, v.byteOffset, v.length);
}

/** Calls f(srcOffset, dstOffset) for every index of `dims` (row-major), given both strides. */
export function forEachIndex(
  dims: number[],
  srcStride: number[],
  dstStride: number[],
  f: (si: number, di: number) => void,
): void {
  const r = dims.length;
  if (r === 0) {
    f(0, 0);
    return;
  }
  const idx = new Array<number>(r).fill(0);
  let si = 0;
  let di = 0;
  for (;;) {
    f(si, di);
    let k = r - 1;
    while (k >= 0) {
      idx[k]++;
      si += srcStride[k];
      di += dstStride[k];
      if (idx[k] < dims[k]) break;
      si -= srcStride[k] * dims[k];
      di -= dstStride[k] * dims[k];
      idx[k] = 0;
      k--;
    }
    if (k < 0) return;
  }
}
