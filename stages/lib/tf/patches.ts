/**
 * Kernel patches for the wasm backend (tfjs 4.22), installed by `initBackend`.
 *
 * 1. `UnsortedSegmentSum` is not registered for wasm, and it is the gradient of `gather`
 *    (token embedding lookup). We register a plain JS implementation (sequential, hence
 *    deterministic).
 * 2. wasm `BatchMatMul` with `transposeA`/`transposeB` is many times slower than an explicit
 *    `Transpose` followed by a plain matmul (measured 5.7x for A*B^T and 16x for A^T*B on
 *    [1024,128]x[128,256]), and matmul's gradient uses exactly those forms. We wrap the kernel
 *    so that transposed operands are materialised first. Results are bit-identical to the
 *    plain product of the transposed tensors.
 *
 * `Conv2DBackpropFilter` is also missing on wasm; the model never uses conv2d (patches are
 * cut by reshape/transpose and embedded with a matmul), so nothing is patched for it.
 */
import type { Tf } from "./backend.ts";

type KernelFunc = (args: {
  inputs: Record<string, TensorInfoLike>;
  backend: unknown;
  attrs?: Record<string, unknown>;
}) => TensorInfoLike | TensorInfoLike[];

interface TensorInfoLike {
  dataId: object;
  shape: number[];
  dtype: string;
}

interface WasmBackendLike {
  readSync(dataId: object): ArrayLike<number>;
  makeOutput(shape: number[], dtype: string): TensorInfoLike;
  typedArrayFromHeap(t: TensorInfoLike): Float32Array | Int32Array | Uint8Array;
  disposeData(dataId: object): boolean;
}

const installed = new Set<string>();

/** Installs the patches for `backend` once per process. Returns the names of patched kernels. */
export function installPatches(tf: Tf, backend: string): string[] {
  if (backend !== "wasm" || installed.has(backend)) return [];
  installed.add(backend);
  const patched: string[] = [];

  if (tf.getKernel("UnsortedSegmentSum", "wasm") === undefined) {
    tf.registerKernel({
      kernelName: "UnsortedSegmentSum",
      backendName: "wasm",
      kernelFunc: ((args: Parameters<KernelFunc>[0]) => unsortedSegmentSumWasm(args)) as never,
    });
    patched.push("UnsortedSegmentSum");
  }

  const mm = tf.getKernel("BatchMatMul", "wasm");
  const tr = tf.getKernel("Transpose", "wasm");
  if (mm !== undefined && tr !== undefined) {
    const matmul = mm.kernelFunc as unknown as KernelFunc;
    const transpose = tr.kernelFunc as unknown as KernelFunc;
    tf.unregisterKernel("BatchMatMul", "wasm");
    tf.registerKernel({
      kernelName: "BatchMatMul",
      backendName: "wasm",
      setupFunc: mm.setupFunc,
      disposeFunc: mm.disposeFunc,
      kernelFunc: ((args: Parameters<KernelFunc>[0]) => {
        const { transposeA, transposeB } = (args.attrs ?? {}) as {
          transposeA?: boolean;
          transposeB?: boolean;
        };
        if (!transposeA && !transposeB) return matmul(args);
        const backend = args.backend as WasmBackendLike;
        const swapLast = (t: TensorInfoLike): TensorInfoLike => {
          const r = t.shape.length;
          const perm = [...Array(r).keys()];
          perm[r - 2] = r - 1;
          perm[r - 1] = r - 2;
          return transpose({ inputs: { x: t }, backend, attrs: { perm } }) as TensorInfoLike;
        };
        let { a, b } = args.inputs;
        const temps: TensorInfoLike[] = [];
        if (transposeA) temps.push(a = swapLast(a));
        if (transposeB) temps.push(b = swapLast(b));
        try {
          return matmul({
            inputs: { a, b },
            backend,
            attrs: { ...args.attrs, transposeA: false, transposeB: false },
          });
        } finally {
          for (const t of temps) backend.disposeData(t.dataId);
        }
      }) as never,
    });
    patched.push("BatchMatMul");
  }
  return patched;
}

function unsortedSegmentSumWasm(
  args: {
    inputs: Record<string, TensorInfoLike>;
    backend: unknown;
    attrs?: Record<string, unknown>;
  },
): TensorInfoLike {
  const { x, segmentIds } = args.inputs;
  const numSegments = args.attrs?.numSegments as number;
  const backend = args.backend as WasmBackendLike;
  const n = segmentIds.shape.reduce((p, s) => p * s, 1);
  const xSize = x.shape.reduce((p, s) => p * s, 1);
  const inner = n === 0 ? 0 : xSize / n;
  if (!Number.isInteger(inner)) {
    throw new Error(
      `UnsortedSegmentSum: x shape ${x.shape} does not start with ids ${segmentIds.shape}`,
    );
  }
  const outShape = [numSegments, ...x.shape.slice(segmentIds.shape.length)];
  // Read (copy) the inputs before allocating: an allocation may grow the wasm heap.
  const xv = Float32Array.from(backend.readSync(x.dataId));
  const ids = Int32Array.from(backend.readSync(segmentIds.dataId));
  const out = backend.makeOutput(outShape, x.dtype);
  const o = backend.typedArrayFromHeap(out);
  o.fill(0);
  for (let i = 0; i < n; i++) {
    const s = ids[i];
    if (s < 0 || s >= numSegments) continue; // TF semantics: out-of-range ids are dropped
    const ob = s * inner;
    const xb = i * inner;
    for (let k = 0; k < inner; k++) o[ob + k] += xv[xb + k];
  }
  return out;
}
