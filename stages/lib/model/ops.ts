/**
 * Fused building blocks with hand-written gradients. Each replaces a chain of small ops whose
 * autodiff costs many kernels (and, on wasm, some slow ones); see docs/model.md, "Performance".
 * tests/ml_ops.test.ts checks every op against the plain autodiff composite on cpu.
 *
 * - `layerNorm(x, g, b)` over the last axis of x [N, C]: the same forward ops as
 *   `moments`-based code (bit-identical values), and the closed-form backward
 *   dx = rstd * (gx - mean(gx) - xhat * mean(gx * xhat)), gx = dy * g (10 kernels instead of
 *   ~30).
 * - `gelu(x)`: the tanh approximation written as x * sigmoid(2 z), z = sqrt(2/pi) (x + 0.044715
 *   x^3), which is the same function (0.5 (1 + tanh z) = sigmoid(2 z)); the wasm `Tanh` kernel
 *   takes 19 ms per million elements, `Sigmoid` 1.1 ms. Closed-form gradient.
 * Bias gradients (`sum(dy, 0)`) need no fused op since the wasm `Sum` patch
 * (tf/wasm_patches/reductions.ts).
 */
import * as tf from "@tensorflow/tfjs-core";
import { denseFused, fusedOps, geluFused, layerNormFused } from "./gpu_ops.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

/** Column sums of a 2-D tensor [N, C] -> [C] (a bias gradient). */
export function sumRows(x: tf.Tensor): tf.Tensor1D {
  return tf.sum(x, 0) as tf.Tensor1D;
}

/** y = x w (+ b): a linear layer on 2-D activations (fused with its bias on webgpu). */
export function dense(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor2D {
  if (b !== undefined && fusedOps()) return denseFused(x, w, b);
  const y = tf.matMul(x, w) as tf.Tensor2D;
  return b === undefined ? y : tf.add(y, b);
}

const LN_EPS = 1e-5;

/** LayerNorm over the last axis of x [N, C] with gain g [C] and bias b [C] (eps 1e-5). */
export function layerNorm(x: tf.Tensor2D, g: tf.Tensor1D, b: tf.Tensor1D): tf.Tensor2D {
  return fusedOps() ? layerNormFused(x, g, b) : layerNormComposite(x, g, b);
}

const layerNormComposite: (x: tf.Tensor2D, g: tf.Tensor1D, b: tf.Tensor1D) => tf.Tensor2D = tf
  .customGrad(
    (x: Any, g: Any, b: Any, save: Any) => {
      const mean = tf.mean(x, -1, true);
      const xc = tf.sub(x, mean);
      const variance = tf.mean(tf.square(xc), -1, true);
      const rstd = tf.rsqrt(tf.add(variance, LN_EPS));
      const xhat = tf.mul(xc, rstd);
      save([xhat, rstd, g]);
      return {
        value: tf.add(tf.mul(xhat, g), b),
        gradFunc: (dy: Any, saved: Any) => {
          const [xh, rs, gain] = saved as tf.Tensor[];
          const gx = tf.mul(dy, gain);
          const m1 = tf.mean(gx, -1, true);
          const m2 = tf.mean(tf.mul(gx, xh), -1, true);
          const dx = tf.mul(tf.sub(tf.sub(gx, m1), tf.mul(xh, m2)), rs);
          return [dx, sumRows(tf.mul(dy, xh)), sumRows(dy)];
        },
      };
    },
  ) as unknown as (x: tf.Tensor2D, g: tf.Tensor1D, b: tf.Tensor1D) => tf.Tensor2D;

const GELU_C1 = 2 * Math.sqrt(2 / Math.PI); // 2 z = x (C1 + C2 x^2)
const GELU_C2 = GELU_C1 * 0.044715;

/** GELU, tanh approximation, as x * sigmoid(2 z) with a closed-form gradient. */
export function gelu(x: tf.Tensor): tf.Tensor {
  return fusedOps() ? geluFused(x) : geluComposite(x);
}

const geluComposite: (x: tf.Tensor) => tf.Tensor = tf.customGrad((x: Any, save: Any) => {
  const s = tf.sigmoid(tf.mul(x, tf.add(tf.mul(tf.square(x), GELU_C2), GELU_C1)));
  save([x, s]);
  return {
    value: tf.mul(x, s),
    gradFunc: (dy: Any, saved: Any) => {
      const [xs, ss] = saved as tf.Tensor[];
      // d/dx [x s(u)] = s + x s (1 - s) u',  u' = C1 + 3 C2 x^2
      const du = tf.add(tf.mul(tf.square(xs), 3 * GELU_C2), GELU_C1);
      const ds = tf.mul(tf.mul(ss, tf.sub(1, ss)), tf.mul(xs, du));
      return [tf.mul(dy, tf.add(ss, ds))];
    },
  };
}) as unknown as (x: tf.Tensor) => tf.Tensor;
