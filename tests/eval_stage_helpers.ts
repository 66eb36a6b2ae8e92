/**
 * Shared fixtures for the evaluation stage tests (tests/eval_stage_*.test.ts): hand-written
 * embeddings folders, a toy packed dataset with labels and a PMI grid, a saved random model,
 * and a StageContext with inputs.
 */
import type { InputHandle, StageContext } from "../pipeline/stage.ts";
import { DatasetWriter } from "../stages/lib/dataset/write.ts";
import { toySplit } from "../stages/lib/model/toy.ts";
import { type EmbeddingsHeader, EmbeddingsWriter } from "../stages/lib/eval/embeddings.ts";
import { builtinRecord, loadSimilarity } from "../stages/lib/similarity/registry.ts";
import type { ScalarValues, SimilarityRecord } from "../stages/lib/similarity/similarity.ts";
import { makeContext } from "./fixtures/data/context.ts";

export function handle(dir: string, digest = "d"): InputHandle {
  return { dir, key: "k", digest, files: [], metrics: {} };
}

/** A stage context with the given inputs (folders); call cleanup() when done. */
export async function stageContext<P>(
  params: P,
  inputs: Record<string, string | InputHandle>,
  opts: { seed?: number; backend?: string } = {},
): Promise<StageContext<P> & { cleanup(): Promise<void>; logs: string[] }> {
  const logs: string[] = [];
  const ctx = await makeContext({ params, seed: opts.seed, logs });
  ctx.inputs = Object.fromEntries(
    Object.entries(inputs).map(([k, v]) => [k, typeof v === "string" ? handle(v) : v]),
  );
  if (opts.backend) ctx.facets = { backend: opts.backend };
  return Object.assign(ctx, { logs });
}

export interface HandEmbeddings {
  /** A built-in similarity (its default params); its learned values are the two below. */
  similarity: "clip" | "kme" | "wpse";
  /** clip / wpse: the logit scale. */
  logit_scale?: number;
  /** kme: the bandwidth. */
  sigma2?: number;
  M: number;
  N: number;
  dim: number;
  images: { points: number[][]; logits?: number[] }[];
  captions: { image: number; points: number[][]; logits?: number[]; text?: string }[];
  labels?: number[];
  classNames?: string[];
  split?: string;
  modelDigest?: string;
}

/**
 * Writes an embeddings folder from explicit point sets (logits default to 0 = uniform). The
 * header records the built-in similarity with the given values; images.pooled.f32 holds its
 * linear-probe features, as the embed stage writes them (clip: the point; kme: the
 * softmax-weighted mean).
 */
export async function writeEmbeddings(dir: string, e: HandEmbeddings): Promise<EmbeddingsHeader> {
  await Deno.mkdir(dir, { recursive: true });
  const values: ScalarValues = {};
  if (e.logit_scale !== undefined) values.logit_scale = e.logit_scale;
  if (e.sigma2 !== undefined) values.sigma2 = e.sigma2;
  const similarity: SimilarityRecord = {
    name: e.similarity,
    params: builtinRecord(e.similarity).params,
    values,
  };
  const sim = await loadSimilarity(similarity);
  const w = await EmbeddingsWriter.create(dir, {
    M: e.M,
    N: e.N,
    dim: e.dim,
    labels: e.labels !== undefined,
    probe: (sets) => sim.sim.probeFeatures(sets, sim.params, sim.values),
    probeDoc: sim.sim.probeDoc,
  });
  const flat = (sets: { points: number[][]; logits?: number[] }[], P: number) => ({
    points: Float32Array.from(sets.flatMap((s) => s.points.flat())),
    logits: Float32Array.from(sets.flatMap((s) => s.logits ?? new Array(P).fill(0))),
  });
  // Two batches each, to exercise appending.
  const half = Math.ceil(e.images.length / 2);
  for (const [a, b] of [[0, half], [half, e.images.length]]) {
    if (a === b) continue;
    const f = flat(e.images.slice(a, b), e.M);
    await w.addImages(
      f.points,
      f.logits,
      e.labels ? Int32Array.from(e.labels.slice(a, b)) : undefined,
    );
  }
  const f = flat(e.captions, e.N);
  await w.addCaptions(
    f.points,
    f.logits,
    Int32Array.from(e.captions, (c) => c.image),
    e.captions.map((c, k) => c.text ?? `caption ${k}`),
  );
  return await w.finish({
    similarity,
    split: e.split ?? "test",
    counts: { images: e.images.length, captions: e.captions.length, split_images: e.images.length },
    M: e.M,
    N: e.N,
    dim: e.dim,
    has_labels: e.labels !== undefined,
    class_names: e.classNames ?? null,
    model: { digest: e.modelDigest ?? "model-digest", points: "tokens", embed_dim: e.dim },
    dataset: { source: "hand", digest: "data-digest", image: { height: 1, width: 1, channels: 1 } },
  });
}

/**
 * A toy packed dataset (16x16 RGB squares, captions naming colour and quadrant; label =
 * colour index) with `n` test images; optionally a PMI grid over the first test images.
 */
export async function writeToyDataset(
  dir: string,
  opts: {
    n?: number;
    classNames?: string[];
    /** Given the grid (first 6 test images, first caption of the first 5), the PMI matrix. */
    pmi?: (grid: { images: Uint8Array; rows: number; texts: string[] }) => Promise<Float32Array>;
    /** Given the grid's caption texts, pmi.json's `captionLogProb` (log p(y) per column). */
    captionLogProb?: (texts: string[]) => number[];
  } = {},
): Promise<{ captions: { image: number; text: string }[] }> {
  const n = opts.n ?? 24;
  const classNames = opts.classNames ??
    ["red", "green", "blue", "yellow", "purple", "cyan", "orange", "white"];
  const w = await DatasetWriter.create(dir, {
    source: "toy",
    image: { height: 16, width: 16, channels: 3 },
    classNames,
  });
  let testCaptions: { image: number; text: string }[] = [];
  let testImages: Uint8Array = new Uint8Array(0);
  for (const [split, count, seed] of [["train", n, 1], ["val", 8, 2], ["test", n, 3]] as const) {
    const s = toySplit(count, seed);
    if (split === "test") {
      testCaptions = s.captions;
      testImages = s.images;
    }
    for (let i = 0; i < count; i++) {
      const caps = s.captions.filter((c) => c.image === i).map((c) => c.text);
      const colour = caps[0].split(" ")[1];
      const label = Math.max(0, classNames.indexOf(colour));
      await w.add(
        split,
        s.images.subarray(i * 768, (i + 1) * 768),
        caps,
        label % classNames.length,
      );
    }
  }
  if (opts.pmi) {
    const rows = Math.min(6, n), cols = Math.min(5, n);
    const captions = testCaptions.filter((c, k) => k % 2 === 0 && c.image < cols)
      .map((c) => ({ image: c.image, caption: 0, text: c.text }));
    const matrix = await opts.pmi({
      images: testImages.slice(0, rows * 768),
      rows,
      texts: captions.map((c) => c.text),
    });
    const bytes = new Uint8Array(matrix.buffer.slice(0));
    await w.addFile("pmi.f32", bytes);
    await w.addFile(
      "pmi.json",
      JSON.stringify({
        format: "kme-pmi/1",
        units: "nats",
        split: "test",
        matrix: { file: "pmi.f32", dtype: "float32", endian: "little", layout: "row-major" },
        shape: [rows, cols],
        images: Array.from({ length: rows }, (_, i) => i),
        captions,
        ...(opts.captionLogProb
          ? { captionLogProb: opts.captionLogProb(captions.map((c) => c.text)) }
          : {}),
      }) + "\n",
    );
  }
  await w.finish();
  return { captions: testCaptions };
}

export async function readJson(path: string) {
  return JSON.parse(await Deno.readTextFile(path));
}

/**
 * A randomly initialised tiny model (cpu backend), saved as a pretrain output would be.
 * Its vocabulary covers the toy captions. Returns the live model too (caller disposes).
 */
export async function saveRandomModel(
  dir: string,
  similarity: "clip" | "kme" | "wpse",
  over: Partial<import("../stages/lib/model/model.ts").ModelConfig> = {},
  seed = 7,
) {
  const { initBackend } = await import("../stages/lib/tf/backend.ts");
  const { ContrastiveModel } = await import("../stages/lib/model/model.ts");
  const { tinyConfig } = await import("../stages/lib/model/toy.ts");
  const { Vocab } = await import("../stages/lib/model/vocab.ts");
  const { saveModel } = await import("../stages/lib/model/io.ts");
  await initBackend("cpu");
  const texts = [...toySplit(64, 1).captions, ...toySplit(64, 3).captions].map((c) => c.text);
  const vocab = Vocab.build([...texts, "a photo of an image showing there is picture"], {
    maxSize: 1000,
    minCount: 1,
  });
  const model = ContrastiveModel.create(tinyConfig(similarity, vocab.size, over), seed);
  await saveModel(dir, model, vocab, { steps: 0 });
  return { model, vocab };
}
