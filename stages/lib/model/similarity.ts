/**
 * Similarity functions between weighted point sets, as pure tensor functions
 * (point sets, scalar parameters) -> logits [B1, B2]. Used by training and by evaluation
 * (which calls them on chunks of the candidate set).
 *
 * A weighted point set is `points` [B, M, d] (rows L2-normalised) with weight logits
 * `weights` [B, M]; padding points have weight logit -Infinity.
 *
 * - clip: s = min(exp(t), maxScale) * <u, v> (one point per input).
 * - kme:  s = log sum_ij alpha_i beta_j exp((<u_i, v_j> - 1) / sigma^2)
 *           = LSE_ij(<u_i, v_j> / sigma^2 + log alpha_i + log beta_j) - 1 / sigma^2,
 *         alpha = softmax(a), beta = softmax(b), sigma^2 = exp(rho) clamped to [min, max].
 * - wpse: s = min(exp(t), maxScale) * sum_ij alpha_i beta_j exp((<u_i, v_j> - 1) / sigma^2)
 *         (the kernel mean embedding inner product itself, linearly scaled; see docs/model.md).
 */
import * as tf from "@tensorflow/tfjs-core";

export type SimilarityKind = "clip" | "kme" | "wpse";

export interface PointSet {
  /** [B, M, d], L2-normalised along d. */
  points: tf.Tensor3D;
  /** [B, M] weight logits; -Infinity marks padding. */
  weights: tf.Tensor2D;
}

/** tf.tidy for functions returning a point set (tfjs' typings want an index signature). */
export function tidyPointSet(fn: () => PointSet): PointSet {
  return tf.tidy(fn as unknown as () => tf.TensorContainer) as unknown as PointSet;
}

/** Scalar parameters of the similarity (tensors so gradients flow during training). */
export interface SimilarityParams {
  /** log of the CLIP logit scale (t); clip and wpse. */
  logScale?: tf.Scalar;
  /** Upper clamp of exp(t). */
  maxScale?: number;
  /** log sigma^2 (rho); kme and wpse. */
  logSigma2?: tf.Scalar;
  sigma2Min?: number;
  sigma2Max?: number;
}

export const DEFAULT_MAX_SCALE = 100;
export const DEFAULT_SIGMA2_MIN = 1e-2;
export const DEFAULT_SIGMA2_MAX = 10;

/** exp(t) clamped to maxScale (as a tensor). */
export function logitScale(logScale: tf.Scalar, maxScale = DEFAULT_MAX_SCALE): tf.Scalar {
  return tf.tidy(() => tf.exp(tf.minimum(logScale, Math.log(maxScale))));
}

/** 1 / sigma^2 with sigma^2 = exp(rho) clamped to [min, max] (as a tensor). */
export function inverseSigma2(
  logSigma2: tf.Scalar,
  min = DEFAULT_SIGMA2_MIN,
  max = DEFAULT_SIGMA2_MAX,
): tf.Scalar {
  return tf.tidy(() => tf.exp(tf.neg(tf.clipByValue(logSigma2, Math.log(min), Math.log(max)))));
}

/**
 * CLIP logits from single embeddings: u [B1, d], v [B2, d] (unit rows).
 * Point sets with one point each are accepted too.
 */
export function clipLogits(
  u: tf.Tensor2D | PointSet,
  v: tf.Tensor2D | PointSet,
  logScale: tf.Scalar,
  maxScale = DEFAULT_MAX_SCALE,
): tf.Tensor2D {
  return tf.tidy(() => {
    const a = asSingle(u);
    const b = asSingle(v);
    return tf.mul(tf.matMul(a, b, false, true), logitScale(logScale, maxScale)) as tf.Tensor2D;
  });
}

function asSingle(x: tf.Tensor2D | PointSet): tf.Tensor2D {
  if (x instanceof tf.Tensor) return x;
  const [b, m, d] = x.points.shape;
  if (m !== 1) throw new Error(`clip similarity needs one point per input, got ${m}`);
  return tf.reshape(x.points, [b, d]);
}

/**
 * Log-sum-exp over the last axis with a hand-written gradient (dy * softmax), which is cheaper
 * than autodiff through max/sub/exp/sum/log and safe with -Infinity entries.
 */
export const lseLastAxis: (x: tf.Tensor) => tf.Tensor = tf.customGrad(
  // deno-lint-ignore no-explicit-any
  (x: any, save: any) => {
    const axis = x.rank - 1;
    const m = tf.max(x, axis, true);
    const mSafe = tf.where(tf.isFinite(m), m, tf.zerosLike(m)); // all -inf rows -> -inf result
    const s = tf.sum(tf.exp(tf.sub(x, mSafe)), axis, true);
    const lseKeep = tf.add(tf.log(s), mSafe);
    save([x, lseKeep]);
    return {
      value: tf.squeeze(lseKeep, [axis]),
      // deno-lint-ignore no-explicit-any
      gradFunc: (dy: any, saved: any) => {
        const [xs, l] = saved as tf.Tensor[];
        return tf.mul(tf.expandDims(dy, -1), tf.exp(tf.sub(xs, l)));
      },
    };
  },
) as unknown as (x: tf.Tensor) => tf.Tensor;

/** log alpha = log softmax(a) over the points axis; -Infinity logits stay -Infinity. */
export function logWeights(weights: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.sub(weights, tf.expandDims(lseLastAxis(weights), 1)) as tf.Tensor2D);
}

/**
 * log sum_ij alpha_i beta_j exp(<u_i, v_j> / sigma^2) for all pairs, as [B1, B2]
 * (the KME logit without the -1/sigma^2 shift). One matmul [B1*M, d+2] x [d+2, B2*N]: the
 * scale and both log-weights ride along as extra columns, u' = [u / sigma^2, log alpha, 1] and
 * v' = [v, 1, log beta], so that u'_i . v'_j = <u_i, v_j> / sigma^2 + log alpha_i + log beta_j
 * and the matmul's gradient also yields the row and column sums of dX that the log-weights
 * need (no pass over the B1*M*B2*N entries for them).
 */
function kmeLogKernelSum(x: PointSet, y: PointSet, invSigma2: tf.Scalar): tf.Tensor2D {
  return tf.tidy(() => {
    const [b1, m, d] = x.points.shape;
    const [b2, n, d2] = y.points.shape;
    if (d !== d2) throw new Error(`point dimensions differ: ${d} vs ${d2}`);
    const u = tf.mul(tf.reshape(x.points, [b1 * m, d]), invSigma2);
    const v = tf.reshape(y.points, [b2 * n, d]);
    const la = tf.reshape(logWeights(x.weights), [b1 * m, 1]);
    const lb = tf.reshape(logWeights(y.weights), [b2 * n, 1]);
    const uAug = tf.concat([u, la, tf.ones([b1 * m, 1])], 1) as tf.Tensor2D;
    const vAug = tf.concat([v, tf.ones([b2 * n, 1]), lb], 1) as tf.Tensor2D;
    return kmeBlockLse(uAug, vAug, [b1, m, b2, n]);
  });
}

/**
 * The fused KME block log-sum-exp: with X = u v^T [B1*M, B2*N], returns for every pair (i, j)
 * the LSE of X over block (i, j) ([M, N]) as [B1, B2]. Hand-written gradient: with P the
 * blockwise softmax of X (kept from the forward pass, so no second exp over the B1*M*B2*N
 * entries), dX = dy[i, j] * P, du = dX v, dv = dX^T u. Padded points (log weight -inf) get
 * exactly zero gradient. (Columns of du/dv that belong to the constant columns of u', v' may
 * hold NaN = 0 * -inf; they are discarded by the slices of the concat's gradient.)
 */
function kmeBlockLse(
  u: tf.Tensor2D,
  v: tf.Tensor2D,
  dims: [number, number, number, number],
): tf.Tensor2D {
  const [b1, m, b2, n] = dims;
  const f = tf.customGrad(
    // deno-lint-ignore no-explicit-any
    (u: any, v: any, save: any) => {
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
        // deno-lint-ignore no-explicit-any
        gradFunc: (dy: any, saved: any) => {
          const [ps, us, vs] = saved as tf.Tensor[];
          const dx3 = tf.mul(ps, tf.reshape(dy, [b1, b2, 1]));
          const dx = tf.reshape(
            tf.transpose(tf.reshape(dx3, [b1, b2, m, n]), [0, 2, 1, 3]),
            [b1 * m, b2 * n],
          );
          return [tf.matMul(dx, vs), tf.matMul(dx, us, true, false)];
        },
      };
    },
  );
  // deno-lint-ignore no-explicit-any
  return (f as any)(u, v) as tf.Tensor2D;
}

/** KME-CLIP logits [B1, B2] (log of the Gaussian-kernel mean embedding inner product). */
export function kmeLogits(
  x: PointSet,
  y: PointSet,
  logSigma2: tf.Scalar,
  sigma2Min = DEFAULT_SIGMA2_MIN,
  sigma2Max = DEFAULT_SIGMA2_MAX,
): tf.Tensor2D {
  return tf.tidy(() => {
    const inv = inverseSigma2(logSigma2, sigma2Min, sigma2Max);
    return tf.sub(kmeLogKernelSum(x, y, inv), inv) as tf.Tensor2D;
  });
}

/** WPSE logits [B1, B2]: scale * (kernel mean embedding inner product), in (0, scale]. */
export function wpseLogits(
  x: PointSet,
  y: PointSet,
  logScale: tf.Scalar,
  logSigma2: tf.Scalar,
  maxScale = DEFAULT_MAX_SCALE,
  sigma2Min = DEFAULT_SIGMA2_MIN,
  sigma2Max = DEFAULT_SIGMA2_MAX,
): tf.Tensor2D {
  return tf.tidy(() =>
    tf.mul(
      tf.exp(kmeLogits(x, y, logSigma2, sigma2Min, sigma2Max)),
      logitScale(logScale, maxScale),
    ) as tf.Tensor2D
  );
}

/** Dispatches on `kind`; all scalar parameters the kind needs must be present in `p`. */
export function similarityLogits(
  kind: SimilarityKind,
  x: PointSet,
  y: PointSet,
  p: SimilarityParams,
): tf.Tensor2D {
  const need = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`${kind} similarity needs ${what}`);
    return v;
  };
  switch (kind) {
    case "clip":
      return clipLogits(x, y, need(p.logScale, "logScale"), p.maxScale);
    case "kme":
      return kmeLogits(x, y, need(p.logSigma2, "logSigma2"), p.sigma2Min, p.sigma2Max);
    case "wpse":
      return wpseLogits(
        x,
        y,
        need(p.logScale, "logScale"),
        need(p.logSigma2, "logSigma2"),
        p.maxScale,
        p.sigma2Min,
        p.sigma2Max,
      );
  }
}

/**
 * Symmetric InfoNCE: mean of the image->text and text->image cross-entropies of the
 * [B, B] logit matrix whose diagonal holds the positive pairs.
 */
export function infoNce(logits: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const [b, b2] = logits.shape;
    if (b !== b2) throw new Error(`InfoNCE needs a square logit matrix, got ${logits.shape}`);
    const eye = tf.eye(b);
    const rows = tf.sum(tf.mul(tf.logSoftmax(logits, 1), eye));
    const cols = tf.sum(tf.mul(tf.logSoftmax(tf.transpose(logits), 1), eye));
    return tf.div(tf.add(rows, cols), -2 * b) as tf.Scalar;
  });
}
