/**
 * Batched encoding of images and texts with a trained model into plain arrays (the point sets
 * that the evaluation code in stages/lib/eval/ scores). Shared by embed, zero-shot and pmi.
 * Memory: one batch of tensors at a time.
 */
import { join } from "node:path";
import { StageInputError } from "../../../pipeline/stage.ts";
import { type BackendInfo, type BackendName, initBackend } from "../tf/backend.ts";
import { encodeImages, encodeTexts, type LoadedModel, loadModel } from "./io.ts";
import type { PointSet, PointSets, SimilarityRecord } from "../similarity/similarity.ts";
import { type LoadedSimilarity, loadSimilarity } from "../similarity/registry.ts";

export interface Encoded {
  points: Float32Array;
  logits: Float32Array;
}

async function take(ps: PointSet): Promise<Encoded> {
  try {
    return {
      points: (await ps.points.data()) as Float32Array,
      logits: (await ps.weights.data()) as Float32Array,
    };
  } finally {
    ps.points.dispose();
    ps.weights.dispose();
  }
}

export interface OpenedModel extends LoadedModel {
  backend: BackendInfo;
  /** Points per image (M) and per caption (N), point dimension. */
  M: number;
  N: number;
  dim: number;
  /** The training similarity with its learned values (what evaluation scores with). */
  similarity: LoadedSimilarity;
}

/** Initialises the backend and loads the model of a pretrain entry. */
export async function openModel(dir: string, backend: BackendName): Promise<OpenedModel> {
  const be = await initBackend(backend);
  let loaded: LoadedModel;
  try {
    loaded = await loadModel(dir);
  } catch (e) {
    throw new StageInputError(
      `${join(dir, "model.json")}: cannot load the model (${(e as Error).message})`,
      join(dir, "model.json"),
    );
  }
  const c = loaded.model.config;
  const { M, N } = loaded.model.pointsPerInput();
  const record: SimilarityRecord = { ...c.similarity, values: await loaded.model.scalars() };
  return {
    ...loaded,
    backend: be,
    M,
    N,
    dim: c.embedDim,
    similarity: await loadSimilarity(record),
  };
}

export async function encodeImageBatch(
  m: OpenedModel,
  images: Uint8Array,
  count: number,
): Promise<Encoded> {
  return await take(encodeImages(m.model, images, count));
}

export async function encodeTextBatch(m: OpenedModel, texts: readonly string[]): Promise<Encoded> {
  return await take(encodeTexts(m.model, m.vocab, texts));
}

/** Encodes texts in batches into one PointSets (for prompts and grid captions: small). */
export async function encodeTextsAll(
  m: OpenedModel,
  texts: readonly string[],
  batchSize: number,
): Promise<PointSets> {
  const n = texts.length;
  const data = new Float32Array(n * m.N * m.dim);
  const logits = new Float32Array(n * m.N);
  for (let s = 0; s < n; s += batchSize) {
    const b = Math.min(batchSize, n - s);
    const e = await encodeTextBatch(m, texts.slice(s, s + b));
    data.set(e.points, s * m.N * m.dim);
    logits.set(e.logits, s * m.N);
  }
  return { n, points: m.N, dim: m.dim, data, logits };
}
