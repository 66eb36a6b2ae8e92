/**
 * embed: runs a trained model over one split of a dataset and stores every image's and
 * caption's weighted point set (and a pooled image feature) in the `kme-embeddings/2` format
 * (stages/lib/eval/embeddings.ts, docs/evaluation.md). Light definition; the work is in ./run.ts.
 */
import { z } from "zod";
import { defineStage } from "../../pipeline/stage.ts";
import { backendFacets, backendParam } from "../lib/tf/backend_param.ts";

export const EmbedParams = z.strictObject({
  /** Which split of the dataset to encode. */
  split: z.enum(["train", "val", "test"]).default("test"),
  /** Images (and captions) per forward pass; memory is bounded by one batch. */
  batch_size: z.int().min(1).default(256),
  /** Encode only the first `max_images` images of the split and their captions (0 = all). */
  max_images: z.int().min(0).default(0),
  backend: backendParam,
});
export type EmbedParams = z.output<typeof EmbedParams>;

export default defineStage({
  kind: "embed",
  description: "Encodes a dataset split with a trained model: per-image and per-caption point " +
    "sets and weights plus pooled image features (embeddings.json + raw f32/i32 files).",
  params: EmbedParams,
  inputs: {
    model: { description: "a trained model (pretrain)" },
    data: { description: "packed dataset (prepare/*)" },
  },
  facets: backendFacets,
  run: async (ctx) => (await import("./run.ts")).run(ctx),
});
