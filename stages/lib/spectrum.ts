/**
 * Singular values of a dense real matrix, and the summaries `prepare/synthetic` records about
 * its PMI matrices (issue 14): the spectrum, how many singular values hold 99% of the energy
 * (sum of squares), the numerical rank at a relative tolerance, and the RMS error of the best
 * rank-d approximation (Eckart-Young: sqrt(sum_{i > d} sigma_i^2 / entries)).
 *
 * Method, in f64: Householder bidiagonalisation (Golub-Kahan; backward stable, so every singular
 * value is exact for a matrix within ~1e-13 relative of the input), then the singular values of
 * the bidiagonal B by bisection on its Golub-Kahan matrix [[0, B^T], [B, 0]] (a symmetric
 * tridiagonal matrix with zero diagonal whose eigenvalues are +-sigma_i), with Sturm counts.
 * The absolute error of each value is a small multiple of 1e-16 * sigma_max, far below the
 * tolerances used here. Cost ~ 4 m n^2 flops: about 2 s for 1176 x 1176 in Deno.
 */

/** Singular values (descending) of the row-major `rows x cols` matrix `a` (not modified). */
export function singularValues(a: ArrayLike<number>, rows: number, cols: number): Float64Array {
  if (!(Number.isInteger(rows) && Number.isInteger(cols) && rows >= 0 && cols >= 0)) {
    throw new RangeError(`bad shape ${rows} x ${cols}`);
  }
  if (a.length !== rows * cols) {
    throw new RangeError(`matrix has ${a.length} entries, expected ${rows} x ${cols}`);
  }
  // Work on an m x n copy with m >= n (the transpose has the same singular values).
  const tall = rows >= cols;
  const m = tall ? rows : cols;
  const n = tall ? cols : rows;
  if (n === 0) return new Float64Array(0);
  const w = new Float64Array(m * n);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const v = a[i * cols + j];
      if (!Number.isFinite(v)) throw new RangeError(`entry (${i}, ${j}) is not finite: ${v}`);
      if (tall) w[i * n + j] = v;
      else w[j * n + i] = v;
    }
  }
  const { d, e } = bidiagonalise(w, m, n);
  return bidiagonalSingularValues(d, e);
}

/**
 * Householder bidiagonalisation of the row-major m x n matrix `w` (m >= n), in place.
 * Returns the diagonal d (n) and superdiagonal e (n - 1) of B = U^T W V.
 */
function bidiagonalise(
  w: Float64Array,
  m: number,
  n: number,
): { d: Float64Array; e: Float64Array } {
  const d = new Float64Array(n);
  const e = new Float64Array(Math.max(0, n - 1));
  const v = new Float64Array(m);
  const acc = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    // Left reflector: zero w[k+1.., k].
    let norm2 = 0;
    for (let i = k; i < m; i++) norm2 += w[i * n + k] ** 2;
    const norm = Math.sqrt(norm2);
    if (norm === 0) {
      d[k] = 0;
    } else {
      const x0 = w[k * n + k];
      const alpha = x0 >= 0 ? -norm : norm;
      for (let i = k; i < m; i++) v[i] = w[i * n + k];
      v[k] = x0 - alpha;
      const vv = norm2 - x0 * x0 + v[k] * v[k];
      d[k] = alpha;
      if (vv > 0 && k + 1 < n) {
        acc.fill(0, k + 1, n);
        for (let i = k; i < m; i++) {
          const vi = v[i];
          if (vi === 0) continue;
          const row = i * n;
          for (let j = k + 1; j < n; j++) acc[j] += vi * w[row + j];
        }
        const f = 2 / vv;
        for (let j = k + 1; j < n; j++) acc[j] *= f;
        for (let i = k; i < m; i++) {
          const vi = v[i];
          if (vi === 0) continue;
          const row = i * n;
          for (let j = k + 1; j < n; j++) w[row + j] -= vi * acc[j];
        }
      }
    }
    if (k + 1 >= n) break;
    // Right reflector: zero w[k, k+2..].
    const row = k * n;
    let r2 = 0;
    for (let j = k + 1; j < n; j++) r2 += w[row + j] ** 2;
    const r = Math.sqrt(r2);
    if (k + 2 >= n || r === 0) {
      e[k] = w[row + k + 1];
      continue;
    }
    const y0 = w[row + k + 1];
    const beta = y0 >= 0 ? -r : r;
    const u = acc; // reuse: u[j] for j > k
    for (let j = k + 1; j < n; j++) u[j] = w[row + j];
    u[k + 1] = y0 - beta;
    const uu = r2 - y0 * y0 + u[k + 1] * u[k + 1];
    e[k] = beta;
    if (uu > 0) {
      const f = 2 / uu;
      for (let i = k + 1; i < m; i++) {
        const ri = i * n;
        let dot = 0;
        for (let j = k + 1; j < n; j++) dot += w[ri + j] * u[j];
        dot *= f;
        if (dot === 0) continue;
        for (let j = k + 1; j < n; j++) w[ri + j] -= dot * u[j];
      }
    }
  }
  return { d, e };
}

/** Singular values (descending) of the upper bidiagonal matrix with diagonal d, superdiagonal e. */
export function bidiagonalSingularValues(d: ArrayLike<number>, e: ArrayLike<number>): Float64Array {
  const n = d.length;
  if (e.length !== Math.max(0, n - 1)) throw new RangeError("superdiagonal length must be n - 1");
  // Off-diagonal of the 2n x 2n Golub-Kahan matrix: d0, e0, d1, e1, ..., d_{n-1}.
  const b2 = new Float64Array(2 * n - 1);
  let bound = 0;
  let maxB2 = 0;
  for (let i = 0; i < 2 * n - 1; i++) {
    const x = i % 2 === 0 ? d[i / 2] : e[(i - 1) / 2];
    b2[i] = x * x;
    if (b2[i] > maxB2) maxB2 = b2[i];
  }
  for (let i = 0; i < 2 * n; i++) {
    // Gershgorin: row i of the Golub-Kahan matrix has off-diagonals b[i - 1] and b[i].
    const s = (i > 0 ? Math.sqrt(b2[i - 1]) : 0) + (i < 2 * n - 1 ? Math.sqrt(b2[i]) : 0);
    if (s > bound) bound = s;
  }
  const out = new Float64Array(n);
  if (bound === 0) return out;
  const pivmin = Math.max(Number.MIN_VALUE * 1e10, 1e-290 * Math.max(1, maxB2));
  /** Number of singular values >= x (x > 0), from the Sturm count of the Golub-Kahan matrix. */
  const atLeast = (x: number): number => {
    let below = 0;
    let q = -x;
    if (Math.abs(q) < pivmin) q = -pivmin;
    if (q < 0) below++;
    for (let i = 1; i < 2 * n; i++) {
      q = -x - b2[i - 1] / q;
      if (Math.abs(q) < pivmin) q = -pivmin;
      if (q < 0) below++;
    }
    // Eigenvalues below x: the n negative ones (-sigma_i <= 0 < x) and the sigma_i < x.
    return 2 * n - below;
  };
  // The k-th largest singular value, for k = 1..n, each by bisection on [0, bound]; the
  // bracket of the previous (larger) one bounds the next from above.
  let hiPrev = bound * (1 + 1e-12);
  for (let k = 1; k <= n; k++) {
    let lo = 0;
    let hi = hiPrev;
    if (atLeast(Number.MIN_VALUE * 1e20) < k) {
      out.fill(0, k - 1);
      break;
    }
    for (let it = 0; it < 200 && hi - lo > 2e-16 * bound; it++) {
      const mid = 0.5 * (lo + hi);
      if (mid <= lo || mid >= hi) break;
      if (atLeast(mid) >= k) lo = mid;
      else hi = mid;
    }
    out[k - 1] = 0.5 * (lo + hi);
    hiPrev = hi;
  }
  return out;
}

/** The default relative tolerance of the numerical rank: sigma_i > RANK_RTOL * sigma_1. */
export const RANK_RTOL = 1e-6;
/** The energy fraction of the energy count. */
export const ENERGY_FRACTION = 0.99;
/** Relative tolerances of the extra ranks reported in `rankAt`. */
export const RANK_TOLERANCES = [1e-2, 1e-3, 1e-6] as const;
/** Ranks d of the best rank-d approximations whose RMS error is reported. */
export const RESIDUAL_RANKS = [1, 2, 4, 8, 16, 32, 64] as const;

export interface SpectrumSummary {
  /** [rows, cols] of the matrix. */
  shape: [number, number];
  /** All singular values, descending. */
  singularValues: number[];
  /** Smallest k with sigma_1^2 + ... + sigma_k^2 >= 0.99 * sum sigma_i^2 (0 for a zero matrix). */
  energy99: number;
  /** #{i : sigma_i > rtol * sigma_1}. */
  rank: number;
  rtol: number;
  /** The numerical rank at each of `RANK_TOLERANCES` (keys "1e-2", "1e-3", "1e-6"). */
  rankAt: Record<string, number>;
  /** RMS over the entries of A - A_d for the best rank-d approximation A_d, by d. */
  residualRms: Record<string, number>;
  /** RMS of the entries of A (the residual at d = 0). */
  rms: number;
}

/** Smallest k whose leading k squared singular values reach `fraction` of the total. */
export function energyCount(sv: ArrayLike<number>, fraction = ENERGY_FRACTION): number {
  let total = 0;
  for (let i = 0; i < sv.length; i++) total += sv[i] * sv[i];
  if (total === 0) return 0;
  let acc = 0;
  for (let i = 0; i < sv.length; i++) {
    acc += sv[i] * sv[i];
    if (acc >= fraction * total) return i + 1;
  }
  return sv.length;
}

/** #{i : sv[i] > rtol * sv[0]} (sv descending). */
export function numericalRank(sv: ArrayLike<number>, rtol = RANK_RTOL): number {
  if (!sv.length || !(sv[0] > 0)) return 0;
  let r = 0;
  for (let i = 0; i < sv.length; i++) if (sv[i] > rtol * sv[0]) r++;
  return r;
}

/** Spectrum and ranks of the row-major `rows x cols` matrix `a`. */
export function spectrum(
  a: ArrayLike<number>,
  rows: number,
  cols: number,
  rtol = RANK_RTOL,
): SpectrumSummary {
  const sv = singularValues(a, rows, cols);
  const entries = rows * cols;
  const tail = new Float64Array(sv.length + 1); // tail[d] = sum_{i >= d} sigma_i^2
  for (let i = sv.length - 1; i >= 0; i--) tail[i] = tail[i + 1] + sv[i] * sv[i];
  const residualRms: Record<string, number> = {};
  for (const d of RESIDUAL_RANKS) {
    residualRms[String(d)] = entries ? Math.sqrt(tail[Math.min(d, sv.length)] / entries) : 0;
  }
  return {
    shape: [rows, cols],
    singularValues: Array.from(sv),
    energy99: energyCount(sv),
    rank: numericalRank(sv, rtol),
    rtol,
    rankAt: Object.fromEntries(
      RANK_TOLERANCES.map((t) => [t.toExponential(), numericalRank(sv, t)]),
    ),
    residualRms,
    rms: entries ? Math.sqrt(tail[0] / entries) : 0,
  };
}
