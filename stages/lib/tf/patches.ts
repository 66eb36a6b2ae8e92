/**
 * Kernel patches for the wasm backend (tfjs 4.22), installed by `initBackend`.
 *
 * Measured on this project's 2-CPU machine (single thread, min of 40; see docs/model.md):
 *
 * 1. `UnsortedSegmentSum` is not registered for wasm, and it is the gradient of `gather`
 *    (token embedding lookup). We register a plain JS implementation (sequential, hence
 *    deterministic).
 * 2. `Transpose`: the wasm kernel is slow whenever the innermost axis moves (2-D [2048,128]:
 *    2.1 ms, 8 ns/element) and for rank 5 ([128,16,3,4,32] -> [3,128,4,16,32]: 45 ms). We
 *    replace those cases by a JS kernel on the wasm heap: axes are first merged/dropped, then
 *    contiguous inner runs are copied, or, when the last axis moves, 32x32 tiles are
 *    transposed (0.35 ms and 1.2 ms for the two examples). Cases the wasm kernel does well
 *    (rank <= 4 with a contiguous inner run, or a transposed plane that fits in cache) stay
 *    on it. A transpose is a pure copy, so
 *    results are bit-identical.
 * 3. `BatchMatMul` with `transposeA`/`transposeB` is many times slower on wasm than a plain
 *    product of materialised transposes (A*B^T 27.9 ms vs 4.9 ms, A^T*B 86.5 ms vs 5.3 ms on
 *    [1024,128]x[128,256]): tfjs sends every transposed or batched product to a scalar loop and
 *    only plain 2-D products to XNNPACK. matmul's gradient uses exactly those forms. We wrap
 *    the kernel: A^T B is computed as T(A)·B or as T(T(B)·A), and likewise A B^T and
 *    A^T B^T = T(B·A), choosing by a measured cost model: a JS transpose costs ~1.25 ns per
 *    element and XNNPACK re-packs the right operand on every call at ~4.3 ns per element.
 *    (The weight gradient x^T dy of [2048,128] x [2048,512]: 8.2 instead of 11.6 ms.)
 * 4. `Slice` and `SplitV`: the wasm `Slice` kernel begins with `readSync(x)`, i.e. copies the
 *    whole input into a new JS array for every slice, and `SplitV` slices once per piece
 *    (splitting the flat AdamW update of 0.97M values into 50 parameters took 700 ms). We copy
 *    from heap views instead (bit-identical).
 * 5. Reductions (`Sum`, `Mean`, `Max`, `Min`) over axes that are not innermost: the wasm
 *    kernels first transpose with the slow wasm transpose (sum over axis 0 of [2048,128],
 *    i.e. a bias gradient: 2.2 ms); we transpose with the patched kernel (0.45 ms in all).
 * 6. `GatherV2`: the wasm kernel copies element by element (2048 rows of 128: 7.9 ms); a JS
 *    kernel copying rows with `copyWithin` takes ~0.1 ms. Out-of-range indices throw, as on
 *    cpu.
 *
 * 7. `Cos` and `Sin`: the wasm kernels call emscripten's libm, ~70 ns per element (1.8M
 *    elements, one WPSE step's random-feature angles: 128 ms); a JS loop over heap views with
 *    V8's `Math.cos` / `Math.sin` (fdlibm, the same bits everywhere) takes a fraction of that.
 *    Only WPSE uses them; no other similarity's results depend on this patch.
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

  const tr = tf.getKernel("Transpose", "wasm");
  if (tr !== undefined) {
    const wasmTranspose = tr.kernelFunc as unknown as KernelFunc;
    tf.unregisterKernel("Transpose", "wasm");
    tf.registerKernel({
      kernelName: "Transpose",
      backendName: "wasm",
      setupFunc: tr.setupFunc,
      disposeFunc: tr.disposeFunc,
      kernelFunc: ((args: Parameters<KernelFunc>[0]) => {
        const x = args.inputs.x;
        const perm = args.attrs?.perm as number[];
        const plan = planTranspose(x.shape, perm);
        if (!plan.useJs) return wasmTranspose(args);
        return transposeJs(args.backend as WasmBackendLike, x, perm, plan);
      }) as never,
    });
    patched.push("Transpose");
  }
  const transposeKernel = tf.getKernel("Transpose", "wasm")!.kernelFunc as unknown as KernelFunc;

  const mm = tf.getKernel("BatchMatMul", "wasm");
  if (mm !== undefined) {
    const matmul = mm.kernelFunc as unknown as KernelFunc;
    tf.unregisterKernel("BatchMatMul", "wasm");
    tf.registerKernel({
      kernelName: "BatchMatMul",
      backendName: "wasm",
      setupFunc: mm.setupFunc,
      disposeFunc: mm.disposeFunc,
      kernelFunc: ((args: Parameters<KernelFunc>[0]) =>
        batchMatMulNoTranspose(args, matmul, transposeKernel)) as never,
    });
    patched.push("BatchMatMul");
  }

  // Slice / SplitV: the wasm Slice kernel starts with `readSync(x)`, a copy of the whole input
  // into a fresh JS array, for every slice; SplitV calls it once per piece (splitting the
  // 0.97M-parameter update vector into 50 tensors: 700 ms). We copy from heap views instead.
  const sliceKernel = tf.getKernel("Slice", "wasm");
  if (sliceKernel !== undefined) {
    tf.unregisterKernel("Slice", "wasm");
    tf.registerKernel({
      kernelName: "Slice",
      backendName: "wasm",
      kernelFunc: ((args: Parameters<KernelFunc>[0]) => {
        const x = args.inputs.x;
        const [begin, size] = tf.slice_util.parseSliceParams(
          x as never,
          args.attrs?.begin as number[],
          args.attrs?.size as number[],
        );
        return sliceJs(args.backend as WasmBackendLike, x, begin, size);
      }) as never,
    });
    patched.push("Slice");
  }
  if (tf.getKernel("SplitV", "wasm") !== undefined) {
    tf.unregisterKernel("SplitV", "wasm");
    tf.registerKernel({
      kernelName: "SplitV",
      backendName: "wasm",
      kernelFunc: ((args: Parameters<KernelFunc>[0]) => {
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
      }) as never,
    });
    patched.push("SplitV");
  }

  // Reductions over axes that are not innermost: the wasm kernels transpose internally with
  // the slow wasm transpose (sum over axis 0 of [2048,128]: 2.2 ms); we transpose with the
  // patched kernel first (0.45 ms in all). Bias gradients are exactly such sums.
  for (const name of ["Sum", "Mean", "Max", "Min"]) {
    const k = tf.getKernel(name, "wasm");
    if (k === undefined) continue;
    const reduce = k.kernelFunc as unknown as KernelFunc;
    tf.unregisterKernel(name, "wasm");
    tf.registerKernel({
      kernelName: name,
      backendName: "wasm",
      setupFunc: k.setupFunc,
      disposeFunc: k.disposeFunc,
      kernelFunc: ((args: Parameters<KernelFunc>[0]) =>
        reduceInnermost(args, reduce, transposeKernel)) as never,
    });
    patched.push(name);
  }

  for (const [name, fn] of [["Cos", Math.cos], ["Sin", Math.sin]] as const) {
    if (tf.getKernel(name, "wasm") === undefined) continue;
    tf.unregisterKernel(name, "wasm");
    tf.registerKernel({
      kernelName: name,
      backendName: "wasm",
      kernelFunc: ((args: Parameters<KernelFunc>[0]) =>
        unaryJs(args.backend as WasmBackendLike, args.inputs.x, fn)) as never,
    });
    patched.push(name);
  }

  if (tf.getKernel("GatherV2", "wasm") !== undefined) {
    const wasmGather = tf.getKernel("GatherV2", "wasm")!;
    const gather = wasmGather.kernelFunc as unknown as KernelFunc;
    tf.unregisterKernel("GatherV2", "wasm");
    tf.registerKernel({
      kernelName: "GatherV2",
      backendName: "wasm",
      setupFunc: wasmGather.setupFunc,
      disposeFunc: wasmGather.disposeFunc,
      kernelFunc: ((args: Parameters<KernelFunc>[0]) => {
        const batchDims = (args.attrs?.batchDims as number | undefined) ?? 0;
        if (batchDims !== 0) return gather(args);
        return gatherJs(args);
      }) as never,
    });
    patched.push("GatherV2");
  }
  return patched;
}

/** y = fn(x) elementwise (float32), on heap views. */
function unaryJs(b: WasmBackendLike, x: TensorInfoLike, fn: (v: number) => number): TensorInfoLike {
  if (x.dtype !== "float32") throw new Error(`unary JS kernel: ${x.dtype} input, need float32`);
  const out = b.makeOutput(x.shape, "float32");
  const xv = b.typedArrayFromHeap(x) as Float32Array;
  const ov = b.typedArrayFromHeap(out) as Float32Array;
  for (let i = 0; i < xv.length; i++) ov[i] = fn(xv[i]);
  return out;
}

// ---------------------------------------------------------------- matmul

function batchMatMulNoTranspose(
  args: Parameters<KernelFunc>[0],
  matmul: KernelFunc,
  transpose: KernelFunc,
): TensorInfoLike {
  const { transposeA, transposeB } = (args.attrs ?? {}) as {
    transposeA?: boolean;
    transposeB?: boolean;
  };
  const backend = args.backend as WasmBackendLike;
  if (!transposeA && !transposeB) return matmul(args) as TensorInfoLike;
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
    matmul({
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

// ---------------------------------------------------------------- reductions

function reduceInnermost(
  args: Parameters<KernelFunc>[0],
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

// ---------------------------------------------------------------- transpose

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

/** Calls f(srcOffset, dstOffset) for every index of `dims` (row-major), given both strides. */
function forEachIndex(
  dims: number[],
  srcStride: number[],
  dstStride: number[],
  f: (si: number, di: number) => void,
): void {
  const r = dims.length;
  if (r === 0) {
    f(0, 0);
    return;
  }
  const idx = new Array<number>(r).fill(0);
  let si = 0;
  let di = 0;
  for (;;) {
    f(si, di);
    let k = r - 1;
    while (k >= 0) {
      idx[k]++;
      si += srcStride[k];
      di += dstStride[k];
      if (idx[k] < dims[k]) break;
      si -= srcStride[k] * dims[k];
      di -= dstStride[k] * dims[k];
      idx[k] = 0;
      k--;
    }
    if (k < 0) return;
  }
}

// ---------------------------------------------------------------- slice

/** Int32 (or byte) views of a tensor's heap memory, for bit-exact copies. */
function heapView(backend: WasmBackendLike, t: TensorInfoLike): Int32Array | Uint8Array {
  const v = backend.typedArrayFromHeap(t);
  return v instanceof Uint8Array ? v : new Int32Array(v.buffer, v.byteOffset, v.length);
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

// ---------------------------------------------------------------- gather

function gatherJs(args: Parameters<KernelFunc>[0]): TensorInfoLike {
  const { x, indices } = args.inputs;
  const backend = args.backend as WasmBackendLike;
  const rank = x.shape.length;
  let axis = (args.attrs?.axis as number | undefined) ?? 0;
  if (axis < 0) axis += rank;
  const outer = x.shape.slice(0, axis).reduce((p, s) => p * s, 1);
  const dimA = x.shape[axis];
  const inner = x.shape.slice(axis + 1).reduce((p, s) => p * s, 1);
  const outShape = [...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)];
  const nIdx = indices.shape.reduce((p, s) => p * s, 1);
  // Indices are small: copy them out before allocating (an allocation may grow the heap).
  const ids = Int32Array.from(backend.readSync(indices.dataId));
  for (let i = 0; i < nIdx; i++) {
    if (ids[i] < 0 || ids[i] >= dimA) {
      throw new Error(`GatherV2: index ${ids[i]} is not in [0, ${dimA - 1}]`);
    }
  }
  const out = backend.makeOutput(outShape, x.dtype);
  const src = heapView(backend, x);
  const dst = heapView(backend, out);
  let d = 0;
  for (let o = 0; o < outer; o++) {
    const base = o * dimA * inner;
    for (let i = 0; i < nIdx; i++) {
      const s = base + ids[i] * inner;
      if (inner >= 64) {
        dst.set(src.subarray(s, s + inner), d);
        d += inner;
      } else {
        for (let k = 0; k < inner; k++) dst[d++] = src[s + k];
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------- segment sum
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
