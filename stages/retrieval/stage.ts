/**
 * retrieval: image->text and text->image retrieval on stored embeddings (embed), with the
 * model's own similarity; COCO 5k and 1k protocols; per-query ranks saved for the paired
 * bootstrap that `diff` runs through `compare`. Light definition; the work is in ./run.ts.
 */
import { z } from "zod";
import { defineStage } from "../../pipeline/stage.ts";
import { kmeEngineFacets, kmeEngineParam } from "../lib/eval/engine_param.ts";

export const RetrievalParams = z.strictObject({
  /** Images per fold of the "1k" protocol (computed when the image count is a multiple >= 2). */
  fold_size: z.int().min(1).default(1000),
  /** Score matrix block: images x captions per block (memory stays O(images + captions)). */
  image_block: z.int().min(1).default(256),
  caption_block: z.int().min(1).default(2048),
  /**
   * The same caption text attached to several images: "instance" (COCO practice) = each
   * caption instance is relevant to its own image only; "text" = relevant to every image that
   * has a caption with this text (docs/evaluation.md, section 2).
   */
  duplicate_texts: z.enum(["instance", "text"]).default("instance"),
  /** Web Workers for KME / WPSE scoring (0 = one per core); results do not depend on it. */
  workers: z.int().min(0).default(0),
  /**
   * KME / WPSE scoring: "wasm" (the same bits on every machine), "blas" (OpenBLAS, 1.5-1.8x
   * faster, equal up to f32 rounding), "auto" = blas when OpenBLAS is installed, else wasm.
   */
  kme_engine: kmeEngineParam,
});
export type RetrievalParams = z.output<typeof RetrievalParams>;

export default defineStage({
  kind: "retrieval",
  description: "Image<->text retrieval (R@1/5/10, median/mean rank, rsum; COCO 5k and 1k) " +
    "from embeddings; writes metrics.json and per-query ranks (ranks_i2t.i32, ranks_t2i.i32).",
  params: RetrievalParams,
  inputs: { embeddings: { description: "embeddings of the evaluation split (embed)" } },
  run: async (ctx) => (await import("./run.ts")).run(ctx),
  facets: kmeEngineFacets,
  compare: async (pairs) => (await import("./compare.ts")).compareRetrieval(pairs),
});
