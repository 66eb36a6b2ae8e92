/**
 * Zero-shot classification: each class is described by several text prompts (templates);
 * the prompts are pooled in the embedding and images are scored against the pooled class
 * embedding with the training similarity. How prompts pool depends on the scoring path:
 *
 * - pooled similarities: the similarity's own `poolPrompts` over the prompts' vectors (CLIP:
 *   normalise(mean_t normalise(e_t)); WPSE: the mean of the f(prompt_t)).
 * - kernel similarities (here): the class is the union of its prompts' weighted point sets,
 *   each prompt's weights alpha_ti divided by its number of prompts T_c (log-weights - log T_c).
 *   Its kernel mean embedding is the mean of the prompts' mean embeddings, so for KME
 *   s(x, class) = log( (1/T_c) sum_t exp(s(x, prompt_t)) ).
 *
 * Metrics: top-1, top-5 (only when there are >= 5 classes) and mean per-class recall (top-1
 * recall averaged over the classes that have test images), in percent. Ties are
 * pessimistic: rank = 1 + #{other classes scoring >= the true class}.
 */
import { classCounts, logSoftmaxSets } from "../similarity/point_sets.ts";
import type { PointSets } from "../similarity/similarity.ts";
import type { BlockScorer } from "./retrieval/scores.ts";
import type { Protocol } from "./protocol.ts";

/**
 * Kernel pooling: prompt point sets -> one point set per class holding the union of its
 * prompts' points (padded with -Infinity logits to the largest class). The class logits are
 * normalised log-weights: log softmax(prompt logits) - log T_c.
 */
export function kernelClassPointSets(
  prompts: PointSets,
  promptClass: Int32Array,
  nClasses: number,
): PointSets {
  if (promptClass.length !== prompts.n) {
    throw new RangeError(`promptClass has ${promptClass.length} entries for ${prompts.n} prompts`);
  }
  const counts = classCounts(promptClass, nClasses);
  const logw = logSoftmaxSets(prompts, "prompts");
  const N = prompts.points, d = prompts.dim;
  const maxT = Math.max(...counts);
  const P = maxT * N;
  const data = new Float32Array(nClasses * P * d);
  const logits = new Float32Array(nClasses * P).fill(-Infinity);
  const filled = new Int32Array(nClasses);
  for (let t = 0; t < prompts.n; t++) {
    const c = promptClass[t];
    const slot = filled[c]++;
    const dst = c * P + slot * N;
    data.set(prompts.data.subarray(t * N * d, (t + 1) * N * d), dst * d);
    const shift = Math.log(counts[c]);
    for (let n = 0; n < N; n++) logits[dst + n] = logw[t * N + n] - shift;
  }
  return { n: nClasses, points: P, dim: d, data, logits };
}

export interface ZeroShotOptions {
  /** Images per block when scoring through a BlockScorer (default 1024). */
  imageBlock?: number;
  split?: string;
  similarity?: string;
  /** e.g. "80 CLIP ImageNet templates". */
  prompts?: string;
  /** How the prompts were pooled into a class. */
  pooling?: string;
}

export interface ZeroShotResult {
  protocol: Protocol;
  n: number;
  /** Percent. */
  top1: number;
  /** Percent; null with fewer than 5 classes. */
  top5: number | null;
  meanPerClassRecall: number;
  /** 1-based rank of the true class per image. */
  ranks: Int32Array;
}

/**
 * Evaluates image x class scores: a full [nImages, nClasses] matrix or a BlockScorer whose
 * "captions" are the classes. `labels[i]` is image i's class.
 */
export async function evaluateZeroShot(
  scores: Float32Array | BlockScorer,
  labels: Int32Array,
  nClasses: number,
  opts: ZeroShotOptions = {},
): Promise<ZeroShotResult> {
  const nI = labels.length;
  for (let i = 0; i < nI; i++) {
    if (!(labels[i] >= 0 && labels[i] < nClasses)) {
      throw new RangeError(`labels[${i}] = ${labels[i]} outside [0, ${nClasses})`);
    }
  }
  const ranks = new Int32Array(nI);
  const rankRows = (blk: Float32Array, i0: number, ni: number) => {
    for (let r = 0; r < ni; r++) {
      const o = r * nClasses;
      const own = blk[o + labels[i0 + r]];
      if (own !== own) throw new Error(`score of image ${i0 + r}, its class is NaN`);
      let ahead = 0;
      for (let k = 0; k < nClasses; k++) {
        const v = blk[o + k];
        if (v !== v) throw new Error(`score of image ${i0 + r}, class ${k} is NaN`);
        if (v >= own) ahead++;
      }
      ranks[i0 + r] = ahead; // counts the true class itself: 1 + #others >= own
    }
  };
  if (scores instanceof Float32Array) {
    if (scores.length !== nI * nClasses) {
      throw new RangeError(`scores has ${scores.length} values, expected ${nI}x${nClasses}`);
    }
    rankRows(scores, 0, nI);
  } else {
    if (scores.nImages !== nI || scores.nCaptions !== nClasses) {
      throw new RangeError(
        `scorer is ${scores.nImages}x${scores.nCaptions}, expected ${nI}x${nClasses}`,
      );
    }
    const bi = opts.imageBlock ?? 1024;
    for (let i0 = 0; i0 < nI; i0 += bi) {
      const ni = Math.min(bi, nI - i0);
      rankRows(await scores.scoreBlock(i0, ni, 0, nClasses), i0, ni);
    }
  }
  let top1 = 0, top5 = 0;
  const count = new Int32Array(nClasses), hit = new Int32Array(nClasses);
  for (let i = 0; i < nI; i++) {
    count[labels[i]]++;
    if (ranks[i] === 1) {
      top1++;
      hit[labels[i]]++;
    }
    if (ranks[i] <= 5) top5++;
  }
  let recall = 0, present = 0;
  for (let k = 0; k < nClasses; k++) {
    if (count[k] > 0) {
      recall += hit[k] / count[k];
      present++;
    }
  }
  return {
    protocol: {
      name: "zero-shot",
      version: 1,
      similarity: opts.similarity ?? "unspecified",
      split: opts.split ?? "unspecified",
      prompts: opts.prompts ?? "unspecified",
      pooling: opts.pooling ?? "unspecified",
      tieRule: "pessimistic: rank = 1 + #{other classes scoring >= the true class}",
      metrics: "top-1, top-5 (only with >= 5 classes), mean per-class recall (top-1, over the " +
        "classes with test images), percent",
      counts: { images: nI, classes: nClasses, classesWithImages: present },
    },
    n: nI,
    top1: nI ? (100 * top1) / nI : NaN,
    top5: nClasses >= 5 ? (nI ? (100 * top5) / nI : NaN) : null,
    meanPerClassRecall: present ? (100 * recall) / present : NaN,
    ranks,
  };
}
