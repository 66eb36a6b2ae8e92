/** Heavy part of the linear-probe stage. */
import { join } from "node:path";
import { type StageContext, StageInputError, type StageResult } from "../../pipeline/stage.ts";
import { readEmbeddings } from "../lib/eval/embeddings.ts";
import { linearProbe } from "../lib/eval/probe.ts";
import { resolveProbeEngine } from "../lib/eval/engine_param.ts";
import { Rng } from "../lib/random.ts";
import type { LinearProbeParams } from "./stage.ts";

export { METRICS_FILE } from "../lib/eval/metrics_file.ts";
import { writeMetricsFile } from "../lib/eval/metrics_file.ts";

async function features(dir: string, what: string) {
  const e = await readEmbeddings(dir, { pooled: true, labels: true });
  if (!e.labels) {
    throw new StageInputError(
      `${join(dir, "embeddings.json")}: the ${what} embeddings have no labels (split ` +
        `${e.header.split} of a dataset without labels); a linear probe needs them`,
      join(dir, "embeddings.json"),
    );
  }
  return { X: e.pooled!, y: e.labels, header: e.header };
}

/** Seeded subsample of `max` rows (kept in their original order). */
export function subsampleRows(
  X: Float32Array,
  y: Int32Array,
  max: number,
  seed: number,
): { X: Float32Array; y: Int32Array; idx: Int32Array | null } {
  const n = y.length;
  if (max <= 0 || max >= n) return { X, y, idx: null };
  const p = X.length / n;
  const perm = new Rng(seed).shuffle(Int32Array.from({ length: n }, (_, i) => i));
  const idx = perm.slice(0, max).sort();
  const Xs = new Float32Array(max * p);
  idx.forEach((r, k) => Xs.set(X.subarray(r * p, (r + 1) * p), k * p));
  return { X: Xs, y: Int32Array.from(idx, (r) => y[r]), idx };
}

export async function run(ctx: StageContext<LinearProbeParams>): Promise<StageResult> {
  const p = ctx.params;
  if (!ctx.inputs.train || !ctx.inputs.test) {
    throw new StageInputError("linear-probe needs the inputs `train` and `test`");
  }
  const tr = await features(ctx.inputs.train.dir, "train");
  const te = await features(ctx.inputs.test.dir, "test");
  if (
    tr.header.probe.dim !== te.header.probe.dim ||
    tr.header.model.digest !== te.header.model.digest
  ) {
    throw new StageInputError(
      `train and test embeddings come from different models (digests ` +
        `${tr.header.model.digest.slice(0, 12)} / ${te.header.model.digest.slice(0, 12)})`,
      join(ctx.inputs.test.dir, "embeddings.json"),
    );
  }
  const sub = subsampleRows(tr.X, tr.y, p.max_train, ctx.seed);
  ctx.log(
    `train ${sub.y.length} (of ${tr.y.length}, split ${tr.header.split}), test ${te.y.length} ` +
      `(split ${te.header.split}), ${tr.header.probe.dim} features (${p.features})`,
  );
  ctx.progress.start(p.c_grid.length + 1, "C sweep");
  const t0 = performance.now();
  const r = await linearProbe({ X: sub.X, y: sub.y }, { X: te.X, y: te.y }, {
    Cs: p.c_grid,
    valFraction: p.val_fraction,
    seed: ctx.seed,
    standardize: p.standardize,
    stopping: p.stopping,
    maxIterations: p.max_iterations,
    engine: resolveProbeEngine(p.engine),
    split: `train: ${tr.header.split}, test: ${te.header.split}`,
    features: `${p.features}: images.pooled.f32 (${tr.header.probe.features}), ` +
      `${tr.header.similarity.name} model`,
    onProgress: (d) => ctx.progress.update(d),
  });
  ctx.progress.stop();
  const seconds = (performance.now() - t0) / 1000;
  const metrics = {
    accuracy: r.test.accuracy,
    mean_per_class_recall: r.test.meanPerClassRecall,
    chosen_c: r.chosenC,
    log10_chosen_c: Math.log10(r.chosenC),
  };
  const protocol = {
    ...r.protocol,
    trainSubsample: p.max_train > 0 && sub.idx
      ? `${p.max_train} of ${tr.y.length} training images, seeded (seed ${ctx.seed}) ` +
        "shuffle prefix, original order"
      : "all training images",
    metricNames: "accuracy and mean_per_class_recall in percent; chosen_c = the selected C",
  };
  await writeMetricsFile(ctx.outDir, "linear-probe", protocol, metrics, { sweep: r.sweep });
  ctx.log(
    `C = ${r.chosenC}: accuracy ${metrics.accuracy.toFixed(2)}, mean per-class recall ` +
      `${metrics.mean_per_class_recall.toFixed(2)} (${seconds.toFixed(1)} s)`,
  );
  return { metrics, info: { seconds } };
}
