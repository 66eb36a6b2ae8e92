/**
 * Gradient-safe TensorFlow.js building blocks that several similarities use: a log-sum-exp with
 * a hand-written gradient and the log-softmax of point scores that keeps padding (-Infinity)
 * at exactly zero weight and zero gradient. Built per `tf` namespace (see similarity.ts, why the
 * similarity modules never import TF.js themselves).
 */
import type * as tfc from "@tensorflow/tfjs-core";
import type { TF } from "./similarity.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

const lseCache = new WeakMap<TF, (x: tfc.Tensor) => tfc.Tensor>();

/**
 * Log-sum-exp over the last axis with a hand-written gradient (dy * softmax), cheaper than
 * autodiff through max/sub/exp/sum/log and safe with -Infinity entries (an all -Infinity row
 * gives -Infinity, not NaN).
 */
export function lseLastAxis(tf: TF, x: tfc.Tensor): tfc.Tensor {
  let f = lseCache.get(tf);
  if (f === undefined) {
    f = tf.customGrad((x: Any, save: Any) => {
      const axis = x.rank - 1;
      const m = tf.max(x, axis, true);
      const mSafe = tf.where(tf.isFinite(m), m, tf.zerosLike(m));
      const s = tf.sum(tf.exp(tf.sub(x, mSafe)), axis, true);
      const lseKeep = tf.add(tf.log(s), mSafe);
      save([x, lseKeep]);
      return {
        value: tf.squeeze(lseKeep, [axis]),
        gradFunc: (dy: Any, saved: Any) => {
          const [xs, l] = saved as tfc.Tensor[];
          return tf.mul(tf.expandDims(dy, -1), tf.exp(tf.sub(xs, l)));
        },
      };
    }) as unknown as (x: tfc.Tensor) => tfc.Tensor;
    lseCache.set(tf, f);
  }
  return f(x);
}

/** Our webgpu kernels' names (stages/lib/tf/kernels/block_lse.ts; this module imports no TF.js). */
export const LOG_SOFTMAX_ROWS = "KmeLogSoftmaxRows";
export const LOG_SOFTMAX_ROWS_GRAD = "KmeLogSoftmaxRowsGrad";

/** log alpha = log softmax(scores) over the points axis; -Infinity scores stay -Infinity. */
export function logWeights(tf: TF, scores: tfc.Tensor2D): tfc.Tensor2D {
  if (tf.getKernel(LOG_SOFTMAX_ROWS, tf.getBackend()) !== undefined) {
    // One kernel each way on webgpu; dx = dy - softmax * sum(dy), 0 at padding.
    const f = tf.customGrad((x: Any, save: Any) => {
      const y = tf.engine().runKernel(LOG_SOFTMAX_ROWS, { x }) as tfc.Tensor;
      save([y]);
      return {
        value: y,
        gradFunc: (dy: Any, saved: Any) =>
          tf.engine().runKernel(LOG_SOFTMAX_ROWS_GRAD, { y: saved[0], dy }) as tfc.Tensor,
      };
    });
    return (f as Any)(scores) as tfc.Tensor2D;
  }
  return tf.tidy(() => tf.sub(scores, tf.expandDims(lseLastAxis(tf, scores), 1)) as tfc.Tensor2D);
}

/** Rows scaled to unit L2 norm (the towers' own normalisation, eps on the squared norm). */
export function l2normalize(tf: TF, x: tfc.Tensor, eps = 1e-12): tfc.Tensor {
  return tf.mul(x, tf.rsqrt(tf.maximum(tf.sum(tf.square(x), -1, true), eps)));
}
