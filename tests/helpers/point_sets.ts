/** Random weighted point sets for the scoring tests, and KME scorers through the kme module. */
import type { PointSets, SimilarityRecord } from "../../stages/lib/similarity/similarity.ts";
import {
  builtinRecord,
  type LoadedSimilarity,
  loadSimilarity,
} from "../../stages/lib/similarity/registry.ts";
import type { KernelScorer, KmeBackend } from "../../stages/lib/eval/scoring.ts";
import { kernelScorer } from "../../stages/lib/eval/similarity_scoring.ts";
import { Rng } from "../../stages/lib/random.ts";

/** n random sets of P unit points in R^d; the last `pad` points of each set are padding. */
export function randomSets(n: number, P: number, d: number, seed: number, pad = 0): PointSets {
  const r = new Rng(seed);
  const data = new Float32Array(n * P * d);
  for (let q = 0; q < n * P; q++) {
    let s = 0;
    for (let k = 0; k < d; k++) {
      const g = r.float() * 2 - 1;
      data[q * d + k] = g;
      s += g * g;
    }
    for (let k = 0; k < d; k++) data[q * d + k] /= Math.sqrt(s);
  }
  const logits = new Float32Array(n * P).map((_, k) =>
    k % P >= P - pad ? -Infinity : r.float() * 4 - 2
  );
  return { n, points: P, dim: d, data, logits };
}

/** The built-in kme similarity's record with a learned bandwidth sigma2 (as files record it). */
export function kmeRecord(sigma2: number): SimilarityRecord {
  return { ...builtinRecord("kme"), values: { sigma2 } };
}

/** The kme similarity loaded from its record (stages/lib/similarity/kme.ts). */
export async function loadKme(sigma2: number): Promise<LoadedSimilarity> {
  return await loadSimilarity(kmeRecord(sigma2));
}

/**
 * An in-thread KME scorer: the kme module's invSigma2 and finish on the shared kernel engines
 * (the path the evaluation stages take for a kme model).
 */
export async function kmeScorer(
  images: PointSets,
  captions: PointSets,
  sigma2: number,
  backend?: KmeBackend,
): Promise<KernelScorer> {
  return kernelScorer(await loadKme(sigma2), images, captions, backend);
}
