/**
 * CLIP: the cosine of two embeddings times a learned logit scale (Radford et al. 2021; the
 * scale parametrised and clamped as open_clip does: exp(t), t <= log 100).
 *
 *   s(x, y) = min(exp(t), max_logit_scale) * <u, v>,   u, v unit vectors.
 *
 * `pool` says where u comes from:
 * - "mean" (CLIP itself): the towers mean-pool their tokens, project and normalise; one point.
 * - "weighted" (a control for KME): the towers give the same weighted point sets as KME, and
 *   u = normalise(sum_i alpha_i u_i), alpha = softmax(point scores), KME's learned weights.
 *   Any gain of KME over this control comes from the kernel, not from weighting several points.
 */
import { z } from "zod";
import { maxLogitScale, temperatureInit } from "./params.ts";
import { classCounts, normalizeRows, softmaxWeightedMeans } from "./point_sets.ts";
import type { PointSet, PointSets, ScalarValues, Similarity, TF } from "./similarity.ts";
import { l2normalize, logWeights } from "./tf_ops.ts";

export const ClipParams = z.strictObject({
  pool: z.enum(["mean", "weighted"]).default("mean").describe(
    "clip: mean = CLIP's mean-pooled embedding; weighted = softmax-weighted mean of the point " +
      "set with KME's learned weights (the control)",
  ),
  temperature_init: temperatureInit,
  max_logit_scale: maxLogitScale,
});
export type ClipParams = z.output<typeof ClipParams>;

/** u per set: the single point (pool "mean"), or the unit softmax-weighted mean. */
function embedTf(tf: TF, x: PointSet, p: ClipParams) {
  const [b, m, d] = x.points.shape;
  if (p.pool === "mean") {
    if (m !== 1) throw new Error(`clip (pool mean) needs one point per input, got ${m}`);
    return tf.reshape(x.points, [b, d]);
  }
  const alpha = tf.exp(logWeights(tf, x.weights)); // [B, M]; padding 0
  const mean = tf.sum(tf.mul(x.points, tf.expandDims(alpha, 2)), 1);
  return l2normalize(tf, mean);
}

function embedSets(sets: PointSets, p: ClipParams): Float32Array {
  if (p.pool === "mean") {
    if (sets.points !== 1) {
      throw new RangeError(`clip (pool mean) needs one point per input, got ${sets.points}`);
    }
    return sets.data; // the embedding itself, bit for bit
  }
  return normalizeRows(softmaxWeightedMeans(sets), sets.dim, "clip weighted mean");
}

const scaleOf = (v: ScalarValues) => v.logit_scale;

export const clip: Similarity<ClipParams> = {
  name: "clip",
  summary: "cosine of (mean-pooled or softmax-weighted) embeddings times a learned logit scale",
  params: ClipParams,
  head: (p) => p.pool === "mean" ? { points: "mean" } : { points: "sets", scoreInit: "zero" },
  scalars: (p) => [{
    name: "logit_scale",
    init: Math.log(1 / p.temperature_init),
    min: -Infinity,
    max: Math.log(p.max_logit_scale),
    learn: true,
  }],
  values: (raw, p) => ({ logit_scale: Math.min(Math.exp(raw.logit_scale), p.max_logit_scale) }),
  logits(tf, x, y, s, p) {
    return tf.tidy(() => {
      const scale = tf.exp(tf.minimum(s.logit_scale, Math.log(p.max_logit_scale)));
      return tf.mul(tf.matMul(embedTf(tf, x, p), embedTf(tf, y, p), false, true), scale);
    });
  },
  scoring: {
    kind: "pooled",
    embed: (sets, p) => ({ dim: sets.dim, data: embedSets(sets, p) }),
    scale: (_p, v) => scaleOf(v),
    poolPrompts: classEmbeddings,
    promptPooling: "normalise(mean of the normalised prompt embeddings), as CLIP does",
  },
  probeFeatures: (sets, p) => ({ dim: sets.dim, data: embedSets(sets, p) }),
  probeDoc: "the unit embedding u (pool mean: CLIP's; pool weighted: the normalised " +
    "softmax-weighted mean of the points)",
  describe: (p, v) =>
    p.pool === "mean"
      ? `clip logit_scale=${v.logit_scale}`
      : `clip pool=weighted logit_scale=${v.logit_scale}`,
};

/** CLIP's prompt ensemble: class = normalise(mean_t normalise(e_t)), [nClasses, dim]. */
export function classEmbeddings(
  prompts: Float32Array,
  dim: number,
  promptClass: Int32Array,
  nClasses: number,
): Float32Array {
  if (prompts.length !== promptClass.length * dim) {
    throw new RangeError(
      `prompts has ${prompts.length} values, expected ${promptClass.length}x${dim}`,
    );
  }
  const counts = classCounts(promptClass, nClasses);
  const acc = new Float64Array(nClasses * dim);
  for (let t = 0; t < promptClass.length; t++) {
    let s = 0;
    for (let k = 0; k < dim; k++) s += prompts[t * dim + k] ** 2;
    const inv = 1 / Math.sqrt(s);
    if (!Number.isFinite(inv)) throw new Error(`prompt ${t} has zero norm`);
    const o = promptClass[t] * dim;
    for (let k = 0; k < dim; k++) acc[o + k] += prompts[t * dim + k] * inv;
  }
  const out = new Float32Array(nClasses * dim);
  for (let c = 0; c < nClasses; c++) {
    let s = 0;
    for (let k = 0; k < dim; k++) s += (acc[c * dim + k] / counts[c]) ** 2;
    const inv = 1 / Math.sqrt(s) / counts[c];
    for (let k = 0; k < dim; k++) out[c * dim + k] = acc[c * dim + k] * inv;
  }
  return out;
}
