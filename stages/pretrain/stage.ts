/**
 * pretrain: contrastive image-text pretraining with the CLIP, KME-CLIP or WPSE similarity.
 * Light definition (zod + types); the training code is imported by `run`.
 */
import { z } from "zod";
import { defineStage } from "../../pipeline/stage.ts";
import { backendFacets, backendParam } from "../lib/tf/backend_param.ts";

const pos = z.int().min(1);

export const PretrainParams = z.strictObject({
  /** Similarity between image and caption point sets. */
  similarity: z.enum(["clip", "kme", "wpse"]).default("clip"),
  /** kme / wpse: points are the encoders' tokens, or K learned query points (cheaper). */
  points: z.enum(["tokens", "queries"]).default("tokens"),
  /** Number of learned query points when points = "queries". */
  num_queries: pos.max(256).default(8),
  /** Dimension of the (unit) points / embeddings. */
  embed_dim: pos.default(128),
  /** Image transformer (ViT): patch side in pixels, width, depth, heads, MLP hidden size. */
  patch: pos.default(4),
  vision_width: pos.default(128),
  vision_depth: pos.default(4),
  vision_heads: pos.default(4),
  vision_mlp: pos.default(512),
  /** Text transformer over word tokens. */
  text_width: pos.default(128),
  text_depth: pos.default(4),
  text_heads: pos.default(4),
  text_mlp: pos.default(512),
  /** Captions are truncated to this many words. */
  max_len: pos.max(512).default(24),
  /** Vocabulary: at most this many entries (incl. PAD, OOV), words seen >= min_count times. */
  vocab_size: z.int().min(2).default(10000),
  min_count: pos.default(1),
  /** clip / wpse: the logit scale exp(t) starts at 1 / temperature_init, clamped <= max_logit_scale. */
  temperature_init: z.number().positive().default(0.07),
  max_logit_scale: z.number().positive().default(100),
  /** kme / wpse: kernel bandwidth sigma^2 (log-parametrised, clamped to [min, max]). */
  sigma2_init: z.number().positive().default(0.07),
  sigma2_min: z.number().positive().default(0.01),
  sigma2_max: z.number().positive().default(10),
  learn_sigma2: z.boolean().default(true),
  batch_size: z.int().min(2).default(128),
  steps: pos.default(2000),
  /** Peak learning rate (AdamW), after `warmup` linear steps, then cosine to min_lr_ratio * lr. */
  lr: z.number().positive().default(5e-4),
  warmup: z.int().min(0).default(100),
  min_lr_ratio: z.number().min(0).max(1).default(0),
  weight_decay: z.number().min(0).default(0.1),
  beta1: z.number().min(0).lt(1).default(0.9),
  beta2: z.number().min(0).lt(1).default(0.98),
  eps: z.number().positive().default(1e-6),
  /** Max global gradient norm; 0 disables clipping. */
  grad_clip: z.number().min(0).default(1),
  checkpoint_every: z.int().min(0).default(200),
  log_every: pos.default(10),
  /** Validation loss on up to this many batches of the val split at the end (0: none). */
  val_batches: z.int().min(0).default(8),
  /** Keep the training split in memory when it is at most this many MiB. */
  cache_mb: z.int().min(0).default(1024),
  backend: backendParam,
}).refine((p) => p.sigma2_min <= p.sigma2_init && p.sigma2_init <= p.sigma2_max, {
  message: "need sigma2_min <= sigma2_init <= sigma2_max",
  path: ["sigma2_init"],
}).refine((p) => p.vision_width % p.vision_heads === 0, {
  message: "vision_width must be divisible by vision_heads",
  path: ["vision_heads"],
}).refine((p) => p.text_width % p.text_heads === 0, {
  message: "text_width must be divisible by text_heads",
  path: ["text_heads"],
});
export type PretrainParams = z.output<typeof PretrainParams>;

export default defineStage({
  kind: "pretrain",
  description: "Contrastive image-text pretraining (CLIP / KME-CLIP / WPSE) of a ViT + text " +
    "transformer; writes model.json + model.bin and train_log.jsonl.",
  params: PretrainParams,
  inputs: {
    data: { description: "packed dataset (prepare/*): the train split, and val for val_loss" },
  },
  facets: backendFacets,
  run: async (ctx) => (await import("./run.ts")).run(ctx),
});
