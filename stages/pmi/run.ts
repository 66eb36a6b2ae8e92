/** Heavy part of the pmi stage. */
import { join } from "node:path";
import { type StageContext, StageInputError, type StageResult } from "../../pipeline/stage.ts";
import { openDataset } from "../lib/dataset/read.ts";
import type { BackendName } from "../lib/tf/backend.ts";
import { describeSimilarity, scorerFor } from "../lib/eval/similarity_scoring.ts";
import { pmiFidelity } from "../lib/eval/pmi.ts";
import { Rng } from "../lib/random.ts";
import type { PointSets } from "../lib/similarity/similarity.ts";
import { encodeImageBatch, encodeTextsAll, openModel } from "../embed/encode.ts";
import type { PmiParams } from "./stage.ts";

export const METRICS_FILE = "metrics.json";
export const SCATTER_FILE = "scatter.json";

interface PmiDoc {
  format: string;
  split: "test" | "train" | "val";
  matrix: { file: string; dtype: string; endian: string; layout: string };
  shape: [number, number];
  images: number[];
  captions: { image: number; caption: number; text: string }[];
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
  const metrics = {
    pearson: f.pearson,
    spearman: f.spearman,
    rmse_shifted: f.rmse,
    shift: f.shift,
    n: f.n,
  };
  const pick = sampleIndices(s.length, p.scatter_points, ctx.seed);
  const scatter = {
    pmi: Array.from(pick, (k) => round(t[k])),
    score: Array.from(pick, (k) => round(s[k])),
  };
  await Deno.writeTextFile(join(ctx.outDir, SCATTER_FILE), JSON.stringify(scatter) + "\n");
  const out = {
    format: "kme-metrics/1",
    stage: "pmi",
    protocol: {
      ...f.protocol,
      score: `the model's own training similarity s(x, y): ${sim.sim.summary}`,
      scatter: `${SCATTER_FILE}: {"pmi": [...], "score": [...]}, ${pick.length} of ${s.length} ` +
        `pairs (seeded subsample, seed ${ctx.seed}, when more than ${p.scatter_points}), 7 ` +
        "significant digits",
      metricNames: "pearson, spearman, rmse_shifted (nats), shift (the constant added to s), n",
    },
    metrics,
  };
  await Deno.writeTextFile(join(ctx.outDir, METRICS_FILE), JSON.stringify(out, null, 2) + "\n");
  ctx.log(
    `PMI fidelity over ${f.n} pairs: pearson ${f.pearson.toFixed(3)}, spearman ` +
      `${f.spearman.toFixed(3)}, rmse after shift ${f.rmse.toFixed(3)}`,
  );
  return { metrics, info: { backend: m.backend.backend, distinct_texts: U } };
}
