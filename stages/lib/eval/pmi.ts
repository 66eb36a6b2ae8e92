/**
 * PMI fidelity (synthetic data, where the true PMI(x, y) = log p(x, y) / (p(x) p(y)) is known):
 * how well a learned similarity s(x, y) reproduces it over a given list of pairs.
 * The contrastive optimum is s = PMI + const, so the constant is removed before the RMSE.
 *
 * - pearson: Pearson correlation of s and PMI.
 * - spearman: Pearson correlation of their ranks (ties get the average of their ranks).
 * - rmse: sqrt(mean((s + shift - PMI)^2)) with the best constant shift = mean(PMI - s)
 *   (equivalently the population standard deviation of s - PMI).
 * All pairs weigh equally; all values must be finite (drop pairs with p(x, y) = 0 first).
 */
import type { Protocol } from "./protocol.ts";

export interface PmiFidelity {
  protocol: Protocol;
  n: number;
  pearson: number;
  spearman: number;
  rmse: number;
  /** The best constant added to s. */
  shift: number;
}

/** Pearson correlation in f64 (NaN when either side is constant). */
export function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  if (b.length !== n) throw new RangeError(`lengths differ: ${n} vs ${b.length}`);
  if (n < 2) return NaN;
  let ma = 0, mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i];
    mb += b[i];
  }
  ma /= n;
  mb /= n;
  let sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = a[i] - ma, db = b[i] - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  if (saa === 0 || sbb === 0) return NaN;
  return sab / Math.sqrt(saa * sbb);
}

/** 1-based ranks, ties get the average of the ranks they span (scipy.stats.rankdata "average"). */
export function averageRanks(x: ArrayLike<number>): Float64Array {
  const n = x.length;
  const idx = Array.from({ length: n }, (_, i) => i).sort((i, j) => x[i] - x[j] || i - j);
  const r = new Float64Array(n);
  let k = 0;
  while (k < n) {
    let e = k + 1;
    while (e < n && x[idx[e]] === x[idx[k]]) e++;
    const avg = (k + 1 + e) / 2; // mean of ranks k+1 .. e
    for (let q = k; q < e; q++) r[idx[q]] = avg;
    k = e;
  }
  return r;
}

export function spearman(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return pearson(averageRanks(a), averageRanks(b));
}

export function pmiFidelity(
  similarity: ArrayLike<number>,
  truePmi: ArrayLike<number>,
  opts: { pairs?: string; similarityName?: string } = {},
): PmiFidelity {
  const n = similarity.length;
  if (truePmi.length !== n) throw new RangeError(`lengths differ: ${n} vs ${truePmi.length}`);
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(similarity[i]) || !Number.isFinite(truePmi[i])) {
      throw new RangeError(
        `pair ${i}: non-finite value (s=${similarity[i]}, pmi=${truePmi[i]}); drop pairs ` +
          "with p(x, y) = 0 before calling",
      );
    }
  }
  let shift = 0;
  for (let i = 0; i < n; i++) shift += truePmi[i] - similarity[i];
  shift /= n;
  let se = 0;
  for (let i = 0; i < n; i++) se += (similarity[i] + shift - truePmi[i]) ** 2;
  return {
    protocol: {
      name: "pmi-fidelity",
      version: 1,
      similarity: opts.similarityName ?? "unspecified",
      pairs: opts.pairs ?? "unspecified",
      metrics: "Pearson r; Spearman rho (average ranks for ties); RMSE after the best " +
        "constant shift (shift = mean(PMI - s)); unweighted over pairs",
      counts: { pairs: n },
    },
    n,
    pearson: pearson(similarity, truePmi),
    spearman: spearman(similarity, truePmi),
    rmse: n ? Math.sqrt(se / n) : NaN,
    shift,
  };
}
