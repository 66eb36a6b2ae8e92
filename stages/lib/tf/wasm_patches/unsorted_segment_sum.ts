/**
 * `UnsortedSegmentSum` is not registered for wasm in tfjs 4.22, and it is the gradient of
 * `gather` (the token embedding lookup). A plain JS implementation, sequential, hence
 * deterministic.
 */
import type { Tf } from "../backend.ts";
import {
  type KernelArgs,
  replaceWasmKernel,
  type TensorInfoLike,
  type WasmBackendLike,
} from "./kernel.ts";

export function patchUnsortedSegmentSum(tf: Tf): boolean {
  return replaceWasmKernel(
    tf,
    "UnsortedSegmentSum",
    (wasm) => wasm === undefined ? (args) => unsortedSegmentSumWasm(args) : undefined,
  );
}

function unsortedSegmentSumWasm(
  args: KernelArgs,
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
