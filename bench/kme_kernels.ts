/**
 * Single-thread rates of the two KME kernels (pairs per second, best of 5 on a 64-image x
 * 2,000-caption block, random unit points, d = 64): M = N = 16 with no padding, and captions of
 * N = 32 tokens of which 6-17 are real (the rest padding, as in tokenised captions; M = 32).
 * Not a test; prints one JSON line. Part of `deno task bench evaluation`.
 *
 *   deno run --allow-all bench/kme_kernels.ts
 */
import { findOpenBlas } from "../stages/lib/eval/openblas.ts";
import type { PointSets } from "../stages/lib/eval/scoring.ts";
import { kernelScorer } from "../stages/lib/eval/similarity_scoring.ts";
import {
  builtinRecord,
  type LoadedSimilarity,
  loadSimilarity,
} from "../stages/lib/similarity/registry.ts";
import { Rng } from "../stages/lib/random.ts";

function randomSets(n: number, P: number, d: number, rng: Rng, live?: (i: number) => number) {
  const data = new Float32Array(n * P * d);
  for (let q = 0; q < n * P; q++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += (data[q * d + k] = rng.float() * 2 - 1) ** 2;
    for (let k = 0; k < d; k++) data[q * d + k] /= Math.sqrt(s);
  }
  const logits = new Float32Array(n * P).map((_, k) =>
    live && k % P >= live(Math.floor(k / P)) ? -Infinity : rng.float() * 2 - 1
  );
  const sets: PointSets = { n, points: P, dim: d, data, logits };
  return sets;
}

function rate(
  kme: LoadedSimilarity,
  images: PointSets,
  captions: PointSets,
  backend: "wasm" | "blas",
): number {
  const s = kernelScorer(kme, images, captions, backend);
  for (let w = 0; w < 3; w++) s.scoreBlock(0, images.n, 0, captions.n);
  let best = Infinity;
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    s.scoreBlock(0, images.n, 0, captions.n);
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return Math.round((images.n * captions.n) / best);
}

if (import.meta.main) {
  // The kme similarity with sigma2 = 0.05, as a kme model's embeddings record it.
  const kme = await loadSimilarity({ ...builtinRecord("kme"), values: { sigma2: 0.05 } });
  const rng = new Rng(7);
  const engines = findOpenBlas() ? ["wasm", "blas"] as const : ["wasm"] as const;
  const plain = [randomSets(64, 16, 64, rng), randomSets(2000, 16, 64, rng)] as const;
  const padded = [
    randomSets(64, 32, 64, rng),
    randomSets(2000, 32, 64, rng, (c) => 6 + ((c * 7) % 12)),
  ] as const;
  const out: Record<string, number> = {};
  for (const e of engines) {
    out[`${e}_16x16`] = rate(kme, ...plain, e);
    out[`${e}_32x32_padded`] = rate(kme, ...padded, e);
  }
  console.log(JSON.stringify(out));
}
