/**
 * WPSE, the weighted point set embedding of Uesaka et al., "Weighted Point Set Embedding for
 * Multimodal Contrastive Learning Toward Optimal Similarity Metric" (ICLR 2025), as in their
 * code, sony/wpse (commit c6a965d):
 * - losses.py, `CLIP_WPSE_Loss.comb_feature` and `RFFFeaturesGaussian`;
 * - models.py, `CLIP_WPSE_two_proj` (token weights `ScaledTanh(100)(x @ weight_proj)`, no bias,
 *   weight_proj ~ N(0, 1/width)) and `LogitScaleIdentity` (a linear logit scale);
 * - configs/criterion/wpse_gauss0.5_comb2-1.yaml (sigma 0.5, 1,024 features, comb 0.667/0.333)
 *   and configs/model/wpse_vit_b16.yaml (scale init 14.285714, clamped to [1, 100]).
 *
 * Each input is a point set {(w_t, u_t)}: unit points u_t, raw weights w_t = 100 tanh(r_t / 100)
 * of the point scores r_t (not normalised, may be negative). Its embedding is
 *
 *   f(x) = [ sqrt(0.667) * (1/T) sum_t w_t u_t ,  sqrt(0.333) * (1/T) sum_t w_t z(u_t) ],
 *   z(u) = sqrt(2/D) cos(W u + b),  W_k ~ N(0, I / sigma^2),  b_k ~ U[0, 2 pi),
 *
 * the empirical mean embedding of the point set under a linear kernel plus a Gaussian kernel
 * approximated by D random Fourier features; and s(x, y) = logit_scale * <f(x), f(y)>, no log.
 * The frequencies are drawn anew at every training step (sony samples them in every forward);
 * evaluation uses one fixed set, drawn from `rff_eval_seed` and recorded in every protocol.
 *
 * The one deliberate difference: T counts the input's real points. sony/wpse averages over all
 * 77 text positions, padding included (padding tokens there are learned "null" embeddings with
 * weights of their own); here padding carries no weight, so a caption's embedding does not
 * depend on how far it is padded. Images have no padding and match exactly.
 */
import { z } from "zod";
import type * as tfc from "@tensorflow/tfjs-core";
import { keyedRng } from "../random.ts";
import { maxLogitScale, temperatureInit } from "./params.ts";
import { classCounts } from "./point_sets.ts";
import type { Draw, PointSet, PointSets, Similarity, TF } from "./similarity.ts";

export const WpseParams = z.strictObject({
  temperature_init: temperatureInit,
  max_logit_scale: maxLogitScale,
  min_logit_scale: z.number().positive().default(1).describe(
    "wpse: lower clamp of the (linear) logit scale",
  ),
  linear_weight: z.number().min(0).default(0.667).describe(
    "wpse: weight of the linear-kernel part (sony/wpse comb_weights[0])",
  ),
  rff_weight: z.number().min(0).default(0.333).describe(
    "wpse: weight of the Gaussian-kernel part (sony/wpse comb_weights[1])",
  ),
  rff_features: z.int().min(1).max(65536).default(1024).describe(
    "wpse: number D of random Fourier features",
  ),
  rff_sigma: z.number().positive().default(0.5).describe(
    "wpse: bandwidth sigma of the Gaussian kernel exp(-|u - v|^2 / (2 sigma^2))",
  ),
  weight_tanh_alpha: z.number().positive().default(100).describe(
    "wpse: point weights are alpha * tanh(score / alpha)",
  ),
  rff_eval_seed: z.int().min(0).default(0).describe(
    "wpse: seed of the fixed random features that evaluation uses",
  ),
});
export type WpseParams = z.output<typeof WpseParams>;

/** Random Fourier frequencies W [D, d] (row-major) and phases b [D]. */
export interface Frequencies {
  D: number;
  d: number;
  w: Float32Array;
  b: Float32Array;
}

/** The frequencies of a draw: (seed, step) in training, `rff_eval_seed` in evaluation. */
export function drawFrequencies(p: WpseParams, d: number, draw: Draw): Frequencies {
  const rng = draw.kind === "train"
    ? keyedRng(draw.seed, 0x57, draw.step)
    : keyedRng(p.rff_eval_seed, 0xe7);
  const D = p.rff_features;
  const w = new Float32Array(D * d);
  for (let k = 0; k < w.length; k++) w[k] = rng.normal() / p.rff_sigma;
  const b = new Float32Array(D);
  for (let k = 0; k < D; k++) b[k] = rng.uniform(0, 2 * Math.PI);
  return { D, d, w, b };
}

/** f of a batch of point sets, [B, d + D] (training; differentiable). */
export function embedTf(tf: TF, x: PointSet, f: Frequencies, p: WpseParams): tfc.Tensor2D {
  return tf.tidy(() => {
    const [b, m, d] = x.points.shape;
    if (d !== f.d) throw new Error(`wpse: points have ${d} dims, frequencies ${f.d}`);
    // Non-finite scores are padding (isFinite: comparison ops have no gradient in TF.js, and a
    // where() over isNaN masks computes wrong bits on tfjs-wasm 4.22). A NaN score means a
    // diverged model, whose points are NaN too: the loss is NaN and training stops anyway.
    const real = tf.isFinite(x.weights);
    const zeros = tf.zerosLike(x.weights);
    const a = p.weight_tanh_alpha;
    const w = tf.mul(tf.tanh(tf.div(tf.where(real, x.weights, zeros), a)), a);
    // Not cast(bool): tfjs-webgpu 4.22 keeps a bool's storage through a float cast. At least 1:
    // an all-padding set (the vocabulary never makes one) gets f = 0, not 0/0.
    const count = tf.maximum(tf.sum(tf.where(real, tf.onesLike(x.weights), zeros), 1, true), 1);
    const wm = tf.expandDims(tf.where(real, tf.div(w, count), zeros), 2); // [B, M, 1]
    const lin = tf.sum(tf.mul(x.points, wm), 1);
    const proj = tf.add(
      tf.matMul(tf.reshape(x.points, [b * m, d]), tf.tensor2d(f.w, [f.D, d]), false, true),
      tf.tensor1d(f.b),
    );
    const z = tf.mul(tf.cos(proj), Math.sqrt(2 / f.D));
    const rff = tf.sum(tf.mul(tf.reshape(z, [b, m, f.D]), wm), 1);
    return tf.concat([
      tf.mul(lin, Math.sqrt(p.linear_weight)),
      tf.mul(rff, Math.sqrt(p.rff_weight)),
    ], 1) as tfc.Tensor2D;
  });
}

/** Training logits with given frequencies: scale * f(x) f(y)^T. */
export function logitsWith(
  tf: TF,
  x: PointSet,
  y: PointSet,
  scale: tfc.Scalar,
  f: Frequencies,
  p: WpseParams,
): tfc.Tensor2D {
  return tf.tidy(() =>
    tf.mul(tf.matMul(embedTf(tf, x, f, p), embedTf(tf, y, f, p), false, true), scale)
  );
}

/** Non-finite scores mark padding, as in training. */
const isPadding = (r: number) => !Number.isFinite(r);

/** f of every set, [n, d + D], in f64 (stored as f32). */
export function embedSets(sets: PointSets, f: Frequencies, p: WpseParams): Float32Array {
  const { n, points: M, dim: d, data, logits } = sets;
  if (d !== f.d) throw new RangeError(`wpse: points have ${d} dims, frequencies ${f.d}`);
  const D = f.D, out = new Float32Array(n * (d + D));
  const a = p.weight_tanh_alpha, sl = Math.sqrt(p.linear_weight), sr = Math.sqrt(p.rff_weight);
  const zs = Math.sqrt(2 / D);
  const lin = new Float64Array(d), rff = new Float64Array(D);
  for (let i = 0; i < n; i++) {
    let T = 0;
    for (let m = 0; m < M; m++) if (!isPadding(logits[i * M + m])) T++;
    if (T === 0) throw new Error(`wpse: set ${i} has no real point`);
    lin.fill(0);
    rff.fill(0);
    for (let m = 0; m < M; m++) {
      const r = logits[i * M + m];
      if (isPadding(r)) continue;
      const wt = (a * Math.tanh(r / a)) / T;
      const o = (i * M + m) * d;
      for (let k = 0; k < d; k++) lin[k] += wt * data[o + k];
      for (let q = 0; q < D; q++) {
        let dot = f.b[q];
        const wo = q * d;
        for (let k = 0; k < d; k++) dot += f.w[wo + k] * data[o + k];
        rff[q] += wt * zs * Math.cos(dot);
      }
    }
    const base = i * (d + D);
    for (let k = 0; k < d; k++) out[base + k] = sl * lin[k];
    for (let q = 0; q < D; q++) out[base + d + q] = sr * rff[q];
  }
  return out;
}

export const wpse: Similarity<WpseParams> = {
  name: "wpse",
  summary: "sony/wpse: linear scale times the inner product of weighted point set embeddings " +
    "(linear kernel + Gaussian random Fourier features)",
  params: WpseParams,
  check(p) {
    const init = 1 / p.temperature_init;
    const out: [string, string][] = [];
    if (!(p.min_logit_scale <= init && init <= p.max_logit_scale)) {
      out.push([
        "temperature_init",
        "need min_logit_scale <= 1/temperature_init <= max_logit_scale",
      ]);
    }
    if (p.linear_weight + p.rff_weight <= 0) {
      out.push(["rff_weight", "linear_weight + rff_weight must be positive"]);
    }
    return out;
  },
  head: () => ({ points: "sets", scoreInit: "normal" }),
  scalars: (p) => [{
    name: "logit_scale",
    init: 1 / p.temperature_init,
    min: p.min_logit_scale,
    max: p.max_logit_scale,
    learn: true,
  }],
  values: (raw, p) => ({
    logit_scale: Math.min(Math.max(raw.logit_scale, p.min_logit_scale), p.max_logit_scale),
  }),
  logits(tf, x, y, s, p, draw) {
    return logitsWith(tf, x, y, s.logit_scale, drawFrequencies(p, x.points.shape[2], draw), p);
  },
  scoring: {
    kind: "pooled",
    embed: (sets, p) => {
      const f = drawFrequencies(p, sets.dim, { kind: "eval" });
      return { dim: sets.dim + f.D, data: embedSets(sets, f, p) };
    },
    scale: (_p, v) => v.logit_scale,
    poolPrompts: meanOfPrompts,
    promptPooling: "the mean of the prompts' embeddings f (sony/wpse eval_zeroshot.py)",
  },
  probeFeatures: (sets, p) => {
    const f = drawFrequencies(p, sets.dim, { kind: "eval" });
    return { dim: sets.dim + f.D, data: embedSets(sets, f, p) };
  },
  probeDoc: "the weighted point set embedding f(x) (d + D numbers, the fixed evaluation " +
    "frequencies), unscaled",
  describe: (p, v) =>
    `wpse logit_scale=${v.logit_scale} D=${p.rff_features} sigma=${p.rff_sigma} ` +
    `weights=${p.linear_weight}/${p.rff_weight} tanh_alpha=${p.weight_tanh_alpha} ` +
    `eval_seed=${p.rff_eval_seed}`,
};

/** Class vector = the mean of its prompts' vectors, [nClasses, dim]. */
function meanOfPrompts(
  vectors: Float32Array,
  dim: number,
  promptClass: Int32Array,
  nClasses: number,
): Float32Array {
  const counts = classCounts(promptClass, nClasses);
  const acc = new Float64Array(nClasses * dim);
  promptClass.forEach((c, t) => {
    for (let k = 0; k < dim; k++) acc[c * dim + k] += vectors[t * dim + k];
  });
  return Float32Array.from(acc, (x, i) => x / counts[Math.floor(i / dim)]);
}
