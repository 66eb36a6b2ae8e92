/**
 * Batched products with our SIMD kernel (`bmm` in kernels.wat), where tfjs 4.22 runs a scalar
 * loop: every batched product that is not a plain 2-D one goes to its `slow_batch_matmul` (~2
 * GFLOP/s). The attention's products ([B*H, 16, 32] x [B*H, 32, 16] in R1) took ~80 ms of a
 * ~450 ms training step there; `bmm` runs them at 23-30 GFLOP/s (one thread; docs/model.md) and
 * rounds exactly as tfjs' loop does (tests/ml_wasm_simd.test.ts).
 *
 * It takes products whose operands have the same leading (batch) dims, more than one product,
 * and m % 4 == 0 and n % 8 == 0 (its 4 x 8 register block); anything else stays with tfjs.
 */
import type { TensorInfoLike, WasmBackendLike } from "../wasm_patches/kernel.ts";
import { simdKernels } from "./instance.ts";

/** A · B for plain (untransposed) batched operands, or undefined when the kernel does not apply. */
export function simdBatchMatMul(
  backend: WasmBackendLike,
  a: TensorInfoLike,
  b: TensorInfoLike,
): TensorInfoLike | undefined {
  if (a.dtype !== "float32" || b.dtype !== "float32") return undefined;
  const r = a.shape.length;
  if (r < 3 || b.shape.length !== r) return undefined;
  const lead = a.shape.slice(0, -2);
  if (lead.some((d, i) => d !== b.shape[i])) return undefined;
  const batch = lead.reduce((x, y) => x * y, 1);
  const [m, k] = a.shape.slice(-2), n = b.shape[r - 1];
  if (batch < 2 || b.shape[r - 2] !== k || m % 4 !== 0 || n % 8 !== 0) return undefined;
  const kernels = simdKernels(backend);
  if (!kernels) return undefined;
  const out = backend.makeOutput([...lead, m, n], "float32");
  // Addresses after the output's allocation (which may grow the heap).
  const at = (t: TensorInfoLike) => backend.typedArrayFromHeap(t).byteOffset;
  kernels.bmm(at(a), at(b), at(out), batch, m, k, n);
  return out;
}
