/**
 * Pair scores for evaluation, in plain TypeScript / WebAssembly (no TensorFlow.js): exact up to
 * f32 rounding, deterministic, and pair-deterministic (a score does not depend on the block it
 * is computed in), so chunked retrieval equals unchunked retrieval exactly. Two scorers, one per
 * scoring path of a similarity (stages/lib/similarity/similarity.ts); similarity_scoring.ts
 * picks the path from the similarity:
 *
 * - PooledScorer: s = scale * <f(x), f(y)> over vectors computed once per input.
 * - KernelScorer: s = finish(LSE_ij(<u_i, v_j> * invSigma2 + log alpha_i + log beta_j)),
 *   alpha = softmax(image point scores), beta = softmax(caption point scores), padding points
 *   have score -Infinity. Engines: "wasm" (SIMD kernel, wasm_kme.ts; f32 dot products and sums,
 *   the same bits on every machine), "blas" (OpenBLAS sgemm for the dot products + the same
 *   wasm log-sum-exp, blas_kme.ts; 1.5-1.8x faster end to end, equal to "wasm" up to f32
 *   rounding) and "js" (f64 throughout; slower; a second reference).
 *
 * `createParallelScorer` runs a KernelScorer in Web Workers (one per core) behind the same
 * BlockScorer interface; each worker loads the similarity from its record.
 */
import type { BlockScorer } from "./retrieval/scores.ts";
import { WasmKmeKernel } from "./wasm_kme.ts";
import { BlasKmeKernel } from "./blas_kme.ts";
import { type KernelScore, type KmeKernel, paddedShape } from "./kme_kernel.ts";
import { logSoftmaxSets, validatePointSets } from "../similarity/point_sets.ts";
import type { PointSets, SimilarityRecord } from "../similarity/similarity.ts";

export type { PointSets };
export type { KernelScore };

export type KmeBackend = "wasm" | "blas" | "js";

export interface KernelSpec {
  images: PointSets;
  captions: PointSets;
  score: KernelScore;
  /** Default "wasm". */
  backend?: KmeBackend;
  /** What the similarity is, for protocols (e.g. "kme sigma2=0.05"). */
  similarity?: string;
}

export interface PooledSpec {
  /** [nImages, dim] vectors f(x). */
  images: Float32Array;
  /** [nCaptions, dim]. */
  captions: Float32Array;
  dim: number;
  /** Default 1 (plain dot product). */
  scale?: number;
  similarity?: string;
}

/** A synchronous in-thread scorer. */
export interface SyncScorer extends BlockScorer {
  scoreBlock(i0: number, ni: number, c0: number, nc: number): Float32Array;
  scorePairs(images: Int32Array, captions: Int32Array): Float32Array;
  readonly description: string;
}

function checkBlock(s: BlockScorer, i0: number, ni: number, c0: number, nc: number): void {
  if (
    !(Number.isInteger(i0) && Number.isInteger(ni) && Number.isInteger(c0) &&
      Number.isInteger(nc)) ||
    i0 < 0 || c0 < 0 || ni < 0 || nc < 0 ||
    i0 + ni > s.nImages || c0 + nc > s.nCaptions
  ) {
    throw new RangeError(`block (${i0}+${ni}, ${c0}+${nc}) outside ${s.nImages}x${s.nCaptions}`);
  }
}

export class KernelScorer implements SyncScorer {
  readonly nImages: number;
  readonly nCaptions: number;
  readonly description: string;
  private readonly score: KernelScore;
  private readonly la: Float32Array;
  private readonly lb: Float32Array;
  private readonly kernel?: KmeKernel;

  /** The raw sets, kept only by the "js" backend (the wasm kernel holds a packed copy). */
  private readonly sets?: { images: PointSets; captions: PointSets };

  constructor(spec: KernelSpec) {
    const { images, captions, score } = spec;
    validatePointSets(images, "images");
    validatePointSets(captions, "captions");
    if (images.dim !== captions.dim) {
      throw new RangeError(`dims differ: images ${images.dim}, captions ${captions.dim}`);
    }
    if (!(score.invSigma2 > 0 && Number.isFinite(score.invSigma2))) {
      throw new RangeError(`invSigma2 must be > 0 and finite, got ${score.invSigma2}`);
    }
    this.nImages = images.n;
    this.nCaptions = captions.n;
    this.score = score;
    this.la = logSoftmaxSets(images, "images");
    this.lb = logSoftmaxSets(captions, "captions");
    const backend = spec.backend ?? "wasm";
    let engine: string = backend;
    if (backend === "wasm" || backend === "blas") {
      const shape = paddedShape(images.points, captions.points, images.dim);
      const kernel = backend === "wasm" ? new WasmKmeKernel(shape) : new BlasKmeKernel(shape);
      if (kernel instanceof BlasKmeKernel) engine = `blas (OpenBLAS ${kernel.blas.corename})`;
      kernel.load(
        {
          n: images.n,
          M: images.points,
          dim: images.dim,
          points: images.data,
          logWeights: this.la,
        },
        {
          n: captions.n,
          N: captions.points,
          dim: captions.dim,
          points: captions.data,
          logWeights: this.lb,
        },
      );
      this.kernel = kernel;
    } else if (backend === "js") {
      this.sets = { images, captions };
    } else {
      throw new RangeError(`unknown KME backend "${backend}" (wasm, blas or js)`);
    }
    this.description = `${spec.similarity ?? `kernel invSigma2=${score.invSigma2}`} ` +
      `backend=${engine}`;
  }

  scoreBlock(i0: number, ni: number, c0: number, nc: number): Float32Array {
    checkBlock(this, i0, ni, c0, nc);
    if (this.kernel) {
      const out = new Float32Array(ni * nc);
      return this.kernel.scoreBlock(i0, ni, c0, nc, this.score, out);
    }
    const out = new Float32Array(ni * nc);
    for (let r = 0; r < ni; r++) {
      for (let c = 0; c < nc; c++) {
        out[r * nc + c] = this.score.finish(this.pairLseJs(i0 + r, c0 + c));
      }
    }
    return out;
  }

  scorePairs(images: Int32Array, captions: Int32Array): Float32Array {
    if (this.kernel) return this.kernel.scorePairs(images, captions, this.score);
    const out = new Float32Array(images.length);
    for (let p = 0; p < images.length; p++) {
      out[p] = this.score.finish(this.pairLseJs(images[p], captions[p]));
    }
    return out;
  }

  /** The pair's log-sum-exp in f64; padding points (log-weight -Infinity) are skipped. */
  private pairLseJs(i: number, c: number): number {
    const { images: A, captions: B } = this.sets!;
    const d = A.dim, M = A.points, N = B.points, inv = this.score.invSigma2;
    const la = this.la, lb = this.lb, a = A.data, b = B.data;
    let mx = -Infinity;
    const xs = new Float64Array(M * N);
    for (let m = 0; m < M; m++) {
      const wa = la[i * M + m];
      for (let n = 0; n < N; n++) {
        const wb = lb[c * N + n];
        if (wa === -Infinity || wb === -Infinity) {
          xs[m * N + n] = -Infinity;
          continue;
        }
        const pa = (i * M + m) * d, pb = (c * N + n) * d;
        let dot = 0;
        for (let k = 0; k < d; k++) dot += a[pa + k] * b[pb + k];
        const x = dot * inv + wa + wb;
        xs[m * N + n] = x;
        if (x > mx) mx = x;
      }
    }
    let sum = 0;
    for (let k = 0; k < M * N; k++) sum += Math.exp(xs[k] - mx);
    return mx + Math.log(sum);
  }
}

export class PooledScorer implements SyncScorer {
  readonly nImages: number;
  readonly nCaptions: number;
  readonly description: string;
  private readonly scale: number;

  constructor(private readonly spec: PooledSpec) {
    const { images, captions, dim } = spec;
    if (images.length % dim !== 0 || captions.length % dim !== 0) {
      throw new RangeError(`embedding lengths are not multiples of dim ${dim}`);
    }
    this.nImages = images.length / dim;
    this.nCaptions = captions.length / dim;
    this.scale = spec.scale ?? 1;
    this.description = spec.similarity ?? `pooled scale=${this.scale}`;
  }

  scoreBlock(i0: number, ni: number, c0: number, nc: number): Float32Array {
    checkBlock(this, i0, ni, c0, nc);
    const { images: u, captions: v, dim: d } = this.spec;
    const out = new Float32Array(ni * nc);
    const s = this.scale;
    for (let r = 0; r < ni; r++) {
      const pa = (i0 + r) * d;
      for (let c = 0; c < nc; c++) {
        const pb = (c0 + c) * d;
        let dot = 0;
        for (let k = 0; k < d; k++) dot += u[pa + k] * v[pb + k];
        out[r * nc + c] = s * dot;
      }
    }
    return out;
  }

  scorePairs(images: Int32Array, captions: Int32Array): Float32Array {
    const out = new Float32Array(images.length);
    for (let p = 0; p < images.length; p++) {
      out[p] = this.scoreBlock(images[p], 1, captions[p], 1)[0];
    }
    return out;
  }
}

/** What a worker needs to build a KernelScorer: data, engine, and the similarity to load. */
export interface KernelWorkerSpec {
  images: PointSets;
  captions: PointSets;
  backend?: KmeBackend;
  similarity: SimilarityRecord;
}

// ---- Web Worker pool ----------------------------------------------------------------------

export interface ParallelScorer extends BlockScorer {
  scoreBlock(i0: number, ni: number, c0: number, nc: number): Promise<Float32Array>;
  scorePairs(images: Int32Array, captions: Int32Array): Promise<Float32Array>;
  readonly workers: number;
  readonly description: string;
  /** Terminates the workers. */
  close(): void;
}

interface Pending {
  resolve: (x: Float32Array) => void;
  reject: (e: Error) => void;
  worker: number;
}

/**
 * Runs a KernelScorer in `workers` Web Workers (default: navigator.hardwareConcurrency) and
 * spreads blocks over them. Each worker holds its own copy of the data and loads the similarity
 * from its record (score_worker.ts). Results are identical to the in-thread scorer's (same code,
 * pair-deterministic).
 */
export async function createParallelScorer(
  spec: KernelWorkerSpec,
  opts: { workers?: number } = {},
): Promise<ParallelScorer> {
  const n = Math.max(1, opts.workers ?? navigator.hardwareConcurrency ?? 1);
  const url = new URL("./score_worker.ts", import.meta.url).href;
  const workers: Worker[] = [];
  const load = new Int32Array(n);
  const pending = new Map<number, Pending>();
  let nextId = 0;
  let failed: Error | undefined;
  const ready: Promise<{ nImages: number; nCaptions: number; description: string }>[] = [];
  for (let w = 0; w < n; w++) {
    const worker = new Worker(url, { type: "module" });
    workers.push(worker);
    ready.push(
      new Promise((resolve, reject) => {
        worker.onmessage = (e: MessageEvent) => {
          const m = e.data;
          if (m.type === "ready") {
            worker.onmessage = (ev: MessageEvent) => onResult(w, ev.data);
            resolve(m);
          } else reject(new Error(m.message));
        };
        worker.onerror = (e) => {
          e.preventDefault();
          const err = new Error(`score worker ${w}: ${e.message}`);
          failed = err;
          reject(err);
          for (const [id, p] of pending) {
            if (p.worker === w) {
              pending.delete(id);
              p.reject(err);
            }
          }
        };
      }),
    );
    worker.postMessage({ type: "init", spec });
  }
  function onResult(
    w: number,
    m: { type: string; id: number; out?: Float32Array; message?: string },
  ) {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    load[w]--;
    if (m.type === "result") p.resolve(m.out!);
    else p.reject(new Error(`score worker ${w}: ${m.message}`));
  }
  let info;
  try {
    info = await Promise.all(ready);
  } catch (e) {
    for (const w of workers) w.terminate();
    throw e;
  }
  const request = (msg: Record<string, unknown>, transfer: Transferable[] = []) => {
    if (failed) return Promise.reject(failed);
    let w = 0;
    for (let k = 1; k < n; k++) if (load[k] < load[w]) w = k;
    const id = nextId++;
    load[w]++;
    return new Promise<Float32Array>((resolve, reject) => {
      pending.set(id, { resolve, reject, worker: w });
      workers[w].postMessage({ ...msg, id }, transfer);
    });
  };
  return {
    nImages: info[0].nImages,
    nCaptions: info[0].nCaptions,
    workers: n,
    description: `${info[0].description} workers=${n}`,
    scoreBlock: (i0, ni, c0, nc) => request({ type: "block", i0, ni, c0, nc }),
    scorePairs: (images, captions) => request({ type: "pairs", images, captions }),
    close() {
      for (const w of workers) w.terminate();
      for (const p of pending.values()) p.reject(new Error("scorer closed"));
      pending.clear();
    },
  };
}
