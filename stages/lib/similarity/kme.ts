/**
 * KME-CLIP (arXiv 2510.15508): the log of the inner product of two kernel mean embeddings in
 * the RKHS of a Gaussian kernel on the unit sphere.
 *
 * An input is a weighted point set {(alpha_i, u_i)}: unit points u_i (one per token, or per
 * learned query) with alpha = softmax(point scores). Its kernel mean embedding is
 * mu_x = sum_i alpha_i k(u_i, .), and with k(u, v) = exp((<u, v> - 1) / sigma^2) (the Gaussian
 * kernel exp(-|u - v|^2 / (2 sigma^2)) for unit vectors)
 *
 *   s(x, y) = log <mu_x, mu_y> = log sum_ij alpha_i beta_j exp((<u_i, v_j> - 1) / sigma^2)
 *           = LSE_ij(<u_i, v_j> / sigma^2 + log alpha_i + log beta_j) - 1 / sigma^2.
 *
 * The LSE form is the one computed everywhere (training here, evaluation in the shared kernel
 * engines through `finish`): it never underflows, where the direct double sum does once
 * sigma^2 is small (exp(-2 / 0.01) = 0 in f32).
 *
 * Proposition 2 of the paper: with one point per input (M = N = 1, alpha = beta = 1),
 * s = (<u, v> - 1) / sigma^2, which is CLIP's logit with scale 1 / sigma^2, shifted by a
 * constant that softmax cross-entropy ignores. `one_point: true` trains exactly that (the towers
 * then give CLIP's mean-pooled embedding): the control that must match CLIP up to the scale.
 *
 * Bandwidth: sigma^2 = exp(rho), rho learned (unless learn_sigma2 is false) and clamped to
 * [log sigma2_min, log sigma2_max] in the forward pass and after every optimiser step, as
 * open_clip clamps its logit scale. 1 / sigma^2 plays the role of CLIP's logit scale.
 */
import { z } from "zod";
import type * as tfc from "@tensorflow/tfjs-core";
import { softmaxWeightedMeans } from "./point_sets.ts";
import type { PointSet, Similarity, TF } from "./similarity.ts";
import { logWeights } from "./tf_ops.ts";

export const KmeParams = z.strictObject({
  one_point: z.boolean().default(false).describe(
    "kme: one point per input (CLIP's mean-pooled embedding): Proposition 2's control",
  ),
  sigma2_init: z.number().positive().default(0.07).describe("kme: initial bandwidth sigma^2"),
  sigma2_min: z.number().positive().default(0.01).describe("kme: lower clamp of sigma^2"),
  sigma2_max: z.number().positive().default(10).describe("kme: upper clamp of sigma^2"),
  learn_sigma2: z.boolean().default(true).describe("kme: learn sigma^2 (else fixed at init)"),
});
export type KmeParams = z.output<typeof KmeParams>;

/** Our webgpu kernels' names (stages/lib/tf/kernels/block_lse.ts; this module imports no TF.js). */
export const BLOCK_LSE = "KmeBlockLse";
export const BLOCK_LSE_GRAD = "KmeBlockLseGrad";

// deno-lint-ignore no-explicit-any
type Any = any;

/**
 * The fused block log-sum-exp: with X = u v^T [B1*M, B2*N], the LSE of X over each pair's block
 * (i, j) ([M, N]) as [B1, B2]. Hand-written gradient: with P the blockwise softmax of X (kept
 * from the forward pass, so no second exp over the B1*M*B2*N entries), dX = dy[i, j] * P,
 * du = dX v, dv = dX^T u. Padded points (log weight -inf) get exactly zero gradient. (Columns of
 * du / dv that belong to the constant columns of u', v' may hold NaN = 0 * -inf; the slices of
 * the concat's gradient discard them.)
 */
function blockLse(
  tf: TF,
  u: tfc.Tensor2D,
  v: tfc.Tensor2D,
  dims: [number, number, number, number],
): tfc.Tensor2D {
  const [b1, m, b2, n] = dims;
  if (tf.getKernel(BLOCK_LSE, tf.getBackend()) !== undefined) {
    // One kernel each way on webgpu (stages/lib/tf/kernels/block_lse.ts); same function.
    const attrs = { m, n } as Any;
    const fused = tf.customGrad((u: Any, v: Any, save: Any) => {
      const xx = tf.matMul(u, v, false, true);
      const lse = tf.engine().runKernel(BLOCK_LSE, { x: xx }, attrs) as tfc.Tensor2D;
      save([u, v, xx, lse]);
      return {
        value: lse,
        gradFunc: (dy: Any, saved: Any) => {
          const [us, vs, xs, ls] = saved as tfc.Tensor[];
          const dx = tf.engine().runKernel(BLOCK_LSE_GRAD, { x: xs, lse: ls, dy }, attrs);
          return [tf.matMul(dx as Any, vs), tf.matMul(dx as Any, us, true, false)];
        },
      };
    });
    return (fused as Any)(u, v) as tfc.Tensor2D;
  }
  const f = tf.customGrad((u: Any, v: Any, save: Any) => {
    const xx = tf.matMul(u, v, false, true);
    // [B1, M, B2, N] -> [B1, B2, M*N]
    const x3 = tf.reshape(tf.transpose(tf.reshape(xx, [b1, m, b2, n]), [0, 2, 1, 3]), [
      b1,
      b2,
      m * n,
    ]);
    const mx = tf.max(x3, -1, true);
    const mSafe = tf.where(tf.isFinite(mx), mx, tf.zerosLike(mx)); // all -inf -> -inf
    const e = tf.exp(tf.sub(x3, mSafe));
    const sum = tf.sum(e, -1, true);
    const p = tf.div(e, sum);
    save([p, u, v]);
    return {
      value: tf.reshape(tf.add(tf.log(sum), mSafe), [b1, b2]),
      gradFunc: (dy: Any, saved: Any) => {
        const [ps, us, vs] = saved as tfc.Tensor[];
        const dx3 = tf.mul(ps, tf.reshape(dy, [b1, b2, 1]));
        const dx = tf.reshape(
          tf.transpose(tf.reshape(dx3, [b1, b2, m, n]), [0, 2, 1, 3]),
          [b1 * m, b2 * n],
        );
        return [tf.matMul(dx, vs), tf.matMul(dx, us, true, false)];
      },
    };
  });
  return (f as Any)(u, v) as tfc.Tensor2D;
}

/**
 * LSE_ij(<u_i, v_j> / sigma^2 + log alpha_i + log beta_j) for all pairs, [B1, B2]. One matmul
 * [B1*M, d+2] x [d+2, B2*N]: the scale and both log-weights ride along as extra columns,
 * u' = [u / sigma^2, log alpha, 1] and v' = [v, 1, log beta], so u'_i . v'_j is the LSE's
 * argument, and the matmul's gradient also yields the row and column sums of dX that the
 * log-weights need (no pass over the B1*M*B2*N entries for them).
 */
function pairLse(tf: TF, x: PointSet, y: PointSet, invSigma2: tfc.Scalar): tfc.Tensor2D {
  return tf.tidy(() => {
    const [b1, m, d] = x.points.shape;
    const [b2, n, d2] = y.points.shape;
    if (d !== d2) throw new Error(`point dimensions differ: ${d} vs ${d2}`);
    const u = tf.mul(tf.reshape(x.points, [b1 * m, d]), invSigma2);
    const v = tf.reshape(y.points, [b2 * n, d]);
    const la = tf.reshape(logWeights(tf, x.weights), [b1 * m, 1]);
    const lb = tf.reshape(logWeights(tf, y.weights), [b2 * n, 1]);
    // fill, not ones: ones is built on the host (an upload per step on webgpu); same values.
    const uAug = tf.concat([u, la, tf.fill([b1 * m, 1], 1)], 1) as tfc.Tensor2D;
    const vAug = tf.concat([v, tf.fill([b2 * n, 1], 1), lb], 1) as tfc.Tensor2D;
    return blockLse(tf, uAug, vAug, [b1, m, b2, n]);
  });
}

export const kme: Similarity<KmeParams> = {
  name: "kme",
  summary: "log of the Gaussian kernel mean embedding inner product of two weighted point sets",
  params: KmeParams,
  check: (p) =>
    p.sigma2_min <= p.sigma2_init && p.sigma2_init <= p.sigma2_max
      ? []
      : [["sigma2_init", "need sigma2_min <= sigma2_init <= sigma2_max"]],
  head: (p) => p.one_point ? { points: "mean" } : { points: "sets", scoreInit: "zero" },
  scalars: (p) => [{
    name: "log_sigma2",
    init: Math.log(p.sigma2_init),
    min: Math.log(p.sigma2_min),
    max: Math.log(p.sigma2_max),
    learn: p.learn_sigma2,
  }],
  values: (raw, p) => ({
    sigma2: Math.min(Math.max(Math.exp(raw.log_sigma2), p.sigma2_min), p.sigma2_max),
  }),
  logits(tf, x, y, s, p) {
    return tf.tidy(() => {
      const inv = tf.exp(
        tf.neg(tf.clipByValue(s.log_sigma2, Math.log(p.sigma2_min), Math.log(p.sigma2_max))),
      );
      return tf.sub(pairLse(tf, x, y, inv as tfc.Scalar), inv) as tfc.Tensor2D;
    });
  },
  scoring: {
    kind: "kernel",
    invSigma2: (_p, v) => 1 / v.sigma2,
    finish: (lse, _p, v) => lse - 1 / v.sigma2,
  },
  probeFeatures: (sets) => ({ dim: sets.dim, data: softmaxWeightedMeans(sets) }),
  probeDoc: "sum_i alpha_i u_i with alpha = softmax(point scores), padding excluded (not " +
    "re-normalised)",
  describe: (p, v) => `kme${p.one_point ? " one_point" : ""} sigma2=${v.sigma2}`,
};
