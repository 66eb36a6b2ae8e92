/**
 * One linear-probe run for `deno task bench probe`, in its own process: the features come
 * from `probeFeatures` (written once to a file that the scikit-learn peer reads too), then the
 * protocol of the linear-probe stage runs on them (C sweep on the seeded split, refit, test).
 * Prints one JSON line. Usage:
 *   probe_standalone.ts --file F --n N --p P --classes K [--engine js|blas] [--workers W]
 *                       [--stopping sklearn|tight]
 */
import { parseArgs } from "node:util";
import { linearProbe, stratifiedSplit } from "../stages/lib/eval/probe.ts";
import { Rng } from "../stages/lib/random.ts";

/**
 * The benchmark's features, documented so anyone can regenerate them, and shaped like pooled
 * embeddings rather than like an easy textbook problem: K Gaussian classes in R^p whose
 * coordinate scales decay as s_j = (j + 1)^-0.75 (an ill-conditioned spectrum, as learned
 * embeddings have): class means 0.25 * s_j * N(0, 1), rows mean + s_j * N(0, 1), then every
 * row scaled to unit length (CLIP's embeddings are unit vectors). Classes overlap (about 60%
 * test accuracy at 3,000 x 64 x 10) and the best C is inside the grid. Labels are i mod K;
 * n train and n / 5 test rows; seed 20261130 through xoshiro128** (stages/lib/random.ts):
 * means first, then train rows, then test rows. f32, row-major.
 */
export function probeFeatures(n: number, p: number, K: number) {
  const rng = new Rng(20261130);
  const s = Float64Array.from({ length: p }, (_, j) => (j + 1) ** -0.75);
  const means = Float64Array.from(
    { length: K * p },
    (_, q) => (0.25 * s[q % p] * rng.normal()),
  );
  const draw = (m: number) => {
    const X = new Float32Array(m * p), y = new Int32Array(m), row = new Float64Array(p);
    for (let i = 0; i < m; i++) {
      y[i] = i % K;
      let norm = 0;
      for (let j = 0; j < p; j++) {
        row[j] = means[y[i] * p + j] + s[j] * rng.normal();
        norm += row[j] * row[j];
      }
      for (let j = 0; j < p; j++) X[i * p + j] = row[j] / Math.sqrt(norm);
    }
    return { X, y };
  };
  return { train: draw(n), test: draw(Math.floor(n / 5)) };
}

/**
 * File layout (little-endian): int32 n, p, K, nTest, nFit, nVal; train X f32 [n x p]; train y
 * i32 [n]; test X; test y; fit indices i32; val indices i32 (the stage's seeded split, seed 0,
 * val fraction 0.2), so the peer fits exactly the same rows.
 */
async function writeFeatures(file: string, n: number, p: number, K: number) {
  const { train, test } = probeFeatures(n, p, K);
  const { fit, val } = stratifiedSplit(train.y, 0.2, 0);
  const head = Int32Array.from([n, p, K, test.y.length, fit.length, val.length]);
  const parts = [head, train.X, train.y, test.X, test.y, fit, val];
  const f = await Deno.open(file, { write: true, create: true, truncate: true });
  for (const a of parts) await f.write(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  f.close();
  return { train, test };
}

if (import.meta.main) {
  const { values: a } = parseArgs({
    args: Deno.args,
    options: {
      file: { type: "string" },
      n: { type: "string" },
      p: { type: "string" },
      classes: { type: "string" },
      engine: { type: "string", default: "blas" },
      workers: { type: "string", default: "2" },
      stopping: { type: "string", default: "sklearn" },
    },
  });
  const [n, p, K] = [Number(a.n), Number(a.p), Number(a.classes)];
  const { train, test } = await writeFeatures(a.file!, n, p, K);
  const t0 = performance.now();
  const r = await linearProbe(train, test, {
    engine: a.engine as "js" | "blas",
    workers: Number(a.workers),
    stopping: a.stopping as "sklearn" | "tight",
    Cs: Array.from({ length: 13 }, (_, k) => 10 ** (k - 6)),
  });
  const seconds = (performance.now() - t0) / 1000;
  console.log(JSON.stringify({
    seconds: +seconds.toFixed(2),
    accuracy: r.test.accuracy,
    chosenC: r.chosenC,
    iterations: r.sweep.reduce((s, x) => s + x.iterations, 0) + r.model.optimizer.iterations,
  }));
}
