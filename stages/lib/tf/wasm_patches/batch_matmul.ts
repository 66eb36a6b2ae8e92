/**
 * `BatchMatMul` with `transposeA`/`transposeB` is many times slower on wasm (tfjs 4.22) than a
 * plain product of materialised transposes (A*B^T 27.9 ms vs 4.9 ms, A^T*B 86.5 ms vs 5.3 ms on
 * [1024,128]x[128,256]): tfjs sends every transposed or batched product to a scalar loop and
 * only plain 2-D products to XNNPACK, and matmul's gradient uses exactly those forms. A^T B is
 * computed as T(A)·B or as T(T(B)·A), and likewise A B^T and A^T B^T = T(B·A), choosing by a
 * measured cost model: a JS transpose costs ~1.25 ns per element and XNNPACK re-packs the right
 * operand on every call at ~4.3 ns per element. (The weight gradient x^T dy of [2048,128] x
 * [2048,512]: 8.2 instead of 11.6 ms.) Batched plain products go to our SIMD kernel where it
 * applies (../wasm_simd/batch_matmul_simd.ts).
 */
import type { Tf } from "../backend.ts";
import {
  type KernelArgs,
  type KernelFunc,
  replaceWasmKernel,
  type TensorInfoLike,
  type WasmBackendLike,
} from "./kernel.ts";
import { simdBatchMatMul } from "../wasm_simd/batch_matmul_simd.ts";

/** `transpose`: the (patched) wasm Transpose kernel. */
export function patchBatchMatMul(tf: Tf, transpose: KernelFunc): boolean {
  return replaceWasmKernel(
    tf,
    "BatchMatMul",
    (wasm) => wasm && ((args) => batchMatMulNoTranspose(args, wasm, transpose)),
  );
}

function batchMatMulNoTranspose(
  args: KernelArgs,
  matmul: KernelFunc,
  transpose: KernelFunc,
): TensorInfoLike {
  const { transposeA, transposeB } = (args.attrs ?? {}) as {
    transposeA?: boolean;
    transposeB?: boolean;
  };
  const backend = args.backend as WasmBackendLike;
  if (!transposeA && !transposeB) {
    return simdBatchMatMul(backend, args.inputs.a, args.inputs.b) ??
      matmul(args) as TensorInfoLike;
  }
  const temps: TensorInfoLike[] = [];
  const swapLast = (t: TensorInfoLike): TensorInfoLike => {
    const r = t.shape.length;
    const perm = [...Array(r).keys()];
    perm[r - 2] = r - 1;
    perm[r - 1] = r - 2;
    const out = transpose({ inputs: { x: t }, backend, attrs: { perm } }) as TensorInfoLike;
    temps.push(out);
    return out;
  };
  const plain = (a: TensorInfoLike, b: TensorInfoLike): TensorInfoLike =>
    simdBatchMatMul(backend, a, b) ?? matmul({
      inputs: { a, b },
      backend,
      attrs: { ...args.attrs, transposeA: false, transposeB: false },
    }) as TensorInfoLike;
  const { a, b } = args.inputs;
  const ra = a.shape.length;
  const rb = b.shape.length;
  // A is [.., M, K] (or [.., K, M] when transposed), B is [.., K, N] (or [.., N, K]).
  const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
  const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
  const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  // Costs in ns per element, measured (single thread): a JS transpose ~1.25; XNNPACK packing
  // the right operand ~4.3 (it packs B on every call, as B is new each time). Batched products
  // run tfjs' scalar loop, which packs nothing.
  const batched = ra > 2 && a.shape.slice(0, -2).some((d) => d > 1) ||
    rb > 2 && b.shape.slice(0, -2).some((d) => d > 1);
  const T = 1.25;
  const P = batched ? 0 : 4.3;
  let useSwapped: boolean; // compute T(B'·A') instead of A'·B'
  if (transposeA && transposeB) {
    // T(A)·T(B) vs T(B·A)
    useSwapped = T * m * n + P * k * m < T * (k * m + n * k) + P * k * n;
  } else if (transposeA) {
    // T(A)·B vs T(T(B)·A)
    useSwapped = T * (k * n + n * m) + P * k * m < T * k * m + P * k * n;
  } else {
    // A·T(B) vs T(B·T(A))
    useSwapped = T * (m * k + n * m) + P * k * m < T * n * k + P * n * k;
  }
  try {
    if (transposeA && transposeB) {
      if (!useSwapped) return plain(swapLast(a), swapLast(b));
      const c = plain(b, a);
      temps.push(c);
      return unTemp(swapLast(c), temps);
    }
    if (transposeA) {
      if (!useSwapped) return plain(swapLast(a), b);
      const c = plain(swapLast(b), a);
      temps.push(c);
      return unTemp(swapLast(c), temps);
    }
    if (!useSwapped) return plain(a, swapLast(b));
    const c = plain(b, swapLast(a));
    temps.push(c);
    return unTemp(swapLast(c), temps);
  } finally {
    for (const t of temps) backend.disposeData(t.dataId);
  }
}

/** Removes `t` from the temporaries to dispose (it is the result). */
function unTemp(t: TensorInfoLike, temps: TensorInfoLike[]): TensorInfoLike {
  temps.splice(temps.indexOf(t), 1);
  return t;
}
