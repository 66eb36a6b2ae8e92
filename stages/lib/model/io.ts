/**
 * The trained-model format (docs/model.md): `model.json` (format, model config, vocabulary,
 * preprocessing, training summary, tensor index) + `model.bin` (raw little-endian float32).
 */
import * as tf from "@tensorflow/tfjs-core";
import { ContrastiveModel, type ModelConfig, tidyPointSet } from "./model.ts";
import type { PointSet } from "../similarity/similarity.ts";
import { loadSimilarity } from "../similarity/registry.ts";
import { type BundleHeader, type NamedTensor, readBundle, writeBundle } from "./tensorfile.ts";
import { Vocab } from "./vocab.ts";

export const MODEL_FORMAT = "kme-clip-model";
export const MODEL_HEADER = "model.json";
export const MODEL_BINARY = "model.bin";

export interface ModelHeader extends BundleHeader {
  config: ModelConfig;
  vocab: string[];
  preprocess: {
    /** Pixel scaling applied inside the model: x / 127.5 - 1. */
    pixels: "x/127.5-1";
    tokenizer: "lowercase, maximal runs of Unicode letters; PAD=0, OOV=1";
    maxLen: number;
  };
  /** Free-form training facts (steps, final loss, backend...). */
  training?: Record<string, unknown>;
}

export async function saveModel(
  dir: string,
  model: ContrastiveModel,
  vocab: Vocab,
  training: Record<string, unknown> = {},
): Promise<ModelHeader> {
  if (vocab.size !== model.config.text.vocabSize) {
    throw new Error(
      `vocabulary has ${vocab.size} entries, model expects ${model.config.text.vocabSize}`,
    );
  }
  await Deno.mkdir(dir, { recursive: true });
  const tensors: NamedTensor[] = [];
  for (const spec of model.params.specs) {
    const v = model.params.get(spec.name);
    tensors.push({ name: spec.name, shape: v.shape, values: (await v.data()) as Float32Array });
  }
  return await writeBundle(dir, MODEL_HEADER, MODEL_BINARY, MODEL_FORMAT, tensors, {
    config: model.config,
    vocab: [...vocab.tokens],
    preprocess: {
      pixels: "x/127.5-1",
      tokenizer: "lowercase, maximal runs of Unicode letters; PAD=0, OOV=1",
      maxLen: model.config.text.maxLen,
    },
    training,
  }) as unknown as ModelHeader;
}

export interface LoadedModel {
  model: ContrastiveModel;
  vocab: Vocab;
  header: ModelHeader;
}

/** Loads a saved model onto the active tfjs backend. */
export async function loadModel(dir: string): Promise<LoadedModel> {
  const { header, tensors } = await readBundle<ModelHeader>(dir, MODEL_HEADER, MODEL_FORMAT);
  const values = new Map([...tensors].map(([k, t]) => [k, t.values]));
  const { sim } = await loadSimilarity(header.config.similarity);
  const model = ContrastiveModel.fromValues(header.config, values, sim);
  return { model, vocab: new Vocab(header.vocab), header };
}

/** Convenience for evaluation: point sets of raw inputs (caller disposes the tensors). */
export function encodeImages(model: ContrastiveModel, images: Uint8Array, count: number): PointSet {
  const im = model.config.image;
  return tidyPointSet(() => {
    const t = tf.tensor4d(images, [count, im.height, im.widthPx, im.channels], "int32");
    return model.encodeImages(t);
  });
}

export function encodeTexts(
  model: ContrastiveModel,
  vocab: Vocab,
  texts: readonly string[],
): PointSet {
  const maxLen = model.config.text.maxLen;
  return tidyPointSet(() => {
    const ids = tf.tensor2d(vocab.encodeBatch(texts, maxLen), [texts.length, maxLen], "int32");
    return model.encodeTexts(ids);
  });
}
