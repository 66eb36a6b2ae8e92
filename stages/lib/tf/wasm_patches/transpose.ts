/**
 * `Transpose` on wasm (tfjs 4.22) is slow whenever the innermost axis moves (2-D [2048,128]:
 * 2.1 ms, 8 ns/element) and for rank 5 ([128,16,3,4,32] -> [3,128,4,16,32]: 45 ms), measured
 * single-threaded on this project's 2-CPU machine (min of 40). Those cases go to a JS kernel on
 * the wasm heap: axes are first merged/dropped, then contiguous inner runs are copied, or, when
 * the last axis moves, 32x32 tiles are transposed (0.35 ms and 1.2 ms for the two examples).
 * Cases the wasm kernel does well (rank <= 4 with a contiguous inner run, or a transposed plane
 * that fits in cache) stay on it. A transpose is a pure copy, so results are bit-identical.
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

export function patchTranspose(tf: Tf): boolean {
  return replaceWasmKernel(tf, "Transpose", (wasm) => {
    if (wasm === undefined) return undefined;
    return ((args) => {
      const x = args.inputs.x;
      const perm = args.attrs?.perm as number[];
      const plan = planTranspose(x.shape, perm);
      if (!plan.useJs) return wasm(args);
      return transposeJs(args.backend as WasmBackendLike, x, perm, plan);
    }) as KernelFunc;
  });
}

interface TransposePlan {
  useJs: boolean;
  /** Reduced input shape (size-1 axes dropped, axes that stay adjacent merged). */
  shape: number[];
  /** Reduced permutation: output axis i reads reduced input axis perm[i]. */
  perm: number[];
}

/** Simplifies a transpose and decides whether the JS kernel should do it. */
export function planTranspose(shape: number[], perm: number[]): TransposePlan {
  // Drop size-1 axes.
  const keep = shape.map((s) => s !== 1);
  const renum = new Map<number, number>();
  let k = 0;
  for (let i = 0; i < shape.length; i++) if (keep[i]) renum.set(i, k++);
  const s1 = shape.filter((_, i) => keep[i]);
  const p1 = perm.filter((p) => keep[p]).map((p) => renum.get(p)!);
  // Merge runs of output axes that read consecutive input axes.
  const groups: number[][] = [];
  for (const p of p1) {
    const g = groups[groups.length - 1];
    if (g !== undefined && g[g.length - 1] + 1 === p) g.push(p);
    else groups.push([p]);
  }
  const order = groups.map((g) => g[0]).sort((x, y) => x - y);
  const rshape = order.map((first) => {
    const g = groups.find((gg) => gg[0] === first)!;
    return g.reduce((acc, ax) => acc * s1[ax], 1);
  });
  const rperm = groups.map((g) => order.indexOf(g[0]));
  const r = rshape.length;
  if (r <= 1) return { useJs: false, shape: rshape, perm: rperm };
  // When the innermost axis moves, the wasm kernel is fine while the transposed plane fits in
  // cache ([2048,4,32] -> [2048,32,4]: 0.08 ms) and slow beyond (2-D [2048,128]: 2.1 ms).
  const lastMoves = rperm[r - 1] !== r - 1;
  const plane = lastMoves ? rshape[r - 1] * rshape[rperm[r - 1]] : 0;
  const useJs = r >= 5 || plane >= 16384;
  return { useJs, shape: rshape, perm: rperm };
}

function transposeJs(
  backend: WasmBackendLike,
  x: TensorInfoLike,
  perm: number[],
  plan: TransposePlan,
): TensorInfoLike {
  const outShape = perm.map((p) => x.shape[p]);
  const out = backend.makeOutput(outShape, x.dtype); // may grow the heap: take views after
  // Copy bit patterns: 4-byte dtypes as int32 (no float canonicalisation), bool as bytes.
  const src = heapView(backend, x);
  const dst = heapView(backend, out);
  const { shape, perm: p } = plan;
  const r = shape.length;
  const inStride = new Array<number>(r);
  inStride[r - 1] = 1;
  for (let i = r - 2; i >= 0; i--) inStride[i] = inStride[i + 1] * shape[i + 1];
  const oShape = p.map((a) => shape[a]);
  const oStride = new Array<number>(r);
  oStride[r - 1] = 1;
  for (let i = r - 2; i >= 0; i--) oStride[i] = oStride[i + 1] * oShape[i + 1];
  // Stride in the input of each output axis.
  const srcStrideOfOut = p.map((a) => inStride[a]);

  if (p[r - 1] === r - 1) {
    // The innermost run stays contiguous: copy runs of `run` elements.
    const run = shape[r - 1];
    forEachIndex(
      oShape.slice(0, r - 1),
      srcStrideOfOut.slice(0, r - 1),
      oStride.slice(0, r - 1),
      (si, di) => {
        for (let j = 0; j < run; j++) dst[di + j] = src[si + j];
      },
    );
    return out;
  }
  // The innermost input axis lands at output position b; the innermost output axis reads
  // input axis a. Transpose the (a, last) plane in tiles; iterate the other axes outside.
  const b = p.indexOf(r - 1);
  const na = oShape[r - 1]; // extent of input axis p[r-1]
  const nb = shape[r - 1];
  const sA = srcStrideOfOut[r - 1]; // input stride of the axis that is innermost in output
  const dB = oStride[b]; // output stride of the axis that is innermost in input
  const others = [...Array(r).keys()].filter((i) => i !== b && i !== r - 1);
  const T = 32; // tiles of 32x32, written row by row (measured fastest: 0.33 ms for [2048,128])
  forEachIndex(
    others.map((i) => oShape[i]),
    others.map((i) => srcStrideOfOut[i]),
    others.map((i) => oStride[i]),
    (si, di) => {
      for (let i0 = 0; i0 < na; i0 += T) {
        const i1 = Math.min(na, i0 + T);
        for (let j0 = 0; j0 < nb; j0 += T) {
          const j1 = Math.min(nb, j0 + T);
          for (let j = j0; j < j1; j++) {
            const dRow = di + j * dB;
            const sCol = si + j;
            for (let i = i0; i < i1; i++) dst[dRow + i] = src[sCol + i * sA];
          }
        }
      }
    },
  );
  return out;
}
