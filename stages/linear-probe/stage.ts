/**
 * linear-probe: multinomial logistic regression on frozen image features (embed outputs of
 * the train and test splits), L2 strength chosen on a seeded validation split of train, refit
 * on train + val, test accuracy and mean per-class recall. Light definition; see ./run.ts.
 */
import { z } from "zod";
import { defineStage } from "../../pipeline/stage.ts";

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
  /** L-BFGS iteration cap per fit. */
  max_iterations: z.int().min(1).default(1000),
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
  run: async (ctx) => (await import("./run.ts")).run(ctx),
});
