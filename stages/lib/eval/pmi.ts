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
import { pearson } from "../stats/correlation.ts";

export interface PmiFidelity {
  protocol: Protocol;
  n: number;
  pearson: number;
  spearman: number;
  rmse: number;
  /** The best constant added to s. */
  shift: number;
}

export { pearson };

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

/**
 * Weighted Pearson correlation and RMSE after the best weighted shift (section 5 of
 * docs/evaluation.md): with weights w (>= 0, not all 0), means are w-weighted means,
 * `shift = sum w (PMI - s) / sum w` and `rmse = sqrt(sum w (s + shift - PMI)^2 / sum w)`.
 * With equal weights this is `pmiFidelity`'s Pearson and RMSE.
 */
export function weightedFidelity(
  similarity: ArrayLike<number>,
  truePmi: ArrayLike<number>,
  weight: ArrayLike<number>,
): { pearson: number; rmse: number; shift: number; n: number } {
  const n = similarity.length;
  if (truePmi.length !== n || weight.length !== n) {
    throw new RangeError(`lengths differ: ${n}, ${truePmi.length}, ${weight.length}`);
  }
  let sw = 0, ms = 0, mt = 0;
  for (let i = 0; i < n; i++) {
    const w = weight[i];
    if (
      !(w >= 0) || !Number.isFinite(w) || !Number.isFinite(similarity[i]) ||
      !Number.isFinite(truePmi[i])
    ) {
      throw new RangeError(
        `pair ${i}: bad value (s=${similarity[i]}, pmi=${truePmi[i]}, weight=${w})`,
      );
    }
    sw += w;
    ms += w * similarity[i];
    mt += w * truePmi[i];
  }
  if (!(sw > 0)) return { pearson: NaN, rmse: NaN, shift: NaN, n };
  ms /= sw;
  mt /= sw;
  let sst = 0, sss = 0, sts = 0;
  for (let i = 0; i < n; i++) {
    const w = weight[i];
    const ds = similarity[i] - ms, dt = truePmi[i] - mt;
    sss += w * ds * ds;
    sst += w * dt * dt;
    sts += w * ds * dt;
  }
  const shift = mt - ms;
  let se = 0;
  for (let i = 0; i < n; i++) se += weight[i] * (similarity[i] + shift - truePmi[i]) ** 2;
  return {
    pearson: sss === 0 || sst === 0 ? NaN : sts / Math.sqrt(sss * sst),
    rmse: Math.sqrt(se / sw),
    shift,
    n,
  };
}

/** PMI above which `restrictedFidelity` keeps pairs (nats). */
export const RESTRICT_PMI_ABOVE = -3;

/**
 * Unweighted Pearson and shifted RMSE over the pairs with PMI > `above` only (strictly), the
 * shift refitted on them; `n` = the pairs kept.
 */
export function restrictedFidelity(
  similarity: ArrayLike<number>,
  truePmi: ArrayLike<number>,
  above = RESTRICT_PMI_ABOVE,
): { pearson: number; rmse: number; shift: number; n: number } {
  if (truePmi.length !== similarity.length) {
    throw new RangeError(`lengths differ: ${similarity.length} vs ${truePmi.length}`);
  }
  const s: number[] = [];
  const t: number[] = [];
  for (let i = 0; i < truePmi.length; i++) {
    if (truePmi[i] > above) {
      s.push(similarity[i]);
      t.push(truePmi[i]);
    }
  }
  return weightedFidelity(s, t, new Float64Array(s.length).fill(1));
}

/** log sum_k exp(a[k]) over the given entries, in f64. */
function logSumExp(a: Float64Array): number {
  let m = -Infinity;
  for (let k = 0; k < a.length; k++) if (a[k] > m) m = a[k];
  if (m === -Infinity) return -Infinity;
  let s = 0;
  for (let k = 0; k < a.length; k++) s += Math.exp(a[k] - m);
  return m + Math.log(s);
}

/** KL(P || Q) for P = softmax(a), Q = softmax(b), in nats. */
export function softmaxKl(a: Float64Array, b: Float64Array): number {
  const la = logSumExp(a);
  const lb = logSumExp(b);
  let kl = 0;
  for (let k = 0; k < a.length; k++) {
    const lp = a[k] - la;
    if (lp === -Infinity) continue;
    kl += Math.exp(lp) * (lp - (b[k] - lb));
  }
  return Math.max(0, kl);
}

export interface ConditionalFidelity {
  /** Mean over grid images of KL(p(y | x) || q(y | x)) over the distinct grid captions. */
  imageToText: number;
  /** Mean over grid captions (columns) of KL(p(x | y) || q(x | y)) over the grid images. */
  textToImage: number;
  /** Per grid image, the image->text KL. */
  perImage: Float64Array;
  /** Per grid column, the text->image KL. */
  perCaption: Float64Array;
}

/**
 * Conditional fidelity on an [images x captions] grid: how far the conditionals a similarity
 * implies are from the true ones, the quantity InfoNCE's optimum s = PMI + c(x) makes 0.
 *
 * image->text, for each grid image x: over the distinct caption texts u of the grid,
 *   p(u | x) = p(u) exp(PMI(x, u)) / Z(x),   q(u | x) = p(u) exp(s(x, u)) / Z'(x),
 * with p(u) the exact marginal of the text (`logPy`), and the KL(p || q) is averaged over the
 * grid images. text->image, for each grid column y: over the grid images (each a draw from
 * p(x), so weighted equally), p(x | y) = exp(PMI(x, y)) / Z(y), q(x | y) = exp(s(x, y)) / Z'(y),
 * KL averaged over the columns (each a draw from p(y); a text that captions several grid images
 * counts once per column). A similarity s = PMI + c gets exactly 0 both ways; since both
 * conditionals are renormalised over the grid, so does s = PMI + c(x) image->text and
 * s = PMI + c(y) text->image. Columns with the same text must carry the same PMI and score
 * (`text[c]` is the index of column c's distinct text); the first such column is used.
 */
export function conditionalFidelity(opts: {
  rows: number;
  cols: number;
  /** Row-major [rows x cols] PMI and similarity, all finite. */
  pmi: ArrayLike<number>;
  score: ArrayLike<number>;
  /** Distinct-text index of each column (0 .. logPy.length - 1). */
  text: ArrayLike<number>;
  /** log p(u) of each distinct text (finite). */
  logPy: ArrayLike<number>;
}): ConditionalFidelity {
  const { rows: R, cols: C, pmi, score, text, logPy } = opts;
  const U = logPy.length;
  if (pmi.length !== R * C || score.length !== R * C || text.length !== C) {
    throw new RangeError(`grid shapes differ: ${R} x ${C}, ${pmi.length}, ${score.length}`);
  }
  for (let k = 0; k < R * C; k++) {
    if (!Number.isFinite(pmi[k]) || !Number.isFinite(score[k])) {
      throw new RangeError(`pair ${k}: non-finite value (s=${score[k]}, pmi=${pmi[k]})`);
    }
  }
  const first = new Int32Array(U).fill(-1);
  for (let c = 0; c < C; c++) {
    const u = text[c];
    if (!(Number.isInteger(u) && u >= 0 && u < U)) throw new RangeError(`column ${c}: text ${u}`);
    if (first[u] < 0) first[u] = c;
  }
  for (let u = 0; u < U; u++) {
    if (first[u] < 0) throw new RangeError(`distinct text ${u} has no column`);
    if (!Number.isFinite(logPy[u])) throw new RangeError(`log p(y) of text ${u} is ${logPy[u]}`);
  }
  const perImage = new Float64Array(R);
  const a = new Float64Array(U);
  const b = new Float64Array(U);
  for (let r = 0; r < R; r++) {
    for (let u = 0; u < U; u++) {
      a[u] = logPy[u] + pmi[r * C + first[u]];
      b[u] = logPy[u] + score[r * C + first[u]];
    }
    perImage[r] = softmaxKl(a, b);
  }
  const perCaption = new Float64Array(C);
  const ac = new Float64Array(R);
  const bc = new Float64Array(R);
  for (let c = 0; c < C; c++) {
    for (let r = 0; r < R; r++) {
      ac[r] = pmi[r * C + c];
      bc[r] = score[r * C + c];
    }
    perCaption[c] = softmaxKl(ac, bc);
  }
  const mean = (x: Float64Array) => x.reduce((s, v) => s + v, 0) / (x.length || NaN);
  return { imageToText: mean(perImage), textToImage: mean(perCaption), perImage, perCaption };
}
