/**
 * The benchmark cases of the training benchmark (bench/training.ts), shared with profiling
 * scripts and the GPU check kit (bench/gpu/):
 *
 * - R1, the CPU reference: batch 128; 32x32x3 images in 8x8 patches (16 tokens); 16-token
 *   captions, vocabulary 1000; width 128, 2 pre-LN blocks per tower, 4 heads, MLP 512; d = 64;
 *   CLIP on mean-pooled tokens, KME with every token a point (M = N = 16); AdamW.
 * - C1, the GPU case: the model, batch and optimiser of experiments/coco.yaml (pretrain's
 *   defaults where coco.yaml says nothing): batch 256; 64x64x3 images in 8x8 patches (64
 *   tokens); 32-token captions, vocabulary 20000; vision width 256, depth 6, 8 heads, MLP 1024;
 *   text width 256, depth 4, 8 heads, MLP 1024; d = 256; points "tokens" (KME: M = 64, N = 32,
 *   so its logits before the block LSE are [B*M, B*N] = 16384 x 8192 f32, 512 MiB); AdamW lr
 *   5e-4, warm-up 1000 of 20000 steps, cosine to 0, weight decay 0.1, betas 0.9 / 0.98, eps
 *   1e-6, global-norm clipping 1. bench/peers/r1_torch.py --case c1 is the same in PyTorch.
 *
 * Batches are random: uniform pixels (raw bytes, as a dataset's batch), captions of 4..maxLen
 * random words (ids 2..vocab-1) then padding (PAD = 0). They are a pure function of the seed.
 */
import type { ModelConfig } from "../stages/lib/model/model.ts";
import { keyedRng } from "../stages/lib/random.ts";
import { builtinRecord } from "../stages/lib/similarity/registry.ts";
import type { TrainOptions } from "../stages/lib/model/train.ts";

export type CaseName = "r1" | "c1";
export const CASE_NAMES: readonly CaseName[] = ["r1", "c1"];

/** One batch: what a dataset's BatchSource gives (stages/lib/model/data.ts), minus indices. */
export interface BenchBatch {
  /** [size, H, W, C] pixel values 0..255. */
  images: Uint8Array;
  /** [size, maxLen], PAD = 0. */
  ids: Int32Array;
  size: number;
}

export interface BenchCase {
  name: CaseName;
  /** The model for a similarity (built-in name: clip, kme, ...). */
  config(similarity: string): ModelConfig;
  /** The optimiser's settings (the bench steps at the peak `lr`). */
  train: TrainOptions;
  /** The case's batch size. */
  batch: number;
  image: { height: number; width: number; channels: number };
  maxLen: number;
  vocab: number;
  /** `n` random batches of `batch` samples (default: the case's batch). */
  batches(n: number, seed?: number, batch?: number): BenchBatch[];
}

// ---------------------------------------------------------------- R1

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

/** An R1 batch: images [B, 32, 32, 3], ids [B, 16] with lengths 4..16. */
export type R1Batch = BenchBatch;

/** `n` random R1 batches (uniform pixels; captions of 4..16 random words, then padding). */
export function r1Batches(n: number, seed = 1, batch = R1_BATCH): R1Batch[] {
  return randomBatches(n, seed, batch, 32 * 32 * 3, R1_LEN, R1_VOCAB);
}

// ---------------------------------------------------------------- C1 (experiments/coco.yaml)

export const C1_BATCH = 256;
export const C1_LEN = 32;
export const C1_VOCAB = 20000;
export const C1_IMAGE = { height: 64, width: 64, channels: 3 };

export function c1Config(similarity: string): ModelConfig {
  return {
    similarity: builtinRecord(similarity),
    embedDim: 256,
    image: {
      height: C1_IMAGE.height,
      widthPx: C1_IMAGE.width,
      channels: C1_IMAGE.channels,
      patch: 8,
      width: 256,
      depth: 6,
      heads: 8,
      mlp: 1024,
    },
    text: { maxLen: C1_LEN, vocabSize: C1_VOCAB, width: 256, depth: 4, heads: 8, mlp: 1024 },
    points: "tokens", // pretrain's default
    numQueries: 8, // pretrain's default (unused with token points)
  };
}

/** coco.yaml's pretrain settings; the rest are pretrain's defaults (stages/pretrain/stage.ts). */
export const C1_TRAIN: TrainOptions = {
  ...R1_TRAIN,
  steps: 20_000,
  warmup: 1000,
  logEvery: 50,
  checkpointEvery: 500,
};

export function c1Batches(n: number, seed = 1, batch = C1_BATCH): BenchBatch[] {
  const { height, width, channels } = C1_IMAGE;
  return randomBatches(n, seed, batch, height * width * channels, C1_LEN, C1_VOCAB);
}

// ---------------------------------------------------------------- both

/** Random batches; R1's stream is the one this file always drew (same values, now bytes). */
function randomBatches(
  n: number,
  seed: number,
  batch: number,
  imageBytes: number,
  maxLen: number,
  vocab: number,
): BenchBatch[] {
  const rng = keyedRng(seed, 0xb1);
  const out: BenchBatch[] = [];
  for (let k = 0; k < n; k++) {
    const images = new Uint8Array(batch * imageBytes);
    for (let i = 0; i < images.length; i++) images[i] = rng.int(256);
    const ids = new Int32Array(batch * maxLen);
    for (let b = 0; b < batch; b++) {
      const len = 4 + rng.int(maxLen - 3);
      for (let j = 0; j < len; j++) ids[b * maxLen + j] = 2 + rng.int(vocab - 2);
    }
    out.push({ images, ids, size: batch });
  }
  return out;
}

/** The case `name` (see the file's comment). */
export function benchCase(name: CaseName): BenchCase {
  if (name === "r1") {
    return {
      name,
      config: r1Config,
      train: R1_TRAIN,
      batch: R1_BATCH,
      image: { height: 32, width: 32, channels: 3 },
      maxLen: R1_LEN,
      vocab: R1_VOCAB,
      batches: r1Batches,
    };
  }
  if (name === "c1") {
    return {
      name,
      config: c1Config,
      train: C1_TRAIN,
      batch: C1_BATCH,
      image: { ...C1_IMAGE },
      maxLen: C1_LEN,
      vocab: C1_VOCAB,
      batches: c1Batches,
    };
  }
  throw new Error(`unknown benchmark case '${name}' (${CASE_NAMES.join(", ")})`);
}
