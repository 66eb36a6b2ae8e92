/**
 * The linear-probe stage on hand-made embeddings: separable classes give 100% test accuracy;
 * the metrics match the library protocol run directly; the train subsample is seeded;
 * embeddings without labels are refused.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import stage, { LinearProbeParams } from "../stages/linear-probe/stage.ts";
import { subsampleRows } from "../stages/linear-probe/run.ts";
import { linearProbe } from "../stages/lib/eval/probe.ts";
import { resolveProbeEngine } from "../stages/lib/eval/engine_param.ts";
import { Rng } from "../stages/lib/random.ts";
import { StageInputError } from "../pipeline/stage.ts";
import {
  type HandEmbeddings,
  readJson,
  stageContext,
  writeEmbeddings,
} from "./eval_stage_helpers.ts";

/** n images in 3 classes: class means on axes of R^4 plus noise of std `noise` (pooled = points). */
function classEmbeddings(n: number, seed: number, noise: number, labels = true): HandEmbeddings {
  const rng = new Rng(seed);
  const images: HandEmbeddings["images"] = [];
  const y: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = i % 3;
    const p = [0, 0, 0, 0].map((_, k) => (k === c ? 1 : 0) + noise * (rng.float() * 2 - 1));
    images.push({ points: [p] });
    y.push(c);
  }
  return {
    similarity: "clip",
    logit_scale: 10,
    M: 1,
    N: 1,
    dim: 4,
    images,
    captions: images.map((_, i) => ({ image: i, points: [[1, 0, 0, 0]] })),
    labels: labels ? y : undefined,
    split: "x",
  };
}

async function probe(
  train: HandEmbeddings,
  test: HandEmbeddings,
  params: Partial<LinearProbeParams>,
) {
  const root = await Deno.makeTempDir({ prefix: "eval-probe-" });
  await writeEmbeddings(join(root, "train"), { ...train, split: "train" });
  await writeEmbeddings(join(root, "test"), { ...test, split: "test" });
  const ctx = await stageContext(LinearProbeParams.parse(params), {
    train: join(root, "train"),
    test: join(root, "test"),
  }, { seed: 3 });
  try {
    const res = await stage.run(ctx);
    return {
      metrics: res!.metrics as Record<string, number>,
      doc: await readJson(join(ctx.outDir, "metrics.json")),
    };
  } finally {
    await ctx.cleanup();
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("linear-probe stage: separable classes -> 100%; protocol and chosen C recorded", async () => {
  const r = await probe(classEmbeddings(90, 1, 0.3), classEmbeddings(30, 2, 0.3), {});
  assert.equal(r.metrics.accuracy, 100);
  assert.equal(r.metrics.mean_per_class_recall, 100);
  assert.ok(LinearProbeParams.parse({}).c_grid.includes(r.metrics.chosen_c));
  assert.equal(r.doc.protocol.name, "linear-probe");
  assert.equal(r.doc.protocol.validation.seed, 3);
  assert.match(r.doc.protocol.features, /embedding/);
  assert.equal(r.doc.sweep.length, 9);
  assert.deepEqual(r.doc.metrics, r.metrics);
});

Deno.test("linear-probe stage: equals the library protocol; seeded train subsample", async () => {
  const train = classEmbeddings(120, 4, 1.2), test = classEmbeddings(60, 5, 1.2);
  const cs = [0.01, 1, 100];
  const r = await probe(train, test, { c_grid: cs, max_train: 80 });
  const X = Float32Array.from(train.images.flatMap((s) => s.points[0]));
  const sub = subsampleRows(X, Int32Array.from(train.labels!), 80, 3);
  assert.equal(sub.y.length, 80);
  assert.deepEqual([...sub.idx!], [...sub.idx!].sort((a, b) => a - b));
  const want = await linearProbe(
    { X: sub.X, y: sub.y },
    {
      X: Float32Array.from(test.images.flatMap((s) => s.points[0])),
      y: Int32Array.from(test.labels!),
    },
    { Cs: cs, seed: 3, engine: resolveProbeEngine("auto") },
  );
  assert.equal(r.metrics.accuracy, want.test.accuracy);
  assert.equal(r.metrics.mean_per_class_recall, want.test.meanPerClassRecall);
  assert.equal(r.metrics.chosen_c, want.chosenC);
  assert.ok(r.metrics.accuracy > 50 && r.metrics.accuracy < 100, `${r.metrics.accuracy}`);
  assert.match(r.doc.protocol.trainSubsample, /80 of 120/);
});

Deno.test("linear-probe stage: embeddings without labels are a StageInputError", async () => {
  await assert.rejects(
    () => probe(classEmbeddings(30, 1, 0.1, false), classEmbeddings(30, 2, 0.1), {}),
    (e: Error) => e instanceof StageInputError && /no labels/.test(e.message),
  );
});
