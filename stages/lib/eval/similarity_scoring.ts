/**
 * Scorers for a loaded similarity. The path comes from the similarity's `scoring.kind`, never
 * from its name: "pooled" similarities become vectors f(x) once per input and a PooledScorer;
 * "kernel" similarities go to the shared KME engines with their invSigma2 and finish, in Web
 * Workers when the job is large enough to pay.
 */
import type { LoadedSimilarity } from "../similarity/registry.ts";
import type { PointSets } from "../similarity/similarity.ts";
import { createParallelScorer, KernelScorer, type KmeBackend, PooledScorer } from "./scoring.ts";
import type { KernelScore } from "./kme_kernel.ts";
import type { BlockScorer } from "./retrieval/scores.ts";

/** A scorer with a close(): in-thread, or Web Workers. */
export interface ClosableScorer extends BlockScorer {
  readonly description: string;
  close(): void;
}

/** "kme sigma2=0.05": the similarity with its learned values, for protocols. */
export function describeSimilarity(l: LoadedSimilarity): string {
  const own = l.sim.describe(l.params, l.values);
  const m = l.record.module;
  return m ? `${own} (module ${l.record.name}, code ${m.digest.slice(0, 12)})` : own;
}

/** The kernel engines' view of a kernel similarity. */
export function kernelScoreOf(l: LoadedSimilarity): KernelScore {
  const s = l.sim.scoring;
  if (s.kind !== "kernel") throw new Error(`similarity ${l.record.name} is not a kernel one`);
  return {
    invSigma2: s.invSigma2(l.params, l.values),
    finish: (lse) => s.finish(lse, l.params, l.values),
  };
}

/** An in-thread KernelScorer (also what each worker builds). */
export function kernelScorer(
  l: LoadedSimilarity,
  images: PointSets,
  captions: PointSets,
  backend?: KmeBackend,
): KernelScorer {
  return new KernelScorer({
    images,
    captions,
    score: kernelScoreOf(l),
    backend,
    similarity: describeSimilarity(l),
  });
}

/** f(x) of every set, for a pooled similarity. */
export function pooledVectors(l: LoadedSimilarity, sets: PointSets): {
  dim: number;
  data: Float32Array;
} {
  const s = l.sim.scoring;
  if (s.kind !== "pooled") throw new Error(`similarity ${l.record.name} is not a pooled one`);
  return s.embed(sets, l.params, l.values);
}

/** A PooledScorer over vectors already pooled (e.g. zero-shot class vectors). */
export function pooledScorer(
  l: LoadedSimilarity,
  images: Float32Array,
  captions: Float32Array,
  dim: number,
): ClosableScorer {
  const s = l.sim.scoring;
  if (s.kind !== "pooled") throw new Error(`similarity ${l.record.name} is not a pooled one`);
  const scale = s.scale(l.params, l.values);
  if (!(Number.isFinite(scale) && scale > 0)) {
    // e.g. a record without its learned values: scoring at scale 1 would go unnoticed.
    throw new Error(`similarity ${l.record.name}: its scale is ${scale}, not a positive number`);
  }
  const scorer = new PooledScorer({
    images,
    captions,
    dim,
    scale,
    similarity: describeSimilarity(l),
  });
  return Object.assign(scorer, { close() {} });
}

/**
 * The training similarity's scorer for image sets x caption sets (captions may be zero-shot
 * classes). Kernel jobs above about 2e9 multiply-adds (a few seconds single-threaded) run in
 * `workers` Web Workers (0 = one per core); both give bit-identical scores
 * (docs/evaluation.md, section 1).
 */
export async function scorerFor(
  l: LoadedSimilarity,
  images: PointSets,
  captions: PointSets,
  opts: { backend?: KmeBackend; workers?: number } = {},
): Promise<ClosableScorer> {
  if (l.sim.scoring.kind === "pooled") {
    const a = pooledVectors(l, images);
    const b = pooledVectors(l, captions);
    return pooledScorer(l, a.data, b.data, a.dim);
  }
  const cores = (opts.workers ?? 0) > 0 ? opts.workers! : (navigator.hardwareConcurrency ?? 1);
  const work = images.n * captions.n * images.points * captions.points * images.dim;
  if (cores > 1 && work > 2e9) {
    // The workers load the similarity from a record: the one with these params and values.
    const similarity = { ...l.record, params: l.params, values: l.values };
    return await createParallelScorer(
      { images, captions, backend: opts.backend, similarity },
      { workers: cores },
    );
  }
  const s = kernelScorer(l, images, captions, opts.backend);
  return Object.assign(s, { close() {} });
}
