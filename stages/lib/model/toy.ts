/**
 * A tiny learnable image-text task for tests and benchmarks: a coloured square in one of four
 * quadrants on a noisy background; the caption names the colour and the quadrant
 * ("a red block at the top left"). 8 colours x 4 positions = 32 distinct concepts.
 */
import type { SplitLike } from "./data.ts";
import type { ModelConfig } from "./model.ts";
import { keyedRng } from "../random.ts";
import { builtinRecord } from "../similarity/registry.ts";
import type { TrainOptions } from "./train.ts";

export const TOY_COLOURS: [string, [number, number, number]][] = [
  ["red", [220, 30, 30]],
  ["green", [30, 200, 40]],
  ["blue", [30, 60, 220]],
  ["yellow", [230, 220, 30]],
  ["purple", [150, 40, 200]],
  ["cyan", [30, 210, 210]],
  ["orange", [240, 140, 20]],
  ["white", [245, 245, 245]],
];
export const TOY_POSITIONS = ["top left", "top right", "bottom left", "bottom right"];

/** In-memory split of `n` toy images of size x size x 3. */
export function toySplit(n: number, seed: number, size = 16): SplitLike & { images: Uint8Array } {
  const rng = keyedRng(seed, 0x70);
  const bytes = size * size * 3;
  const images = new Uint8Array(n * bytes);
  const captions: { image: number; text: string }[] = [];
  const half = size / 2;
  for (let i = 0; i < n; i++) {
    const c = rng.int(TOY_COLOURS.length);
    const p = rng.int(TOY_POSITIONS.length);
    const [name, rgb] = TOY_COLOURS[c];
    const y0 = p < 2 ? 0 : half;
    const x0 = p % 2 === 0 ? 0 : half;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const inside = y >= y0 && y < y0 + half && x >= x0 && x < x0 + half;
        for (let k = 0; k < 3; k++) {
          const base = inside ? rgb[k] : 60;
          const v = base + (rng.float53() - 0.5) * 40;
          images[i * bytes + (y * size + x) * 3 + k] = Math.max(0, Math.min(255, Math.round(v)));
        }
      }
    }
    captions.push({ image: i, text: `a ${name} block at the ${TOY_POSITIONS[p]}` });
    captions.push({ image: i, text: `${TOY_POSITIONS[p]}: ${name} square` });
  }
  return {
    numImages: n,
    captions,
    images,
    readImages: (start: number, count: number) =>
      Promise.resolve(images.slice(start * bytes, (start + count) * bytes)),
  };
}

/** A very small model configuration (for tests: a step takes milliseconds). */
export function tinyConfig(
  similarity: string,
  vocabSize: number,
  over: Partial<ModelConfig> = {},
  size = 16,
  similarityParams: Record<string, unknown> = {},
): ModelConfig {
  return {
    similarity: builtinRecord(similarity, similarityParams),
    embedDim: 16,
    image: {
      height: size,
      widthPx: size,
      channels: 3,
      patch: 4,
      width: 32,
      depth: 1,
      heads: 2,
      mlp: 64,
    },
    text: { maxLen: 8, vocabSize, width: 32, depth: 1, heads: 2, mlp: 64 },
    points: "tokens",
    numQueries: 4,
    ...over,
  };
}

/** Training options for toy runs in tests: small, logged every `logEvery` steps, no checkpoints. */
export function toyTrainOptions(o: Partial<TrainOptions> = {}): TrainOptions {
  return {
    steps: 6,
    lr: 2e-3,
    warmup: 2,
    minLrRatio: 0.1,
    weightDecay: 0.05,
    beta1: 0.9,
    beta2: 0.98,
    eps: 1e-6,
    gradClip: 1,
    logEvery: 1,
    checkpointEvery: 0,
    ...o,
  };
}
