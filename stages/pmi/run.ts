/** Heavy part of the pmi stage. */
import { join } from "node:path";
import { type StageContext, StageInputError, type StageResult } from "../../pipeline/stage.ts";
import { openDataset } from "../lib/dataset/read.ts";
import type { BackendName } from "../lib/tf/backend.ts";
import { describeSimilarity, scorerFor } from "../lib/eval/similarity_scoring.ts";
import {
  conditionalFidelity,
  pmiFidelity,
  RESTRICT_PMI_ABOVE,
  restrictedFidelity,
  weightedFidelity,
} from "../lib/eval/pmi.ts";
import { ATTRIBUTES, SceneModel } from "../lib/synthetic/scene_model.ts";
import { Rng } from "../lib/random.ts";
import type { PointSets } from "../lib/similarity/similarity.ts";
import { encodeImageBatch, encodeTextsAll, openModel } from "../lib/model/encode.ts";
import type { PmiParams } from "./stage.ts";

export { METRICS_FILE } from "../lib/eval/metrics_file.ts";
import { writeMetricsFile } from "../lib/eval/metrics_file.ts";
export const SCATTER_FILE = "scatter.json";

interface PmiDoc {
  format: string;
  split: "test" | "train" | "val";
  matrix: { file: string; dtype: string; endian: string; layout: string };
  shape: [number, number];
  images: number[];
  captions: { image: number; caption: number; text: string }[];
  /** Optional: exact log p(y) of each column's text (nats). */
  captionLogProb?: number[];
  /** prepare/synthetic: the latent of each grid image (attribute -> value name). */
  imageLatents?: Record<string, string>[];
  /** prepare/synthetic: "occluded" for the occluded world (absent: revealed). */
  world?: string;
}

/**
 * Exact log p(y) of every grid column, and where it came from: pmi.json's `captionLogProb`;
 * else, for a revealed-world `prepare/synthetic` dataset (whose pmi.json predates the field),
 * the generator rebuilt from dataset.json's `extra.generator`, checked to reproduce every
 * entry of pmi.f32; else undefined (then the conditional fidelity is not computed).
 */
export function captionLogProbs(
  path: string,
  doc: PmiDoc,
  pmi: Float32Array,
  meta: { source: string; extra?: Record<string, unknown> },
): { logPy: Float64Array; source: string } | { missing: string } {
  const C = doc.captions.length;
  if (doc.captionLogProb !== undefined) {
    const v = doc.captionLogProb;
    if (!Array.isArray(v) || v.length !== C || v.some((x) => !Number.isFinite(x) || x > 0)) {
      throw new StageInputError(
        `${path}: captionLogProb must be ${C} finite log-probabilities (<= 0), one per column`,
        path,
      );
    }
    return { logPy: Float64Array.from(v), source: "pmi.json captionLogProb" };
  }
  const gen = meta.extra?.generator as
    | { mention?: Record<string, number>; attribute_noise?: number; occlusion?: unknown }
    | undefined;
  if (meta.source !== "synthetic" || !gen || doc.world !== undefined || gen.occlusion) {
    return { missing: "the dataset gives no exact p(y) (pmi.json captionLogProb)" };
  }
  const bad = (why: string) =>
    new StageInputError(
      `${path}: cannot rebuild the synthetic generator to get p(y) (${why}); regenerate the ` +
        "dataset with prepare/synthetic",
      path,
    );
  let model: SceneModel;
  try {
    model = new SceneModel({
      mention: gen.mention as Record<"size" | "colour" | "shape" | "position", number>,
      attribute_noise: gen.attribute_noise as number,
    });
  } catch (e) {
    throw bad((e as Error).message);
  }
  const R = doc.images.length;
  if (!Array.isArray(doc.imageLatents) || doc.imageLatents.length !== R) {
    throw bad("pmi.json has no imageLatents");
  }
  const latents = doc.imageLatents.map((l) =>
    model.latentIndex(ATTRIBUTES.map((a) => a.values.indexOf(l?.[a.name])))
  );
  const structures = doc.captions.map((c) => model.parse(c.text));
  const logPy = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    const lp = model.captionLogProb(doc.captions[c].text);
    if (structures[c] === undefined || lp === undefined) {
      throw bad(`"${doc.captions[c].text}" is not one of its captions`);
    }
    logPy[c] = lp;
  }
  for (let r = 0; r < R; r++) {
    if (!(latents[r] >= 0 && latents[r] < model.numLatents)) throw bad(`bad latent of row ${r}`);
    for (let c = 0; c < C; c++) {
      const want = Math.fround(model.pmi(latents[r], model.structureIndex(structures[c]!)));
      if (want !== pmi[r * C + c]) {
        throw bad(`it gives PMI ${want} at (${r}, ${c}) where pmi.f32 has ${pmi[r * C + c]}`);
      }
    }
  }
  return {
    logPy,
    source: "the generator of dataset.json extra.generator (prepare/synthetic, revealed " +
      "world), checked to reproduce every entry of pmi.f32",
  };
}

async function readGrid(dir: string): Promise<{ doc: PmiDoc; pmi: Float32Array }> {
  const path = join(dir, "pmi.json");
  let doc: PmiDoc;
  try {
    doc = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new StageInputError(
      `${path}: cannot read the PMI grid (${(e as Error).message}); the pmi stage needs a ` +
        "dataset with exact PMI (prepare/synthetic)",
      path,
    );
  }
  const [R, C] = doc.shape ?? [];
  if (
    doc.format !== "kme-pmi/1" || doc.matrix?.dtype !== "float32" ||
    doc.matrix?.endian !== "little" || doc.images?.length !== R || doc.captions?.length !== C
  ) {
    throw new StageInputError(`${path}: not a kme-pmi/1 grid of float32 little-endian`, path);
  }
  const mpath = join(dir, doc.matrix.file);
  const bytes = await Deno.readFile(mpath);
  if (bytes.byteLength !== R * C * 4) {
    throw new StageInputError(
      `${mpath}: has ${bytes.byteLength} bytes, expected ${R * C * 4}`,
      mpath,
    );
  }
  const buf = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(buf).set(bytes);
  return { doc, pmi: new Float32Array(buf) };
}

/** Seeded subsample of `max` indices out of n (sorted), or all of them. */
export function sampleIndices(n: number, max: number, seed: number): Int32Array {
  const all = Int32Array.from({ length: n }, (_, i) => i);
  if (n <= max) return all;
  return new Rng(seed).shuffle(all).slice(0, max).sort();
}

const round = (x: number) => Number(x.toPrecision(7));

export async function run(ctx: StageContext<PmiParams>): Promise<StageResult> {
  const p = ctx.params;
  const { model: modelIn, data } = ctx.inputs;
  if (!modelIn || !data) throw new StageInputError("pmi needs the inputs `model` and `data`");
  const { doc, pmi } = await readGrid(data.dir);
  const [R, C] = doc.shape;
  const ds = await openDataset(data.dir);
  const split = ds.split(doc.split);
  const m = await openModel(modelIn.dir, (ctx.facets.backend ?? p.backend) as BackendName);
  const sim = m.similarity;

  // Encode the grid's images (by index, batched over runs) and its distinct caption texts.
  let images: PointSets, texts: PointSets;
  const uniq = [...new Set(doc.captions.map((c) => c.text))];
  const col = Int32Array.from(doc.captions, (c) => uniq.indexOf(c.text));
  try {
    const data = new Float32Array(R * m.M * m.dim);
    const logits = new Float32Array(R * m.M);
    const one = split.imageBytes;
    const buf = new Uint8Array(p.batch_size * one);
    for (let s = 0; s < R; s += p.batch_size) {
      const b = Math.min(p.batch_size, R - s);
      for (let k = 0; k < b; k++) {
        const idx = doc.images[s + k];
        buf.set(await split.readImages(idx, 1), k * one);
      }
      const e = await encodeImageBatch(m, buf.subarray(0, b * one), b);
      data.set(e.points, s * m.M * m.dim);
      logits.set(e.logits, s * m.M);
    }
    images = { n: R, points: m.M, dim: m.dim, data, logits };
    texts = await encodeTextsAll(m, uniq, p.batch_size);
  } finally {
    m.model.dispose();
  }
  const scorer = await scorerFor(sim, images, texts);
  const U = uniq.length;
  const uScores = new Float32Array(R * U);
  try {
    const bi = 32;
    const jobs: Promise<void>[] = [];
    for (let i0 = 0; i0 < R; i0 += bi) {
      const ni = Math.min(bi, R - i0);
      jobs.push(
        Promise.resolve(scorer.scoreBlock(i0, ni, 0, U)).then((blk) => {
          uScores.set(blk, i0 * U);
        }),
      );
    }
    await Promise.all(jobs);
  } finally {
    scorer.close();
  }
  const score = new Float32Array(R * C);
  for (let r = 0; r < R; r++) {
    for (let c = 0; c < C; c++) score[r * C + c] = uScores[r * U + col[c]];
  }
  // Drop pairs whose PMI is not finite (p(x, y) = 0); prepare/synthetic keeps all finite.
  const keep: number[] = [];
  for (let k = 0; k < R * C; k++) if (Number.isFinite(pmi[k])) keep.push(k);
  const s = Float64Array.from(keep, (k) => score[k]);
  const t = Float64Array.from(keep, (k) => pmi[k]);
  const f = pmiFidelity(s, t, {
    similarityName: describeSimilarity(sim),
    pairs: `${R} test images x ${C} grid captions (${U} distinct texts) of ` +
      `${join("<data>", "pmi.json")}, every pair with finite PMI (${keep.length})`,
  });
  // Objective-aligned metrics (issue 14): weighted by p(x, y), restricted to PMI > -3, and
  // the conditional fidelity (KL of the implied conditionals).
  const weighted = weightedFidelity(s, t, t.map(Math.exp));
  const restricted = restrictedFidelity(s, t);
  const py = captionLogProbs(join(data.dir, "pmi.json"), doc, pmi, ds.meta);
  let cond: ReturnType<typeof conditionalFidelity> | undefined;
  if ("logPy" in py) {
    if (keep.length !== R * C) {
      throw new StageInputError(
        `${join(data.dir, "pmi.json")}: the conditional fidelity needs a finite PMI for every ` +
          "grid pair",
      );
    }
    const logPyText = new Float64Array(U).fill(NaN);
    for (let c = 0; c < C; c++) {
      if (!Number.isNaN(logPyText[col[c]]) && logPyText[col[c]] !== py.logPy[c]) {
        throw new StageInputError(
          `${join(data.dir, "pmi.json")}: columns with the same text "${doc.captions[c].text}" ` +
            "have different captionLogProb",
        );
      }
      logPyText[col[c]] = py.logPy[c];
    }
    cond = conditionalFidelity({ rows: R, cols: C, pmi, score, text: col, logPy: logPyText });
  }
  const metrics: Record<string, number> = {
    pearson: f.pearson,
    spearman: f.spearman,
    rmse_shifted: f.rmse,
    shift: f.shift,
    n: f.n,
    pearson_weighted: weighted.pearson,
    rmse_shifted_weighted: weighted.rmse,
    pearson_restricted: restricted.pearson,
    rmse_shifted_restricted: restricted.rmse,
    n_restricted: restricted.n,
    ...(cond ? { kl_image_to_text: cond.imageToText, kl_text_to_image: cond.textToImage } : {}),
  };
  const pick = sampleIndices(s.length, p.scatter_points, ctx.seed);
  const scatter = {
    pmi: Array.from(pick, (k) => round(t[k])),
    score: Array.from(pick, (k) => round(s[k])),
  };
  await Deno.writeTextFile(join(ctx.outDir, SCATTER_FILE), JSON.stringify(scatter) + "\n");
  await writeMetricsFile(ctx.outDir, "pmi", {
    ...f.protocol,
    score: `the model's own training similarity s(x, y): ${sim.sim.summary}`,
    scatter: `${SCATTER_FILE}: {"pmi": [...], "score": [...]}, ${pick.length} of ${s.length} ` +
      `pairs (seeded subsample, seed ${ctx.seed}, when more than ${p.scatter_points}), 7 ` +
      "significant digits",
    metricNames: "pearson, spearman, rmse_shifted (nats), shift (the constant added to s), n; " +
      "pearson_weighted, rmse_shifted_weighted; pearson_restricted, rmse_shifted_restricted, " +
      "n_restricted; kl_image_to_text, kl_text_to_image (nats)",
    weighted: "pearson_weighted, rmse_shifted_weighted: over the same pairs, each weighted by " +
      "p(x, y) / (p(x) p(y)) = exp(PMI): the grid's rows and columns are draws from p(x) and " +
      "p(y), so this weights pairs by p(x, y), as InfoNCE's positives are (the diagonal pairs, " +
      "drawn from p(x, y) itself, are weighted alike); weighted means, shift = sum w (PMI - s) " +
      "/ sum w, rmse = sqrt(sum w (s + shift - PMI)^2 / sum w)",
    restricted: `pearson_restricted, rmse_shifted_restricted: unweighted, over the pairs with ` +
      `PMI > ${RESTRICT_PMI_ABOVE} (n_restricted = ${restricted.n}); the shift is refitted on ` +
      "them",
    conditional: cond
      ? "kl_image_to_text: mean over the grid images x of KL(p(y|x) || q(y|x)) over the " +
        `${U} distinct grid texts, p(y|x) = p(y) exp(PMI(x, y)) / Z(x), q(y|x) = p(y) ` +
        "exp(s(x, y)) / Z'(x); kl_text_to_image: mean over the grid columns y of KL(p(x|y) || " +
        `q(x|y)) over the ${R} grid images (each a draw from p(x), equally weighted), p(x|y) = ` +
        "exp(PMI(x, y)) / Z(y), q(x|y) = exp(s(x, y)) / Z'(y); nats, f64; s = PMI + c scores 0. " +
        `p(y): ${(py as { source: string }).source}`
      : `kl_image_to_text, kl_text_to_image: not computed: ${(py as { missing: string }).missing}`,
  }, metrics);
  ctx.log(
    `PMI fidelity over ${f.n} pairs: pearson ${f.pearson.toFixed(3)}, spearman ` +
      `${f.spearman.toFixed(3)}, rmse after shift ${f.rmse.toFixed(3)}`,
  );
  return { metrics, info: { backend: m.backend.backend, distinct_texts: U } };
}
