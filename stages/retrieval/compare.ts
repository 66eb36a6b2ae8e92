/**
 * The retrieval stage's `compare` hook (used by `diff`): a paired bootstrap of the R@K
 * difference B - A over queries, pooled over seed pairs. Light: reads the rank files only.
 *
 * - Each pair (a, b) is two retrieval outputs on the same queries (same test set), e.g.
 *   clip and kme trained with the same seed.
 * - When every pair has the same queries (same caption -> image map), the per-query hit
 *   differences are averaged over the pairs, and the bootstrap resamples queries (the same
 *   indices for every pair and both sides). Otherwise each pair is resampled on its own
 *   (stratified) and the per-pair differences are averaged.
 * - image->text: the unit is an image (one query). text->image: the unit is an image with all
 *   its captions (clusters), so correlated captions of one image move together; the statistic
 *   is 100 * (summed hit differences) / (summed queries).
 * - 1,000 resamples, seeded PRNG (seed 0), 95% percentile interval (numpy linear
 *   interpolation). delta = the observed mean difference (percent points).
 */
import { join } from "node:path";
import type { InputHandle, Interval } from "../../pipeline/stage.ts";
import { Rng } from "../lib/random.ts";

export const BOOTSTRAP = { iterations: 1000, seed: 0, confidence: 0.95, ks: [1, 5, 10] };

async function readI32(dir: string, name: string): Promise<Int32Array | undefined> {
  try {
    const b = await Deno.readFile(join(dir, name));
    const buf = new ArrayBuffer(b.byteLength);
    new Uint8Array(buf).set(b);
    return new Int32Array(buf);
  } catch {
    return undefined;
  }
}

interface Side {
  i2t: Int32Array;
  t2i: Int32Array;
  captionImage: Int32Array;
}

async function readSide(h: InputHandle): Promise<Side | undefined> {
  const [i2t, t2i, captionImage] = await Promise.all([
    readI32(h.dir, "ranks_i2t.i32"),
    readI32(h.dir, "ranks_t2i.i32"),
    readI32(h.dir, "caption_image.i32"),
  ]);
  if (!i2t || !t2i || !captionImage || t2i.length !== captionImage.length) return undefined;
  return { i2t, t2i, captionImage };
}

const sameArray = (x: Int32Array, y: Int32Array) =>
  x.length === y.length && x.every((v, i) => v === y[i]);

/** numpy.percentile (linear) of a sorted array, q in [0, 1]. */
function percentile(sorted: Float64Array, q: number): number {
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h), hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

/** Units of one stratum: per unit, the summed hit difference for each K and the query count. */
interface Stratum {
  sums: Float64Array[]; // [K][unit]
  size: Float64Array; // [unit]
}

function stratum(
  diffs: (k: number, q: number) => number,
  nQueries: number,
  unitOf: (q: number) => number,
  nUnits: number,
  ks: number[],
): Stratum {
  const sums = ks.map(() => new Float64Array(nUnits));
  const size = new Float64Array(nUnits);
  for (let q = 0; q < nQueries; q++) {
    const u = unitOf(q);
    size[u]++;
    ks.forEach((k, j) => sums[j][u] += diffs(k, q));
  }
  return { sums, size };
}

/** Bootstrap over strata: per resample, the mean over strata of 100 * sum / size. */
function bootstrap(strata: Stratum[], ks: number[]): Interval[] {
  const { iterations, seed, confidence } = BOOTSTRAP;
  const rng = new Rng(seed);
  const stats = ks.map(() => new Float64Array(iterations));
  const observed = ks.map((_, j) =>
    strata.reduce((s, st) => s + (100 * sum(st.sums[j])) / sum(st.size), 0) / strata.length
  );
  const acc = new Float64Array(ks.length);
  for (let b = 0; b < iterations; b++) {
    const tot = new Float64Array(ks.length);
    for (const st of strata) {
      const U = st.size.length;
      acc.fill(0);
      let m = 0;
      for (let j = 0; j < U; j++) {
        const u = rng.int(U);
        m += st.size[u];
        for (let k = 0; k < ks.length; k++) acc[k] += st.sums[k][u];
      }
      for (let k = 0; k < ks.length; k++) tot[k] += m > 0 ? (100 * acc[k]) / m : 0;
    }
    for (let k = 0; k < ks.length; k++) stats[k][b] = tot[k] / strata.length;
  }
  const alpha = (1 - confidence) / 2;
  return ks.map((_, k) => {
    const s = stats[k].sort();
    return { delta: observed[k], lo: percentile(s, alpha), hi: percentile(s, 1 - alpha) };
  });
}

function sum(a: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return s;
}

/** Pooled paired bootstrap of R@K(B) - R@K(A) for both directions; keys like "i2t_R@1". */
export async function compareRetrieval(
  pairs: { a: InputHandle; b: InputHandle }[],
): Promise<Record<string, Interval>> {
  const sides: [Side, Side][] = [];
  for (const { a, b } of pairs) {
    const [sa, sb] = await Promise.all([readSide(a), readSide(b)]);
    if (
      sa && sb && sa.i2t.length === sb.i2t.length && sameArray(sa.captionImage, sb.captionImage)
    ) {
      sides.push([sa, sb]);
    }
  }
  if (!sides.length) return {};
  const ks = BOOTSTRAP.ks;
  const hit = (r: number, k: number) => (r <= k ? 1 : 0);
  const shared = sides.every(([s]) =>
    s.i2t.length === sides[0][0].i2t.length &&
    sameArray(s.captionImage, sides[0][0].captionImage)
  );
  const groups: [Side, Side][][] = shared ? [sides] : sides.map((p) => [p]);
  const out: Record<string, Interval> = {};
  for (const dir of ["i2t", "t2i"] as const) {
    const strata = groups.map((g) => {
      const first = g[0][0];
      const nQ = first[dir].length;
      const nImages = first.i2t.length;
      const diffs = (k: number, q: number) =>
        g.reduce((s, [A, B]) => s + hit(B[dir][q], k) - hit(A[dir][q], k), 0) / g.length;
      return dir === "i2t"
        ? stratum(diffs, nQ, (q) => q, nImages, ks)
        : stratum(diffs, nQ, (q) => first.captionImage[q], nImages, ks);
    });
    bootstrap(strata, ks).forEach((iv, j) => out[`${dir}_R@${ks[j]}`] = iv);
  }
  return out;
}
