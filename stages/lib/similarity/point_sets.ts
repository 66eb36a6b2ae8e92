/**
 * Plain-array helpers over weighted point sets (evaluation side, f64 accumulation): checks,
 * the per-set log-softmax of the point scores and softmax-weighted means.
 */
import type { PointSets } from "./similarity.ts";

export function validatePointSets(s: PointSets, what: string): void {
  if (s.data.length !== s.n * s.points * s.dim) {
    throw new RangeError(
      `${what}: data has ${s.data.length} values, expected ${s.n}x${s.points}x${s.dim}`,
    );
  }
  if (s.logits.length !== s.n * s.points) {
    throw new RangeError(
      `${what}: logits has ${s.logits.length} values, expected ${s.n}x${s.points}`,
    );
  }
}

/** Per-set log-softmax of the point scores (f64 internally); padding stays -Infinity. */
export function logSoftmaxSets(s: PointSets, what = "point sets"): Float32Array {
  const out = new Float32Array(s.n * s.points);
  for (let i = 0; i < s.n; i++) {
    const o = i * s.points;
    let mx = -Infinity;
    for (let m = 0; m < s.points; m++) mx = Math.max(mx, s.logits[o + m]);
    if (!Number.isFinite(mx)) {
      throw new Error(`${what}: set ${i} has no finite weight logit (max ${mx})`);
    }
    let sum = 0;
    for (let m = 0; m < s.points; m++) sum += Math.exp(s.logits[o + m] - mx);
    const lse = mx + Math.log(sum);
    for (let m = 0; m < s.points; m++) out[o + m] = s.logits[o + m] - lse;
  }
  return out;
}

/**
 * sum_m softmax(scores)_m * points_m per set, [n, dim] (f64 accumulation, not re-normalised);
 * padding (-Infinity) gets weight 0. With one point per set this is the point itself.
 */
export function softmaxWeightedMeans(s: PointSets): Float32Array {
  const { n, points: M, dim, data: points, logits } = s;
  const out = new Float32Array(n * dim);
  const w = new Float64Array(M);
  const acc = new Float64Array(dim);
  for (let i = 0; i < n; i++) {
    let mx = -Infinity;
    for (let m = 0; m < M; m++) mx = Math.max(mx, logits[i * M + m]);
    if (!Number.isFinite(mx)) throw new Error(`set ${i} has no finite weight logit`);
    let sum = 0;
    for (let m = 0; m < M; m++) sum += w[m] = Math.exp(logits[i * M + m] - mx);
    acc.fill(0);
    for (let m = 0; m < M; m++) {
      const a = w[m] / sum;
      if (a === 0) continue;
      const o = (i * M + m) * dim;
      for (let k = 0; k < dim; k++) acc[k] += a * points[o + k];
    }
    for (let k = 0; k < dim; k++) out[i * dim + k] = acc[k];
  }
  return out;
}

/** Rows of x [n, dim] scaled to unit norm in place (f64 norm); a zero row is an error. */
export function normalizeRows(x: Float32Array, dim: number, what: string): Float32Array {
  for (let o = 0; o < x.length; o += dim) {
    let s = 0;
    for (let k = 0; k < dim; k++) s += x[o + k] * x[o + k];
    const inv = 1 / Math.sqrt(s);
    if (!Number.isFinite(inv)) throw new Error(`${what}: row ${o / dim} has zero norm`);
    for (let k = 0; k < dim; k++) x[o + k] *= inv;
  }
  return x;
}

/** Prompts per class (zero-shot): every prompt's class must exist and every class needs one. */
export function classCounts(promptClass: Int32Array, nClasses: number): Int32Array {
  const counts = new Int32Array(nClasses);
  for (let t = 0; t < promptClass.length; t++) {
    const c = promptClass[t];
    if (!(c >= 0 && c < nClasses)) {
      throw new RangeError(`promptClass[${t}] = ${c} outside [0, ${nClasses})`);
    }
    counts[c]++;
  }
  const empty = counts.indexOf(0);
  if (empty >= 0) throw new Error(`class ${empty} has no prompt`);
  return counts;
}
