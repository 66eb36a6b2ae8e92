/** Heavy part of the zero-shot stage. */
import { join } from "node:path";
import { type StageContext, StageInputError, type StageResult } from "../../pipeline/stage.ts";
import { readMeta } from "../lib/dataset/read.ts";
import type { BackendName } from "../lib/tf/backend.ts";
import { type EmbeddingsHeader, readEmbeddings } from "../lib/eval/embeddings.ts";
import { evaluateZeroShot, kernelClassPointSets } from "../lib/eval/zeroshot.ts";
import { classCounts } from "../lib/similarity/point_sets.ts";
import {
  type ClosableScorer,
  describeSimilarity,
  pooledScorer,
  pooledVectors,
  scorerFor,
} from "../lib/eval/similarity_scoring.ts";
import type { PointSets } from "../lib/similarity/similarity.ts";
import { encodeTextsAll, openModel } from "../lib/model/encode.ts";
import type { ZeroShotParams } from "./stage.ts";

export { METRICS_FILE } from "../lib/eval/metrics_file.ts";
import { writeMetricsFile } from "../lib/eval/metrics_file.ts";

/** Fills a template: `{class}` -> name, `{a}` -> "a" / "an" by the name's first letter. */
export function fillTemplate(template: string, name: string): string {
  const article = /^[aeiou]/i.test(name) ? "an" : "a";
  return template.replaceAll("{a}", article).replaceAll("{class}", name);
}

export async function run(ctx: StageContext<ZeroShotParams>): Promise<StageResult> {
  const p = ctx.params;
  const { model: modelIn, embeddings: embIn, data } = ctx.inputs;
  if (!modelIn || !embIn || !data) {
    throw new StageInputError("zero-shot needs the inputs `model`, `embeddings` and `data`");
  }
  const meta = await readMeta(data.dir);
  const classes = meta.classNames;
  if (!classes?.length) {
    throw new StageInputError(
      `${join(data.dir, "dataset.json")}: no classNames; zero-shot needs named classes`,
      join(data.dir, "dataset.json"),
    );
  }
  const emb = await readEmbeddings(embIn.dir, { images: true, labels: true });
  const h: EmbeddingsHeader = emb.header;
  const embFile = join(embIn.dir, "embeddings.json");
  if (!emb.labels) {
    throw new StageInputError(`${embFile}: split ${h.split} has no labels`, embFile);
  }
  if (h.model.digest !== modelIn.digest) {
    throw new StageInputError(
      `${embFile}: made by another model (digest ${h.model.digest.slice(0, 12)}, input model ` +
        `${modelIn.digest.slice(0, 12)})`,
      embFile,
    );
  }
  if (h.class_names && JSON.stringify(h.class_names) !== JSON.stringify(classes)) {
    throw new StageInputError(`${embFile}: class names differ from the dataset's`, embFile);
  }
  const K = classes.length;
  const prompts: string[] = [];
  const promptClass: number[] = [];
  classes.forEach((name, k) => {
    for (const t of p.templates) {
      prompts.push(fillTemplate(t, name));
      promptClass.push(k);
    }
  });
  const m = await openModel(modelIn.dir, (ctx.facets.backend ?? p.backend) as BackendName);
  let enc: PointSets;
  try {
    enc = await encodeTextsAll(m, prompts, p.batch_size);
  } finally {
    m.model.dispose();
  }
  const pc = Int32Array.from(promptClass);
  classCounts(pc, K);
  // The model's own similarity (m.similarity: the header's record with the same values).
  const sim = m.similarity;
  const scoring = sim.sim.scoring;
  let scorer: ClosableScorer;
  let pooling: string;
  if (scoring.kind === "pooled") {
    const images = pooledVectors(sim, emb.images!);
    const classes = scoring.poolPrompts(pooledVectors(sim, enc).data, images.dim, pc, K);
    scorer = pooledScorer(sim, images.data, classes, images.dim);
    pooling = scoring.promptPooling;
  } else {
    scorer = await scorerFor(sim, emb.images!, kernelClassPointSets(enc, pc, K) as PointSets);
    pooling = "the union of the prompts' weighted point sets with weights alpha / T (the mean " +
      "of their kernel mean embeddings)";
  }
  let r;
  try {
    r = await evaluateZeroShot(scorer, emb.labels, K, {
      split: h.split,
      similarity: describeSimilarity(sim),
      prompts: `${p.templates.length} templates x ${K} classes: ${JSON.stringify(p.templates)}`,
      pooling,
    });
  } finally {
    scorer.close();
  }
  const metrics: Record<string, number> = {
    top1: r.top1,
    mean_per_class_recall: r.meanPerClassRecall,
  };
  if (r.top5 !== null) metrics.top5 = r.top5;
  // Per-class top-1 recall, for the report.
  const count = new Int32Array(K), hit = new Int32Array(K);
  emb.labels.forEach((y, i) => {
    count[y]++;
    if (r.ranks[i] === 1) hit[y]++;
  });
  await writeMetricsFile(
    ctx.outDir,
    "zero-shot",
    {
      ...r.protocol,
      templates: p.templates,
      placeholders: '{class} = class name, {a} = "an" before a vowel, else "a"',
      classNames: classes,
      metricNames: "top1, top5 (only with >= 5 classes), mean_per_class_recall; percent",
    },
    metrics,
    {
      per_class_recall: Object.fromEntries(
        classes.map((c, k) => [c, count[k] ? (100 * hit[k]) / count[k] : null]),
      ),
    },
  );
  ctx.log(
    `${K} classes x ${p.templates.length} templates: top-1 ${r.top1.toFixed(2)}` +
      (r.top5 !== null ? `, top-5 ${r.top5.toFixed(2)}` : "") +
      `, mean per-class recall ${r.meanPerClassRecall.toFixed(2)}`,
  );
  return { metrics, info: { backend: m.backend.backend, prompts: prompts.length } };
}
