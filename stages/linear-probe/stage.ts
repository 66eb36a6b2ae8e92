/**
 * linear-probe: multinomial logistic regression on frozen image features (embed outputs of
 * the train and test splits), L2 strength chosen on a seeded validation split of train, refit
 * on train + val, test accuracy and mean per-class recall. Light definition; see ./run.ts.
 */
import { z } from "zod";
import { defineStage } from "../../pipeline/stage.ts";
import { probeEngineFacets, probeEngineParam } from "../lib/eval/engine_param.ts";

export const LinearProbeParams = z.strictObject({
  /** Inverse L2 strengths C to sweep (scikit-learn's C); default 10^-4 .. 10^4 by decades. */
  c_grid: z.array(z.number().positive()).min(1).default([
    1e-4,
    1e-3,
    1e-2,
    1e-1,
    1,
    10,
    100,
    1e3,
    1e4,
  ]),
  /** Fraction of each training class held out (seeded, stratified) to choose C. */
  val_fraction: z.number().gt(0).lt(1).default(0.2),
  /** Use at most this many training images (seeded subsample, 0 = all). */
  max_train: z.int().min(0).default(0),
  /** Which features: "embedding" = images.pooled.f32 (CLIP's embedding, KME's weighted mean). */
  features: z.enum(["embedding"]).default("embedding"),
  /** z-score the features with the fitted data's mean / std (changes what C means). */
  standardize: z.boolean().default(false),
  /**
   * When a fit stops: "sklearn" = scikit-learn 1.2's lbfgs rules (tol 1e-4 on the gradient of
   * the summed objective, max_iter 1000); "tight" = gradient 1e-7 on the mean objective, up to
   * 10,000 iterations (this project's rule before; 10-30x slower, a few digits closer).
   */
  stopping: z.enum(["sklearn", "tight"]).default("sklearn"),
  /** L-BFGS iteration cap per fit; default the stopping rule's (1000 or 10,000). */
  max_iterations: z.int().min(1).optional(),
  /** Dense products: js, blas (OpenBLAS dgemm) or auto (blas when installed). */
  engine: probeEngineParam,
});
export type LinearProbeParams = z.output<typeof LinearProbeParams>;

export default defineStage({
  kind: "linear-probe",
  description: "Linear probe (multinomial logistic regression, C swept on a validation split) " +
    "on frozen pooled image features; writes metrics.json.",
  params: LinearProbeParams,
  inputs: {
    train: { description: "embeddings of a labelled training split (embed, split: train)" },
    test: { description: "embeddings of the labelled test split (embed, split: test)" },
  },
  facets: probeEngineFacets,
  run: async (ctx) => (await import("./run.ts")).run(ctx),
});
