/**
 * `Sum` over the leading axes (every bias and LayerNorm gradient: [2048, 128] -> [128]) with
 * our SIMD kernel (`sum_rows` in kernels.wat): four columns at once down the rows, in place,
 * where the patched reduction (../wasm_patches/reductions.ts) would transpose and let tfjs sum
 * each transposed row. Same additions in the same order, so the same bits.
 */
import type { TensorInfoLike, WasmBackendLike } from "../wasm_patches/kernel.ts";
import { simdKernels } from "./instance.ts";

/**
 * The sum of float32 `x` over `axes`, or undefined unless `axes` are exactly the leading ones
 * (at least one left) and the kernel is on.
 */
export function simdSumLeading(
  backend: WasmBackendLike,
  x: TensorInfoLike,
  axes: number[],
  keepDims: boolean,
): TensorInfoLike | undefined {
  const r = x.shape.length;
  const sorted = [...new Set(axes)].sort((a, b) => a - b);
  if (x.dtype !== "float32" || !sorted.length || sorted.length >= r) return undefined;
  if (sorted.some((a, i) => a !== i)) return undefined;
  const kernels = simdKernels(backend);
  if (!kernels) return undefined;
  const rows = x.shape.slice(0, sorted.length).reduce((a, b) => a * b, 1);
  const kept = x.shape.slice(sorted.length);
  const cols = kept.reduce((a, b) => a * b, 1);
  const out = backend.makeOutput(keepDims ? [...sorted.map(() => 1), ...kept] : kept, "float32");
  const at = (t: TensorInfoLike) => backend.typedArrayFromHeap(t).byteOffset;
  kernels.sum_rows(at(x), at(out), rows, cols);
  return out;
}
