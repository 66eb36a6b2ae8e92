/**
 * Kernel patches for tfjs-backend-wasm 4.22, installed by `initBackend`: one file per patch,
 * each with the measurement that justified it (single thread on this project's 2-CPU machine,
 * min of 40; see docs/model.md). All are tested against cpu in tests/ml_wasm.test.ts, and all
 * but the cost model's choice of product are bit-identical copies. Upgrading TF.js means
 * re-measuring each and deleting the files it no longer needs.
 *
 * `Conv2DBackpropFilter` is also missing on wasm; the model never uses conv2d (patches are cut
 * by reshape/transpose and embedded with a matmul), so nothing is patched for it.
 */
import type { Tf } from "../backend.ts";
import type { KernelFunc } from "./kernel.ts";
import { patchUnsortedSegmentSum } from "./unsorted_segment_sum.ts";
import { patchTranspose } from "./transpose.ts";
import { patchBatchMatMul } from "./batch_matmul.ts";
import { patchSlice } from "./slice.ts";
import { patchReductions } from "./reductions.ts";
import { patchTrig } from "./trig.ts";
import { patchGather } from "./gather.ts";
import { patchConcat } from "./concat.ts";

let installed = false;

/** Installs the wasm patches once per process; returns the names of the patched kernels. */
export function installWasmPatches(tf: Tf): string[] {
  if (installed) return [];
  installed = true;
  const patched: string[] = [];
  if (patchUnsortedSegmentSum(tf)) patched.push("UnsortedSegmentSum");
  if (patchTranspose(tf)) patched.push("Transpose");
  // Matmul and the reductions transpose with the patched kernel.
  const transpose = tf.getKernel("Transpose", "wasm")!.kernelFunc as unknown as KernelFunc;
  if (patchBatchMatMul(tf, transpose)) patched.push("BatchMatMul");
  patched.push(...patchSlice(tf), ...patchReductions(tf, transpose), ...patchTrig(tf));
  if (patchGather(tf)) patched.push("GatherV2");
  if (patchConcat(tf)) patched.push("Concat");
  return patched;
}
