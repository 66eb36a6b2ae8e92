/**
 * stages/lib/stats/intervals.ts: Student t quantiles against closed forms and tables, the
 * seed-level t-interval on hand-checkable deltas and its coverage, the query and the
 * seeds x queries bootstraps (determinism, coverage sanity on simulated crossed designs), and
 * the `*` rule of `diff` (seed-level interval only).
 */
import assert from "node:assert/strict";
import {
  excludesZero,
  hierarchicalBootstrap,
  hullInterval,
  type PairedUnits,
  percentileSorted,
  queryBootstrap,
  studentTCdf,
  studentTQuantile,
  tInterval,
} from "../stages/lib/stats/intervals.ts";
import { hitDifferenceUnits } from "../stages/lib/eval/retrieval/mod.ts";
import { type DiffRow, fmtIntervals } from "../pipeline/diff.ts";
import { Rng } from "../stages/lib/random.ts";

const close = (x: number, y: number, tol: number, what = "") =>
  assert.ok(Math.abs(x - y) <= tol * Math.max(1, Math.abs(y)), `${what}: ${x} vs ${y}`);

Deno.test("studentTQuantile: closed forms for 1 and 2 df, tables for more, normal limit", () => {
  for (const p of [0.6, 0.9, 0.975, 0.995, 0.9995]) {
    // df = 1 is the Cauchy distribution; df = 2 has t = (2p - 1) / sqrt(2 p (1 - p)).
    close(studentTQuantile(p, 1), Math.tan(Math.PI * (p - 0.5)), 1e-12, `df 1, p ${p}`);
    close(studentTQuantile(p, 2), (2 * p - 1) / Math.sqrt(2 * p * (1 - p)), 1e-12, `df 2 p ${p}`);
  }
  // scipy.stats.t.ppf(0.975, df).
  const table: [number, number][] = [
    [1, 12.706204736174694],
    [2, 4.302652729749462],
    [3, 3.1824463052837078],
    [4, 2.7764451051977934],
    [9, 2.262157162798205],
    [10, 2.228138851986274],
    [30, 2.0422724563012378],
  ];
  for (const [df, t] of table) close(studentTQuantile(0.975, df), t, 1e-13, `df ${df}`);
  close(studentTQuantile(0.975, 1e7), 1.959963984540054, 1e-6, "normal limit");
  assert.equal(studentTQuantile(0.5, 3), 0);
  close(studentTQuantile(0.025, 4), -2.7764451051977934, 1e-10, "lower tail");
  // The CDF inverts the quantile, and is symmetric.
  for (const df of [1, 2.5, 7]) {
    for (const p of [0.01, 0.3, 0.8, 0.99]) {
      close(studentTCdf(studentTQuantile(p, df), df), p, 1e-12);
    }
  }
  close(studentTCdf(-1.3, 5) + studentTCdf(1.3, 5), 1, 1e-14, "symmetry");
  assert.throws(() => studentTQuantile(1, 3), RangeError);
  assert.throws(() => studentTQuantile(0.9, 0), RangeError);
});

Deno.test("tInterval: deltas [1, 2, 3] give 2 +- t(0.975, 2) / sqrt(3)", () => {
  const t = tInterval([1, 2, 3]);
  // mean 2, sd 1, se 1 / sqrt(3), t_{0.975,2} = 4.303: half-width 2.484.
  assert.equal(t.delta, 2);
  assert.equal(t.n, 3);
  assert.equal(t.df, 2);
  assert.equal(t.sd, 1);
  close(t.quantile, 4.302652729749462, 1e-12);
  close(t.hi - t.delta, 4.302652729749462 / Math.sqrt(3), 1e-12, "half-width");
  close(t.lo, 2 - 2.4841377117503, 1e-12, "lo");
  assert.ok(excludesZero(t) === false && t.lo < 0);
  // Two seeds: 1 df, t = 12.706.
  const two = tInterval([0.5, 1.5]);
  close(two.hi - 1, 12.706204736174694 * (Math.SQRT1_2 / Math.SQRT2), 1e-10, "n = 2");
  // Equal deltas: a zero-width interval at the delta.
  assert.deepEqual([tInterval([3, 3, 3]).lo, tInterval([3, 3, 3]).hi], [3, 3]);
  assert.throws(() => tInterval([1]), RangeError);
});

Deno.test("tInterval covers 95% of normal deltas with 3 seeds; a normal quantile would not", () => {
  const rng = new Rng(42);
  const reps = 4000;
  let covered = 0, coveredZ = 0;
  for (let r = 0; r < reps; r++) {
    const d = [0, 0, 0].map(() => 1 + 0.5 * rng.normal());
    const t = tInterval(d);
    if (t.lo <= 1 && 1 <= t.hi) covered++;
    const zHalf = (1.959963984540054 * t.sd) / Math.sqrt(3);
    if (Math.abs(t.delta - 1) <= zHalf) coveredZ++;
  }
  assert.ok(Math.abs(covered / reps - 0.95) < 0.015, `t coverage ${covered / reps}`);
  assert.ok(coveredZ / reps < 0.85, `z coverage ${coveredZ / reps}`);
});

Deno.test("percentileSorted matches numpy linear interpolation", () => {
  const x = [1, 2, 3, 4];
  assert.equal(percentileSorted(x, 0.5), 2.5);
  assert.equal(percentileSorted(x, 0.025), 1.075);
  assert.equal(percentileSorted(x, 1), 4);
  assert.ok(Number.isNaN(percentileSorted([], 0.5)));
});

Deno.test("queryBootstrap: deterministic with its seed; the interval holds the true difference", () => {
  const n = 2000;
  // A hits at K=1 on 60% of queries, B on 50%: B - A is exactly -10 points.
  const A = new Int32Array(n).map((_, q) => (q % 5 < 3 ? 1 : 4));
  const B = new Int32Array(n).map((_, q) => (q % 2 === 0 ? 1 : 7));
  const units = [hitDifferenceUnits(A, B, 1)];
  const r1 = queryBootstrap(units, true, { iterations: 500, seed: 7 });
  assert.deepEqual(r1, queryBootstrap(units, true, { iterations: 500, seed: 7 }));
  assert.notDeepEqual(r1, queryBootstrap(units, true, { iterations: 500, seed: 8 }));
  close(r1.delta, -10, 1e-12);
  assert.ok(r1.lo < -10 && -10 < r1.hi && r1.lo > -15 && r1.hi < -5, `${r1.lo} ${r1.hi}`);
  // At K=5 both hit everywhere except B's rank-7 queries.
  close(queryBootstrap([hitDifferenceUnits(A, B, 5)], true).delta, -50, 1e-12);
  // Identical models: a degenerate [0, 0] interval.
  const same = queryBootstrap([hitDifferenceUnits(A, A, 1)], true, { iterations: 100 });
  assert.deepEqual([same.lo, same.hi], [0, 0]);
  // Clusters (e.g. the captions of one image) are resampled whole.
  const clusters = new Int32Array(n).map((_, q) => Math.floor(q / 5));
  const cu = hitDifferenceUnits(A, B, 1, clusters);
  assert.equal(cu.diff.length, n / 5);
  assert.ok(cu.size.every((s) => s === 5));
  const c1 = queryBootstrap([cu], true, { iterations: 300, seed: 11 });
  assert.deepEqual(c1, queryBootstrap([cu], true, { iterations: 300, seed: 11 }));
  assert.ok(c1.lo <= -10 && -10 <= c1.hi);
});

/** Per-query differences of a crossed design: seed effect + shared query effect + noise. */
function crossed(
  rng: Rng,
  seeds: number,
  queries: number,
  sd: { seed: number; query: number; noise: number },
): PairedUnits[] {
  const q = Float64Array.from({ length: queries }, () => sd.query * rng.normal());
  return Array.from({ length: seeds }, () => {
    const s = sd.seed * rng.normal();
    return {
      diff: q.map((x) => s + x + sd.noise * rng.normal()),
      size: new Float64Array(queries).fill(1),
    };
  });
}

function coverage(
  sd: { seed: number; query: number; noise: number },
  f: (p: PairedUnits[]) => { lo: number; hi: number },
  reps = 150,
  seeds = 10,
): number {
  const rng = new Rng(2024);
  let hit = 0;
  for (let r = 0; r < reps; r++) {
    const iv = f(crossed(rng, seeds, 100, sd));
    if (iv.lo <= 0 && 0 <= iv.hi) hit++;
  }
  return hit / reps;
}

Deno.test("hierarchicalBootstrap: deterministic; covers training and test-set noise", () => {
  const pairs = crossed(new Rng(1), 4, 50, { seed: 1, query: 1, noise: 1 });
  const h = hierarchicalBootstrap(pairs, true, { iterations: 300, seed: 3 });
  assert.deepEqual(h, hierarchicalBootstrap(pairs, true, { iterations: 300, seed: 3 }));
  assert.notDeepEqual(h, hierarchicalBootstrap(pairs, true, { iterations: 300, seed: 4 }));
  assert.equal(h.delta, queryBootstrap(pairs, true).delta);
  assert.throws(() => hierarchicalBootstrap(pairs.slice(0, 1), true), RangeError);
  assert.throws(() =>
    queryBootstrap([pairs[0], { diff: new Float64Array(3), size: new Float64Array(3) }], true)
  );

  const opts = { iterations: 200 };
  // Seeds vary a lot: resampling queries only misses most of the spread, seeds x queries not.
  const seedy = { seed: 2, query: 3, noise: 3 };
  const hier = coverage(seedy, (p) => hierarchicalBootstrap(p, true, opts));
  const query = coverage(seedy, (p) => queryBootstrap(p, true, opts));
  assert.ok(hier >= 0.85, `seeds x queries coverage ${hier}`);
  assert.ok(query <= 0.75, `queries-only coverage ${query}`);
  // The test set's noise is shared by every seed: crossed resampling keeps it, resampling each
  // seed's queries on its own (nested) would average it away.
  const shared = { seed: 0.2, query: 5, noise: 1 };
  const crossedCov = coverage(shared, (p) => hierarchicalBootstrap(p, true, opts));
  const nestedCov = coverage(shared, (p) => hierarchicalBootstrap(p, false, opts));
  assert.ok(crossedCov >= 0.88, `crossed coverage ${crossedCov}`);
  assert.ok(nestedCov <= 0.6, `nested coverage ${nestedCov}`);
});

Deno.test("with 3 seeds the bootstrap's seed level undercovers; the hull with t does not", () => {
  // Training randomness dominates: with 3 seeds a percentile bootstrap over seeds is about
  // [smallest, largest] delta (75% coverage); the t-interval's small-sample quantile fixes it.
  const sd = { seed: 2, query: 0.1, noise: 0.1 };
  const opts = { iterations: 200 };
  const seedDeltas = (p: PairedUnits[]) => p.map((u) => u.diff.reduce((a, b) => a + b) / 100);
  const boot = coverage(sd, (p) => hierarchicalBootstrap(p, true, opts), 300, 3);
  const hull = coverage(
    sd,
    (p) => hullInterval(tInterval(seedDeltas(p)), hierarchicalBootstrap(p, true, opts)),
    300,
    3,
  );
  assert.ok(boot <= 0.82, `bootstrap alone ${boot}`);
  assert.ok(hull >= 0.92, `hull ${hull}`);
});

Deno.test("hullInterval contains both, and excludes 0 only when both do", () => {
  const t = { delta: 2, lo: -0.5, hi: 4.5 }, b = { delta: 2.1, lo: 1, hi: 3.2 };
  assert.deepEqual(hullInterval(t, b), { delta: 2, lo: -0.5, hi: 4.5 });
  assert.equal(excludesZero(hullInterval(t, b)), false);
  assert.equal(excludesZero(hullInterval({ delta: 2, lo: 0.5, hi: 3 }, b)), true);
  assert.equal(excludesZero({ lo: -3, hi: -1 }), true);
});

Deno.test("diff rows: `*` only for a seed-level interval that excludes 0", () => {
  const base: DiffRow = { section: "metrics", name: "retrieval.i2t_R@1", a: 1, b: 3, delta: 2 };
  // One seed per side: the query interval excludes 0, yet no star, and it says what it covers.
  const one = fmtIntervals({
    ...base,
    queryCi: { lo: 0.5, hi: 3.5, method: "bootstrap", n: 1 },
  });
  assert.equal(
    one,
    "95% CI [0.5, 3.5] (queries only, 1 seed pair: training randomness not covered)",
  );
  // Seeds: the t-interval includes 0, the query interval does not: no star.
  const noStar = fmtIntervals({
    ...base,
    seedCi: { lo: -0.5, hi: 4.5, method: "t+bootstrap", n: 3 },
    queryCi: { lo: 0.5, hi: 3.5, method: "bootstrap", n: 3 },
    significant: false,
  });
  assert.equal(
    noStar,
    "95% CI [-0.5, 4.5] (seeds: t ∪ seeds×queries bootstrap, n=3); queries only [0.5, 3.5]",
  );
  const star = fmtIntervals({
    ...base,
    seedCi: { lo: 0.1, hi: 3.9, method: "t", n: 5 },
    significant: true,
  });
  assert.equal(star, "95% CI [0.1, 3.9] * (seeds: t, n=5)");
  assert.equal(fmtIntervals(base), "");
});
