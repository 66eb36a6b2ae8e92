/**
 * `Concat` on wasm (tfjs 4.22) copies with `subarray().set()` once per input per outer row:
 * concatenating the q, k and v gradients ([2048,128] x 3 along axis 1) is 6,144 small copies of
 * views of the heap, ~2.8 ms. Our `copy_rows` kernel (../wasm_simd/kernels.wat) does each input's
 * rows with `memory.copy` in one call. Copies, so bit-identical.
 */
import type { Tf } from "../backend.ts";
import {
  type KernelFunc,
  replaceWasmKernel,
  type TensorInfoLike,
  type WasmBackendLike,
} from "./kernel.ts";
import { simdKernels } from "../wasm_simd/instance.ts";

const BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1 };

export function patchConcat(tf: Tf): boolean {
  return replaceWasmKernel(tf, "Concat", (wasm) =>
    wasm && ((args) => {
      const backend = args.backend as WasmBackendLike;
      const inputs = Object.values(args.inputs) as TensorInfoLike[];
      const kernels = simdKernels(backend);
      const size = BYTES[inputs[0]?.dtype];
      const nonEmpty = inputs.filter((t) => t.shape.reduce((a, b) => a * b, 1) > 0);
      if (!kernels || !size || nonEmpty.length < 2) return wasm(args);
      const axis = tf.util.parseAxisParam(args.attrs?.axis as number, inputs[0].shape)[0];
      tf.backend_util.assertParamsConsistent(inputs.map((t) => t.shape), axis);
      const outShape = tf.backend_util.computeOutShape(inputs.map((t) => t.shape), axis);
      const out = backend.makeOutput(outShape, inputs[0].dtype); // may grow the heap
      const at = (t: TensorInfoLike) => backend.typedArrayFromHeap(t).byteOffset;
      const rows = outShape.slice(0, axis).reduce((a, b) => a * b, 1);
      const inner = nonEmpty.map((t) => t.shape.slice(axis).reduce((a, b) => a * b, 1) * size);
      const rowBytes = inner.reduce((a, b) => a + b, 0);
      let offset = at(out);
      nonEmpty.forEach((t, i) => {
        kernels.copy_rows(offset, at(t), inner[i], rows, rowBytes, inner[i]);
        offset += inner[i];
      });
      return out;
    }) as KernelFunc);
}
