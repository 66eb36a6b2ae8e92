/**
 * zero-shot: classifies the images of stored embeddings (embed, a labelled split) by scoring
 * them against class prompts encoded with the same model; prompts of a class are pooled in
 * the embedding (CLIP: mean of normalised embeddings; KME: union of weighted point sets).
 * Light definition; the work is in ./run.ts.
 */
import { z } from "zod";
import { defineStage } from "../../pipeline/stage.ts";
import { backendFacets, backendParam } from "../lib/tf/backend_param.ts";

/** Defaults that read like the captions of prepare/synthetic and prepare/fashion-mnist. */
export const DEFAULT_TEMPLATES = [
  "a photo of {a} {class}.",
  "a picture of {a} {class}",
  "an image showing {a} {class}",
  "there is {a} {class}",
  "{a} {class}",
];

export const ZeroShotParams = z.strictObject({
  /** Prompt templates: `{class}` = the class name, `{a}` = "a" or "an" (by its first letter). */
  templates: z.array(z.string().includes("{class}")).min(1).default(DEFAULT_TEMPLATES),
  /** Prompts per forward pass. */
  batch_size: z.int().min(1).default(256),
  backend: backendParam,
});
export type ZeroShotParams = z.output<typeof ZeroShotParams>;

export default defineStage({
  kind: "zero-shot",
  description: "Zero-shot classification with prompt ensembles pooled in the embedding " +
    "(top-1, top-5, mean per-class recall); writes metrics.json.",
  params: ZeroShotParams,
  inputs: {
    model: { description: "the trained model that made the embeddings (pretrain)" },
    embeddings: { description: "embeddings of a labelled split (embed)" },
    data: { description: "the packed dataset, for its class names (prepare/*)" },
  },
  facets: backendFacets,
  run: async (ctx) => (await import("./run.ts")).run(ctx),
});
