/**
 * Reductions (`Sum`, `Mean`, `Max`, `Min`) over axes that are not innermost, on wasm (tfjs
 * 4.22): the wasm kernels first transpose with the slow wasm transpose (sum over axis 0 of
 * [2048,128], i.e. a bias gradient: 2.2 ms); we transpose with the patched kernel
 * (transpose.ts) first (0.45 ms in all). A `Sum` over the leading axes skips the transpose
 * altogether: our SIMD kernel sums down the rows (../wasm_simd/sum_rows_simd.ts).
 */
import type { Tf } from "../backend.ts";
import {
  type KernelArgs,
  type KernelFunc,
  replaceWasmKernel,
  type TensorInfoLike,
  type WasmBackendLike,
} from "./kernel.ts";
import { planTranspose } from "./transpose.ts";
import { simdSumLeading } from "../wasm_simd/sum_rows_simd.ts";

/** `transpose`: the (patched) wasm Transpose kernel. */
export function patchReductions(tf: Tf, transpose: KernelFunc): string[] {
  return ["Sum", "Mean", "Max", "Min"].filter((name) =>
    replaceWasmKernel(
      tf,
      name,
      (wasm) => wasm && ((args) => reduceInnermost(name, args, wasm, transpose)),
    )
  );
}

function reduceInnermost(
  name: string,
  args: KernelArgs,
  reduce: KernelFunc,
  transpose: KernelFunc,
): TensorInfoLike {
  const x = args.inputs.x;
  const rank = x.shape.length;
  const axisAttr = args.attrs?.axis as number | number[] | undefined;
  const keepDims = args.attrs?.keepDims as boolean | undefined;
  const axes = (axisAttr === undefined ? [...Array(rank).keys()] : [axisAttr].flat())
    .map((a) => (a < 0 ? a + rank : a));
  const reduced = new Set(axes);
  // A sum over the leading axes needs no transpose at all (../wasm_simd/sum_rows_simd.ts).
  if (name === "Sum") {
    const out = simdSumLeading(args.backend as WasmBackendLike, x, axes, Boolean(keepDims));
    if (out) return out;
  }
  const kept = [...Array(rank).keys()].filter((a) => !reduced.has(a));
  const perm = [...kept, ...[...reduced].sort((a, b) => a - b)];
  if (perm.every((p, i) => p === i) || !planTranspose(x.shape, perm).useJs) {
    return reduce(args) as TensorInfoLike;
  }
  const backend = args.backend as WasmBackendLike;
  const xt = transpose({ inputs: { x }, backend, attrs: { perm } }) as TensorInfoLike;
  try {
    const inner = [...Array(reduced.size).keys()].map((i) => kept.length + i);
    const out = reduce({
      inputs: { x: xt },
      backend,
      attrs: { ...args.attrs, axis: inner, keepDims: false },
    }) as TensorInfoLike;
    if (keepDims) out.shape = x.shape.map((s, i) => (reduced.has(i) ? 1 : s));
    return out;
  } finally {
    backend.disposeData(xt.dataId);
  }
}
