/**
 * `Slice` and `SplitV` on wasm (tfjs 4.22): the wasm `Slice` kernel begins with `readSync(x)`,
 * i.e. copies the whole input into a new JS array for every slice, and `SplitV` slices once per
 * piece (splitting the flat AdamW update of 0.97M values into 50 parameters took 700 ms). We
 * copy from heap views instead (bit-identical).
 */
import type { Tf } from "../backend.ts";
import {
  forEachIndex,
  heapView,
  type KernelFunc,
  replaceWasmKernel,
  type TensorInfoLike,
  type WasmBackendLike,
} from "./kernel.ts";

export function patchSlice(tf: Tf): string[] {
  const done: string[] = [];
  const slice = replaceWasmKernel(tf, "Slice", (wasm) =>
    wasm && ((args) => {
      const x = args.inputs.x;
      const [begin, size] = tf.slice_util.parseSliceParams(
        x as never,
        args.attrs?.begin as number[],
        args.attrs?.size as number[],
      );
      return sliceJs(args.backend as WasmBackendLike, x, begin, size);
    }) as KernelFunc);
  if (slice) done.push("Slice");
  const split = replaceWasmKernel(tf, "SplitV", (wasm) =>
    wasm && ((args) => {
      const x = args.inputs.x;
      const axis = tf.util.parseAxisParam(args.attrs?.axis as number, x.shape)[0];
      const sizes = tf.backend_util.prepareSplitSize(
        x as never,
        args.attrs?.numOrSizeSplits as number[] | number,
        axis,
      );
      const begin = x.shape.map(() => 0);
      return sizes.map((s) => {
        const size = x.shape.slice();
        size[axis] = s;
        const out = sliceJs(args.backend as WasmBackendLike, x, begin, size);
        begin[axis] += s;
        return out;
      });
    }) as KernelFunc);
  if (split) done.push("SplitV");
  return done;
}

function sliceJs(
  backend: WasmBackendLike,
  x: TensorInfoLike,
  begin: number[],
  size: number[],
): TensorInfoLike {
  const out = backend.makeOutput(size, x.dtype); // may grow the heap: take views after
  const n = size.reduce((p, d) => p * d, 1);
  if (n === 0) return out;
  const src = heapView(backend, x);
  const dst = heapView(backend, out);
  const r = x.shape.length;
  if (r === 0) {
    dst[0] = src[0];
    return out;
  }
  const stride = new Array<number>(r);
  stride[r - 1] = 1;
  for (let i = r - 2; i >= 0; i--) stride[i] = stride[i + 1] * x.shape[i + 1];
  // The largest trailing block that is copied whole: axes after the first partial one.
  let k = r - 1;
  while (k > 0 && size[k] === x.shape[k]) k--;
  const run = size.slice(k).reduce((p, d) => p * d, 1);
  let base = 0;
  for (let i = 0; i < r; i++) base += begin[i] * stride[i];
  const outer = size.slice(0, k);
  const outStride = new Array<number>(k);
  for (let i = k - 1, acc = run; i >= 0; i--) {
    outStride[i] = acc;
    acc *= size[i];
  }
  forEachIndex(outer, stride.slice(0, k), outStride, (si, di) => {
    const s0 = base + si;
    if (run >= 32) dst.set(src.subarray(s0, s0 + run), di);
    else for (let j = 0; j < run; j++) dst[di + j] = src[s0 + j];
  });
  return out;
}
