/**
 * pretrain: contrastive image-text pretraining with a similarity from
 * stages/lib/similarity/ (CLIP, KME-CLIP, WPSE, their controls) or a plugin module.
 * Light definition (zod, and similarity modules, which import no TF.js); the training code is
 * imported by `run`.
 */
import { z } from "zod";
import { defineStage, didYouMean } from "../../pipeline/stage.ts";
import { backendFacets, backendParam } from "../lib/tf/backend_param.ts";
import {
  BUILTIN_PARAM_NAMES,
  builtinOf,
  builtinParamsShape,
  isModulePath,
  loadPlugin,
  resolveBuiltinParams,
  resolvePluginParams,
  SIMILARITY_NAMES,
} from "../lib/similarity/registry.ts";

const pos = z.int().min(1);

const PretrainBase = z.strictObject({
  /**
   * Similarity between image and caption point sets: a built-in (clip, kme, wpse), a preset
   * (clip_weighted, kme_one_point) or a module path (README, "Writing a similarity").
   */
  similarity: z.string().default("clip"),
  /** Params of a similarity given by path (its own schema checks them). */
  similarity_params: z.record(z.string(), z.unknown()).default({}),
  /** Similarities over point sets: the points are the encoders' tokens, or K learned queries. */
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
  /** Validation loss on up to this many fixed batches of the val split (0: none). */
  val_batches: z.int().min(0).default(8),
  /**
   * Validation loss every this many steps, and at the last (logged as `val_loss`). Unset: about
   * ten times over the run, on logging steps; 0: only at the end.
   */
  val_every: z.int().min(0).optional(),
  /** Keep the training split in memory when it is at most this many MiB. */
  cache_mb: z.int().min(0).default(1024),
  backend: backendParam,
});

/** Pretrain's params: its own and, at the top level, every built-in similarity's. */
export const PretrainParams = PretrainBase.extend(builtinParamsShape()).superRefine((p, ctx) => {
  const name = p.similarity;
  if (isModulePath(name)) return; // checked in refineParams, once the module is known
  if (!builtinOf(name)) {
    ctx.addIssue({
      code: "custom",
      path: ["similarity"],
      message: `unknown similarity '${name}'${didYouMean(name, SIMILARITY_NAMES)}; known: ` +
        `${SIMILARITY_NAMES.join(", ")}, or a module path (./my_similarity.ts)`,
    });
    return;
  }
  if (Object.keys(p.similarity_params).length > 0) {
    ctx.addIssue({
      code: "custom",
      path: ["similarity_params"],
      message: `similarity_params is for a similarity given by path; '${name}' takes its ` +
        "params at the top level",
    });
  }
  for (const i of resolveBuiltinParams(name, p).issues) {
    ctx.addIssue({ code: "custom", path: i.path, message: i.message });
  }
}).refine((p) => p.vision_width % p.vision_heads === 0, {
  message: "vision_width must be divisible by vision_heads",
  path: ["vision_heads"],
}).refine((p) => p.text_width % p.text_heads === 0, {
  message: "text_width must be divisible by text_heads",
  path: ["text_heads"],
});
export type PretrainParams = z.output<typeof PretrainParams>;

/** Throws the issues as a ZodError, which the engine reports at their file:line. */
function raise(issues: { path: (string | number)[]; message: string }[]): never {
  throw new z.ZodError(
    issues.map((i) => ({
      code: "custom" as const,
      path: i.path,
      message: i.message,
      input: undefined,
    })),
  );
}

export default defineStage({
  kind: "pretrain",
  description: "Contrastive image-text pretraining (CLIP / KME-CLIP / WPSE / a plugin " +
    "similarity) of a ViT + text transformer; writes model.json + model.bin and train_log.jsonl.",
  params: PretrainParams,
  modules: (p): Record<string, string> =>
    isModulePath(p.similarity) ? { similarity: p.similarity } : {},
  async refineParams(p, modules, setBy = {}) {
    // Another similarity's param set for this stage (not by `defaults:`, and not while the
    // similarity itself is swept, where it may be meant for the other instances) is a mistake:
    // it would change nothing. Otherwise such params are dropped, so that values the model
    // never reads stay out of its key.
    const own = modules.similarity
      ? []
      : Object.keys(builtinOf(p.similarity)?.sim.params.shape ?? {});
    const foreign = BUILTIN_PARAM_NAMES.filter((k) => !own.includes(k) && k in setBy);
    if (setBy.similarity !== "matrix") {
      const meant = foreign.filter((k) => setBy[k] === "params" || setBy[k] === "matrix");
      if (meant.length) {
        raise(meant.map((k) => ({
          path: [k],
          message: `similarity '${p.similarity}' does not use '${k}'` +
            (modules.similarity ? " (a plugin takes its params under similarity_params)" : "") +
            "; remove it, or set it under defaults: to share it across a sweep",
        })));
      }
    }
    const without = (keep: string[]) =>
      Object.fromEntries(
        Object.entries(p).filter(([k]) => !BUILTIN_PARAM_NAMES.includes(k) || keep.includes(k)),
      ) as typeof p;
    if (modules.similarity) {
      const r = resolvePluginParams(await loadPlugin(modules.similarity), p.similarity_params);
      if (!r.params) raise(r.issues);
      return { ...without([]), similarity_params: r.params };
    }
    // Fill what a preset fixes, so that the resolved params (and the key) say it.
    const r = resolveBuiltinParams(p.similarity, p);
    if (!r.params) raise(r.issues);
    return { ...without(Object.keys(r.params)), ...r.params };
  },
  inputs: {
    data: { description: "packed dataset (prepare/*): the train split, and val for val_loss" },
  },
  facets: backendFacets,
  run: async (ctx) => (await import("./run.ts")).run(ctx),
});
