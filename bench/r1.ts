/**
 * The R1 reference model and batches for the training benchmark (bench/training.ts), shared with
 * profiling scripts. R1: batch 128; 32x32x3 images in 8x8 patches (16 tokens); 16-token captions,
 * vocabulary 1000; width 128, 2 pre-LN blocks per tower, 4 heads, MLP 512; d = 64; CLIP on
 * mean-pooled tokens, KME with every token a point (M = N = 16); AdamW.
 */
import type { ModelConfig } from "../stages/lib/model/model.ts";
import { keyedRng } from "../stages/lib/random.ts";
import { builtinRecord } from "../stages/lib/similarity/registry.ts";
import type { TrainOptions } from "../stages/lib/model/train.ts";

export const R1_BATCH = 128;
export const R1_LEN = 16;
export const R1_VOCAB = 1000;

export function r1Config(similarity: string): ModelConfig {
  const tower = { width: 128, depth: 2, heads: 4, mlp: 512 };
  return {
    similarity: builtinRecord(similarity),
    embedDim: 64,
    image: { height: 32, widthPx: 32, channels: 3, patch: 8, ...tower },
    text: { maxLen: R1_LEN, vocabSize: R1_VOCAB, ...tower },
    points: "tokens",
    numQueries: 8,
  };
}

export const R1_TRAIN: TrainOptions = {
  steps: 1_000_000,
  lr: 5e-4,
  warmup: 100,
  minLrRatio: 0,
  weightDecay: 0.1,
  beta1: 0.9,
  beta2: 0.98,
  eps: 1e-6,
  gradClip: 1,
  logEvery: 1_000_000,
  checkpointEvery: 0,
};

export interface R1Batch {
  images: Int32Array; // [B, 32, 32, 3] pixel values 0..255
  ids: Int32Array; // [B, 16], PAD = 0, lengths 4..16
}

/** `n` random batches (uniform pixels; captions of 4..16 random words, then padding). */
export function r1Batches(n: number, seed = 1, batch = R1_BATCH): R1Batch[] {
  const rng = keyedRng(seed, 0xb1);
  const out: R1Batch[] = [];
  for (let k = 0; k < n; k++) {
    const images = new Int32Array(batch * 32 * 32 * 3);
    for (let i = 0; i < images.length; i++) images[i] = rng.int(256);
    const ids = new Int32Array(batch * R1_LEN);
    for (let b = 0; b < batch; b++) {
      const len = 4 + rng.int(R1_LEN - 3);
      for (let j = 0; j < len; j++) ids[b * R1_LEN + j] = 2 + rng.int(R1_VOCAB - 2);
    }
    out.push({ images, ids });
  }
  return out;
}
