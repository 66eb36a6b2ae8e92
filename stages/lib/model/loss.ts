/** The contrastive objective: symmetric InfoNCE over a batch's logit matrix. */
import * as tf from "@tensorflow/tfjs-core";
import { fusedOps, infoNceFused } from "./gpu_ops.ts";

/**
 * Symmetric InfoNCE: mean of the image->text and text->image cross-entropies of the
 * [B, B] logit matrix whose diagonal holds the positive pairs (fused on webgpu).
 */
export function infoNce(logits: tf.Tensor2D): tf.Scalar {
  if (fusedOps() && logits.shape[0] === logits.shape[1]) return infoNceFused(logits);
  return tf.tidy(() => {
    const [b, b2] = logits.shape;
    if (b !== b2) throw new Error(`InfoNCE needs a square logit matrix, got ${logits.shape}`);
    const eye = tf.eye(b);
    const rows = tf.sum(tf.mul(tf.logSoftmax(logits, 1), eye));
    const cols = tf.sum(tf.mul(tf.logSoftmax(tf.transpose(logits), 1), eye));
    return tf.div(tf.add(rows, cols), -2 * b) as tf.Scalar;
  });
}
