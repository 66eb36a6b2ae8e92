/**
 * The `Similarity` interface: everything the pipeline needs to know about one similarity
 * function between an image and a caption, implemented once per similarity in one module of
 * this folder (clip.ts, kme.ts, wpse.ts) or in a plugin file named by path in an experiment
 * (README, "Writing a similarity").
 *
 * A similarity sees each input as a weighted point set: points [M, d] (L2-normalised rows) and
 * one raw score per point (-Infinity marks padding). What the scores mean is the similarity's
 * business: KME takes softmax(scores) as weights, WPSE takes 100 tanh(score / 100).
 *
 * Modules of this folder import zod and types only, never TensorFlow.js at run time: the
 * experiment's resolution imports them to validate params, and a cached rerun must not load
 * TF.js. The training code hands them its `tf` namespace instead.
 *
 * Evaluation scores pairs on one of two paths, chosen by `scoring.kind`, never by name:
 * - "pooled": s(x, y) = scale * <f(x), f(y)> with f a vector per point set (CLIP: the one
 *   normalised embedding; WPSE: the weighted point set embedding, d + D numbers), computed once
 *   per input; pairs are then plain dot products.
 * - "kernel": s(x, y) = finish(LSE_ij(<u_i, v_j> * invSigma2 + log alpha_i + log beta_j)),
 *   alpha = softmax of the image's point scores, beta of the caption's; the shared wasm and
 *   OpenBLAS engines (stages/lib/eval/) compute the log-sum-exp over the pair's dot products,
 *   the module supplies invSigma2 and finish.
 */
import type * as tfc from "@tensorflow/tfjs-core";
import type { z } from "zod";

/** The TensorFlow.js namespace, handed in by the caller (see the header). */
export type TF = typeof tfc;

/** A batch of weighted point sets as tensors. */
export interface PointSet {
  /** [B, M, d], L2-normalised along d. */
  points: tfc.Tensor3D;
  /** [B, M] raw point scores; -Infinity marks padding. */
  weights: tfc.Tensor2D;
}

/** n weighted point sets as plain arrays (evaluation). */
export interface PointSets {
  n: number;
  points: number;
  dim: number;
  /** [n, points, dim] row-major. */
  data: Float32Array;
  /** [n, points] raw point scores; -Infinity marks padding. Each set needs one finite score. */
  logits: Float32Array;
}

/** What the similarity needs from the two towers' heads (stages/lib/model/model.ts). */
export interface EncoderHead {
  /**
   * "mean": one point per input, CLIP's head (mean of the tokens, projection, L2 norm), score 0.
   * "sets": one point per token or per learned query (the pretrain param `points`), each with a
   * learned score.
   */
  points: "mean" | "sets";
  /**
   * How the score projection starts: "zero" (weight and bias 0: uniform softmax weights, KME's
   * choice) or "normal" (no bias, weight ~ N(0, 1/width): sony/wpse's `weight_proj`).
   */
  scoreInit?: "zero" | "normal";
}

/** A learnable scalar of the similarity (a logit scale, a bandwidth). */
export interface ScalarSpec {
  /** Parameter name in the model and its files, e.g. "logit_scale". */
  name: string;
  /** Initial raw value. */
  init: number;
  /** The raw value is clamped to [min, max] after every optimiser step (min may be -Infinity). */
  min: number;
  max: number;
  /** False: kept at `init`. */
  learn: boolean;
}

/** Scalar tensors by ScalarSpec name (the model's variables). */
export type ScalarTensors = Record<string, tfc.Scalar>;
/** Effective scalar values (after the clamps), e.g. { logit_scale: 14.3 }; also in files. */
export type ScalarValues = Record<string, number>;

/**
 * Which randomness a similarity may use: during training `step` and `seed` (a similarity that
 * resamples, like WPSE's random features, must draw from (seed, step) alone, so that a resumed
 * run equals an uninterrupted one); "eval" is the fixed set that evaluation uses.
 */
export type Draw = { kind: "train"; step: number; seed: number } | { kind: "eval" };

/** Evaluation by pooled vectors: s = scale * <f(x), f(y)>. */
export interface PooledScoring<P> {
  kind: "pooled";
  /** f of each set, [n, dim] (computed in f64, stored as f32). */
  embed(sets: PointSets, p: P, v: ScalarValues): { dim: number; data: Float32Array };
  scale(p: P, v: ScalarValues): number;
  /** Zero-shot: class vectors [nClasses, dim] from the prompts' vectors [nPrompts, dim]. */
  poolPrompts(
    vectors: Float32Array,
    dim: number,
    promptClass: Int32Array,
    nClasses: number,
  ): Float32Array;
  /** How poolPrompts pools, for the protocol. */
  promptPooling: string;
}

/** Evaluation by the shared KME kernel engines (see the header). */
export interface KernelScoring<P> {
  kind: "kernel";
  invSigma2(p: P, v: ScalarValues): number;
  /** The pair score from the pair's log-sum-exp (in f64). */
  finish(lse: number, p: P, v: ScalarValues): number;
}

export interface Similarity<P = Record<string, unknown>> {
  /** The name an experiment uses (`similarity: kme`); a plugin's name is informative only. */
  name: string;
  /** One line for errors, schemas and reports. */
  summary: string;
  /**
   * Its own params. Built-in similarities' params are merged into pretrain's (top level);
   * a plugin's are given under `similarity_params:`. Every param needs a default.
   */
  params: z.ZodObject;
  /** Cross-field checks of the params (e.g. min <= init <= max): [param, message] pairs. */
  check?(p: P): [string, string][];
  head(p: P): EncoderHead;
  scalars(p: P): ScalarSpec[];
  /** Effective values of the scalars from their raw values (the same clamps as `logits`). */
  values(raw: Record<string, number>, p: P): ScalarValues;
  /**
   * Training logits [B1, B2] of image sets x caption sets, differentiable in the points, scores
   * and scalars. Must equal the evaluation score of every pair (tests/ml_similarity.test.ts).
   */
  logits(tf: TF, x: PointSet, y: PointSet, s: ScalarTensors, p: P, draw: Draw): tfc.Tensor2D;
  scoring: PooledScoring<P> | KernelScoring<P>;
  /** Linear-probe features of image sets, [n, dim]; and how they are made, for the protocol. */
  probeFeatures(sets: PointSets, p: P, v: ScalarValues): { dim: number; data: Float32Array };
  probeDoc: string;
  /** "kme sigma2=0.05", for protocols and logs. */
  describe(p: P, v: ScalarValues): string;
}

/**
 * A similarity as recorded in model and embeddings files: enough to load it again and score
 * exactly as training did. Plain JSON.
 */
export interface SimilarityRecord {
  /** As the experiment named it: a built-in name or preset (`clip_weighted`), or a path. */
  name: string;
  /**
   * Plugins: the module's absolute path, the digest of its code (and its imports, from the
   * engine) and the sha256 of the file itself (checked whenever the module is loaded again).
   */
  module?: { path: string; digest: string; sha256?: string };
  /** The similarity's own params, resolved (defaults and preset applied). */
  params: Record<string, unknown>;
  /** Effective scalar values after training (absent before). */
  values?: ScalarValues;
}
