/** Recall@K, median and mean rank from ranks; their means over folds; flat metric names. */
import type { Protocol } from "../protocol.ts";
export interface DirectionMetrics {
  /** Number of queries. */
  n: number;
  /** Recall@K in percent (0-100), keyed by K. */
  recall: Record<number, number>;
  /** numpy-style median of the 1-based ranks (mean of the two middle values when n is even). */
  medianRank: number;
  meanRank: number;
}

export interface RetrievalMetrics {
  imageToText: DirectionMetrics;
  textToImage: DirectionMetrics;
  /** Sum of recall@K (percent) over the K values, both directions (R@1+5+10: max 600). */
  rsum: number;
}

export interface RetrievalResult extends RetrievalMetrics {
  protocol: Protocol;
  /** Per-query 1-based ranks: imageToText[i] per image, textToImage[c] per caption. */
  ranks: { imageToText: Int32Array; textToImage: Int32Array };
}

export interface FoldedRetrievalResult extends RetrievalMetrics {
  protocol: Protocol;
  /** Per-fold metrics; the top-level numbers are their means. */
  folds: RetrievalResult[];
}

export const DEFAULT_KS = [1, 5, 10];

/** numpy.median of integer ranks. */
function median(values: Int32Array): number {
  if (values.length === 0) return NaN;
  const s = Int32Array.from(values).sort();
  const h = s.length >> 1;
  return s.length % 2 === 1 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/** Recall@K (percent), median and mean rank of 1-based ranks. */
export function directionMetrics(ranks: Int32Array, ks: number[] = DEFAULT_KS): DirectionMetrics {
  const recall: Record<number, number> = {};
  let sum = 0;
  for (let q = 0; q < ranks.length; q++) sum += ranks[q];
  for (const k of ks) {
    let hits = 0;
    for (let q = 0; q < ranks.length; q++) if (ranks[q] <= k) hits++;
    recall[k] = ranks.length === 0 ? NaN : (100 * hits) / ranks.length;
  }
  return {
    n: ranks.length,
    recall,
    medianRank: median(ranks),
    meanRank: ranks.length === 0 ? NaN : sum / ranks.length,
  };
}

export function rsumOf(i2t: DirectionMetrics, t2i: DirectionMetrics, ks: number[]): number {
  let s = 0;
  for (const k of ks) s += i2t.recall[k] + t2i.recall[k];
  return s;
}

export function meanMetrics(results: RetrievalMetrics[], ks: number[]): RetrievalMetrics {
  const avg = (f: (r: RetrievalMetrics) => number) =>
    results.reduce((s, r) => s + f(r), 0) / results.length;
  const dir = (pick: (r: RetrievalMetrics) => DirectionMetrics): DirectionMetrics => {
    const recall: Record<number, number> = {};
    for (const k of ks) recall[k] = avg((r) => pick(r).recall[k]);
    return {
      n: results.reduce((s, r) => s + pick(r).n, 0),
      recall,
      medianRank: avg((r) => pick(r).medianRank),
      meanRank: avg((r) => pick(r).meanRank),
    };
  };
  return {
    imageToText: dir((r) => r.imageToText),
    textToImage: dir((r) => r.textToImage),
    rsum: avg((r) => r.rsum),
  };
}

/**
 * Flat metric names, as the retrieval stage records them: i2t_R@1 ... i2t_median_rank,
 * i2t_mean_rank, t2i_..., rsum (e.g. {"i2t_R@1": 52.1, ..., "rsum": 410.2}).
 */
export function retrievalMetricNames(m: RetrievalMetrics, prefix = ""): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [tag, d] of [["i2t", m.imageToText], ["t2i", m.textToImage]] as const) {
    for (const [k, v] of Object.entries(d.recall)) out[`${prefix}${tag}_R@${k}`] = v;
    out[`${prefix}${tag}_median_rank`] = d.medianRank;
    out[`${prefix}${tag}_mean_rank`] = d.meanRank;
  }
  out[`${prefix}rsum`] = m.rsum;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Per-query paired differences (what `diff` resamples; the statistics are in
// stages/lib/stats/intervals.ts)

/**
 * Per-unit differences of R@K(B) - R@K(A) in percent points, for two models ranked on the same
 * queries: per unit, 100 * (hits of B - hits of A) and the unit's query count, so that
 * sum(diff) / sum(size) is the R@K difference. A unit is a query, or with `clusters` (one id per
 * query, e.g. each caption's image for text->image) all the queries of a cluster, numbered in
 * order of first appearance, so correlated queries move together when resampled.
 */
export function hitDifferenceUnits(
  ranksA: Int32Array,
  ranksB: Int32Array,
  k: number,
  clusters?: Int32Array,
): { diff: Float64Array; size: Float64Array } {
  const n = ranksA.length;
  if (ranksB.length !== n) {
    throw new RangeError(`rank arrays differ in length: ${n} vs ${ranksB.length}`);
  }
  if (n === 0) throw new RangeError("no queries");
  if (clusters && clusters.length !== n) {
    throw new RangeError("clusters must have one id per query");
  }
  const unitOf = new Int32Array(n);
  let units = n;
  if (clusters) {
    const ids = new Map<number, number>();
    for (let q = 0; q < n; q++) {
      if (!ids.has(clusters[q])) ids.set(clusters[q], ids.size);
      unitOf[q] = ids.get(clusters[q])!;
    }
    units = ids.size;
  } else {
    for (let q = 0; q < n; q++) unitOf[q] = q;
  }
  const diff = new Float64Array(units), size = new Float64Array(units);
  for (let q = 0; q < n; q++) {
    diff[unitOf[q]] += 100 * ((ranksB[q] <= k ? 1 : 0) - (ranksA[q] <= k ? 1 : 0));
    size[unitOf[q]]++;
  }
  return { diff, size };
}
