/**
 * Intervals for the difference B - A between two sets of results: the one statistics module
 * behind `diff`, the HTML report and the tests (docs/evaluation.md, section 9).
 *
 * - `tInterval`: Student's t-interval on per-seed paired deltas (training randomness). Seeds are
 *   paired (the same seed trains A and B on the same data in the same order), so the deltas are
 *   the unit; with n seeds the interval is mean +- t_{0.975, n-1} * sd / sqrt(n), sd with n - 1.
 *   t rather than a normal quantile because n is small (3 to 5 seeds): with n = 3 the normal
 *   quantile 1.96 instead of t_{0.975,2} = 4.30 would cover about 80%, not 95%, of the time.
 *   It assumes the deltas are roughly normal; with so few seeds nothing better is checkable.
 * - `queryBootstrap`: a paired percentile bootstrap over test queries (the same resampled indices
 *   for A and B and, when the seed pairs share their queries, for every pair): test-set sampling
 *   only, conditional on the trained models.
 * - `hierarchicalBootstrap`: resample seed pairs with replacement, then queries. When the pairs
 *   share their queries (one test set) the query indices are drawn once per resample for all the
 *   drawn seeds: seeds and queries are crossed, not nested, and drawing queries independently per
 *   seed would average the shared test-set noise away. This is Owen's "pigeonhole" bootstrap of a
 *   crossed design (Owen 2007, Ann. Appl. Stat. 1(2)), mildly conservative. Pairs with different
 *   queries are resampled each on its own (nested; Davison & Hinkley 1997, section 3.8).
 *
 * Bootstrap intervals are percentile intervals (Efron & Tibshirani 1993, ch. 13) at 95% with
 * numpy's linear interpolation; 1,000 resamples from the seeded PRNG (seed 0), so an interval is
 * a pure function of its inputs. Percentile intervals of a mean undercover when the top level has
 * few units (with 3 seeds a resampled mean falls at the smallest delta 1 time in 27, so the 2.5%
 * point is the smallest delta and the seed level covers about 75%), which is why `diff` reports,
 * where both exist, the hull of the t-interval and the hierarchical bootstrap (see
 * `hullInterval`).
 */
import { Rng } from "../random.ts";

/** Interval mass of every interval here. */
export const CONFIDENCE = 0.95;

export const BOOTSTRAP = { iterations: 1000, seed: 0, confidence: CONFIDENCE };

/** An estimated difference B - A and its interval. */
export interface Estimate {
  delta: number;
  lo: number;
  hi: number;
}

/** True when [lo, hi] excludes 0. */
export const excludesZero = (e: { lo: number; hi: number }) => e.lo > 0 || e.hi < 0;

// ---------------------------------------------------------------------------------------------
// Student t

const LANCZOS = [
  0.99999999999980993,
  676.5203681218851,
  -1259.1392167224028,
  771.32342877765313,
  -176.61502916214059,
  12.507343278686905,
  -0.13857109526572012,
  9.9843695780195716e-6,
  1.5056327351493116e-7,
];

/** log Gamma(x) for x > 0 (Lanczos, g = 7; relative error about 1e-15). */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  x -= 1;
  let a = LANCZOS[0];
  const t = x + 7.5;
  for (let i = 1; i < LANCZOS.length; i++) a += LANCZOS[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction of the incomplete beta function (modified Lentz). */
function betaContinuedFraction(x: number, a: number, b: number): number {
  const TINY = 1e-300;
  const qab = a + b, qap = a + 1, qam = a - 1;
  let c = 1;
  let d = 1 - (qab * x) / qap;
  if (Math.abs(d) < TINY) d = TINY;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 10000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (qab + m) * x) / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const step = d * c;
    h *= step;
    if (Math.abs(step - 1) < 1e-16) break;
  }
  return h;
}

/** The regularised incomplete beta function I_x(a, b). */
export function regularizedBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(
    logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log1p(-x),
  );
  return x < (a + 1) / (a + b + 2)
    ? (front * betaContinuedFraction(x, a, b)) / a
    : 1 - (front * betaContinuedFraction(1 - x, b, a)) / b;
}

/** P(T > t) for t >= 0, T Student t with df degrees of freedom: I_{df/(df+t^2)}(df/2, 1/2) / 2. */
function upperTail(t: number, df: number): number {
  return 0.5 * regularizedBeta(df / (df + t * t), df / 2, 0.5);
}

/** The cumulative distribution function of Student's t with `df` > 0 degrees of freedom. */
export function studentTCdf(t: number, df: number): number {
  if (!(df > 0)) throw new RangeError(`degrees of freedom must be > 0, got ${df}`);
  if (Number.isNaN(t)) return NaN;
  if (t === Infinity) return 1;
  if (t === -Infinity) return 0;
  return t >= 0 ? 1 - upperTail(t, df) : upperTail(-t, df);
}

/**
 * The p-quantile of Student's t with `df` > 0 degrees of freedom, 0 < p < 1: bisection on the
 * upper tail (monotone), to the last bits of a double.
 */
export function studentTQuantile(p: number, df: number): number {
  if (!(df > 0)) throw new RangeError(`degrees of freedom must be > 0, got ${df}`);
  if (!(p > 0 && p < 1)) throw new RangeError(`p must be in (0, 1), got ${p}`);
  if (p === 0.5) return 0;
  if (p < 0.5) return -studentTQuantile(1 - p, df);
  const tail = 1 - p;
  let lo = 0, hi = 1;
  while (upperTail(hi, df) > tail) {
    lo = hi;
    hi *= 2;
  }
  for (let i = 0; i < 200 && hi - lo > 1e-15 * hi; i++) {
    const mid = 0.5 * (lo + hi);
    if (upperTail(mid, df) > tail) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

/** A t-interval with what it rests on. */
export interface TInterval extends Estimate {
  n: number;
  df: number;
  /** Sample standard deviation of the deltas (n - 1). */
  sd: number;
  /** The t quantile used, t_{1 - alpha/2, n - 1}. */
  quantile: number;
}

/**
 * Student's t-interval of the mean of paired deltas (one per seed): mean +- t * sd / sqrt(n),
 * with n - 1 degrees of freedom. Needs n >= 2 finite deltas.
 */
export function tInterval(deltas: ArrayLike<number>, confidence = CONFIDENCE): TInterval {
  const n = deltas.length;
  if (n < 2) throw new RangeError(`a t-interval needs at least 2 deltas, got ${n}`);
  let mean = 0;
  for (let i = 0; i < n; i++) mean += deltas[i];
  mean /= n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (deltas[i] - mean) ** 2;
  const sd = Math.sqrt(ss / (n - 1));
  const quantile = studentTQuantile(1 - (1 - confidence) / 2, n - 1);
  const half = (quantile * sd) / Math.sqrt(n);
  return { delta: mean, lo: mean - half, hi: mean + half, n, df: n - 1, sd, quantile };
}

// ---------------------------------------------------------------------------------------------
// Bootstrap

/** numpy.percentile with linear interpolation on an ascending array; q in [0, 1]. */
export function percentileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const h = (n - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, n - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

/**
 * One seed pair's per-query paired results for one metric. A unit is what the bootstrap draws:
 * a query, or a cluster of queries that must move together (e.g. the captions of one image).
 * The metric's difference is sum(diff) / sum(size) over the units drawn.
 */
export interface PairedUnits {
  /** Per unit, the summed per-query difference B - A (already in the metric's scale). */
  diff: Float64Array;
  /** Per unit, the number of queries it holds (1 for single queries). */
  size: Float64Array;
}

export interface BootstrapOptions {
  /** Resamples (default 1000). */
  iterations?: number;
  /** PRNG seed (default 0). */
  seed?: number;
  /** Interval mass (default 0.95: the 2.5th and 97.5th percentiles). */
  confidence?: number;
}

function sum(a: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return s;
}

/** The observed difference: the mean over pairs of sum(diff) / sum(size). */
export function observedDifference(pairs: PairedUnits[]): number {
  let s = 0;
  for (const p of pairs) s += sum(p.diff) / sum(p.size);
  return s / pairs.length;
}

function check(pairs: PairedUnits[], shared: boolean) {
  if (!pairs.length) throw new RangeError("no pairs");
  for (const p of pairs) {
    if (p.diff.length !== p.size.length || !p.diff.length) {
      throw new RangeError("each pair needs one size per unit and at least one unit");
    }
    if (shared && p.diff.length !== pairs[0].diff.length) {
      throw new RangeError("shared units: every pair must have the same units");
    }
  }
}

/**
 * Percentile bootstrap of the mean over seed pairs of sum(diff) / sum(size). `resampleSeeds`:
 * draw the pairs with replacement first (hierarchical) or keep them all (queries only).
 * `shared`: the pairs have the same units (one test set), and one draw of unit indices serves
 * every pair of a resample; otherwise each pair's units are drawn on their own.
 */
function bootstrap(
  pairs: PairedUnits[],
  shared: boolean,
  resampleSeeds: boolean,
  opts: BootstrapOptions,
): Estimate {
  check(pairs, shared);
  const iterations = opts.iterations ?? BOOTSTRAP.iterations;
  const confidence = opts.confidence ?? BOOTSTRAP.confidence;
  const rng = new Rng(opts.seed ?? BOOTSTRAP.seed);
  const n = pairs.length;
  const chosen = new Int32Array(n);
  const stats = new Float64Array(iterations);
  const U = pairs[0].diff.length;
  const drawn = new Int32Array(U);
  for (let b = 0; b < iterations; b++) {
    for (let j = 0; j < n; j++) chosen[j] = resampleSeeds ? rng.int(n) : j;
    let total = 0;
    if (shared) {
      let m = 0;
      for (let i = 0; i < U; i++) {
        drawn[i] = rng.int(U);
        m += pairs[0].size[drawn[i]];
      }
      for (let j = 0; j < n; j++) {
        const d = pairs[chosen[j]].diff;
        let s = 0;
        for (let i = 0; i < U; i++) s += d[drawn[i]];
        total += m > 0 ? s / m : 0;
      }
    } else {
      for (let j = 0; j < n; j++) {
        const p = pairs[chosen[j]];
        const Up = p.diff.length;
        let s = 0, m = 0;
        for (let i = 0; i < Up; i++) {
          const u = rng.int(Up);
          s += p.diff[u];
          m += p.size[u];
        }
        total += m > 0 ? s / m : 0;
      }
    }
    stats[b] = total / n;
  }
  stats.sort();
  const alpha = (1 - confidence) / 2;
  return {
    delta: observedDifference(pairs),
    lo: percentileSorted(stats, alpha),
    hi: percentileSorted(stats, 1 - alpha),
  };
}

/**
 * Paired bootstrap over queries only, pooled over seed pairs: test-set sampling, conditional
 * on the trained models; training randomness is not in it.
 */
export function queryBootstrap(
  pairs: PairedUnits[],
  shared: boolean,
  opts: BootstrapOptions = {},
): Estimate {
  return bootstrap(pairs, shared, false, opts);
}

/**
 * Hierarchical bootstrap: seed pairs with replacement, then queries (crossed when `shared`).
 * Covers training randomness and test-set sampling; needs >= 2 pairs.
 */
export function hierarchicalBootstrap(
  pairs: PairedUnits[],
  shared: boolean,
  opts: BootstrapOptions = {},
): Estimate {
  if (pairs.length < 2) throw new RangeError("a bootstrap over seeds needs at least 2 pairs");
  return bootstrap(pairs, shared, true, opts);
}

/**
 * The smallest interval containing both: the seed-level interval of a metric that has both a
 * t-interval (small-sample quantile, training randomness only) and a hierarchical bootstrap
 * (test-set sampling too, but a percentile that undercovers with few seeds). Its coverage is at
 * least that of either, so it excludes 0 only when both do. `delta` is `a`'s.
 */
export function hullInterval(a: Estimate, b: Estimate): Estimate {
  return { delta: a.delta, lo: Math.min(a.lo, b.lo), hi: Math.max(a.hi, b.hi) };
}
