/**
 * The model's building blocks on our fused webgpu kernels (stages/lib/tf/kernels/), each a
 * `tf.customGrad` whose forward and backward are one or a few dispatches. `fusedOps()` says
 * whether the active backend has them; the model uses the composites of stock ops (ops.ts)
 * elsewhere, so cpu and wasm results are unchanged by anything here. tests/ml_webgpu_ops.test.ts
 * checks every op and gradient against the composite on cpu.
 */
import * as tf from "@tensorflow/tfjs-core";
import { callKernel, hasKernel } from "../tf/kernels/define.ts";
import { COL_SUM, COL_SUM_PARTIAL, SINGLE_PASS_ROWS } from "../tf/kernels/col_sum.ts";
import { LAYER_NORM, LAYER_NORM_DG, LAYER_NORM_DX, ROW_STATS } from "../tf/kernels/layer_norm.ts";
import { GELU, GELU_GRAD } from "../tf/kernels/gelu.ts";
import { L2_NORMALIZE, L2_NORMALIZE_GRAD } from "../tf/kernels/l2_normalize.ts";
import {
  MEAN_POOL,
  MEAN_POOL_GRAD,
  MEAN_POOL_MASKED,
  MEAN_POOL_MASKED_GRAD,
} from "../tf/kernels/mean_pool.ts";
import { INFO_NCE_GRAD, INFO_NCE_LOSS, INFO_NCE_LSE } from "../tf/kernels/info_nce.ts";
import { TOKEN_MASK } from "../tf/kernels/token_mask.ts";
import { EMBEDDING_GRAD, TOKEN_CHAIN } from "../tf/kernels/embedding_grad.ts";
import {
  ATTENTION,
  ATTENTION_BWD_KV,
  ATTENTION_BWD_Q,
  MAX_HEAD_DIM,
  MAX_TOKENS,
} from "../tf/kernels/attention.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

/** Whether the active backend runs the fused ops (webgpu with our kernels registered). */
export function fusedOps(): boolean {
  return hasKernel(LAYER_NORM);
}

/** Token ids [B, L] (PAD = 0) -> [B, L] float: 1 for a real token, 0 for padding. */
export function tokenMask(ids: tf.Tensor2D): tf.Tensor2D {
  return callKernel(TOKEN_MASK, { ids });
}

/**
 * Rows of `table` [V, C] by token id ([P] int32): a gather, whose gradient adds the rows of
 * repeated ids in position order (tfjs's adds them with atomics, in no fixed order).
 */
export function embeddingFused(table: tf.Tensor2D, ids: tf.Tensor1D): tf.Tensor2D {
  const vocab = table.shape[0];
  const f = tf.customGrad((t: Any, save: Any) => {
    save([ids]);
    return {
      value: tf.gather(t, ids),
      gradFunc: (dy: Any, saved: Any) => {
        const chain = callKernel(TOKEN_CHAIN, { ids: saved[0] });
        return [callKernel(EMBEDDING_GRAD, { dy, ids: saved[0], chain }, { vocab })];
      },
    };
  }) as unknown as (t: tf.Tensor) => tf.Tensor2D;
  return f(table);
}

/** Sum over the rows of x [N, C] -> [C]. */
export function colSum(x: tf.Tensor2D): tf.Tensor1D {
  if (x.shape[0] <= SINGLE_PASS_ROWS) return callKernel(COL_SUM, { x });
  return tf.tidy(() => callKernel(COL_SUM, { x: callKernel(COL_SUM_PARTIAL, { x }) }));
}

/** y = x w + b (one fused matmul forward; dx, dw by matmul and db by a column sum). */
export const denseFused = tf.customGrad((x: Any, w: Any, b: Any, save: Any) => {
  save([x, w]);
  return {
    value: tf.fused.matMul({ a: x, b: w, bias: b }),
    gradFunc: (dy: Any, saved: Any) => {
      const [xs, ws] = saved as tf.Tensor2D[];
      return [tf.matMul(dy, ws, false, true), tf.matMul(xs, dy, true, false), colSum(dy)];
    },
  };
}) as unknown as (x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D) => tf.Tensor2D;

/** LayerNorm over the last axis of x [N, C] (eps 1e-5). */
export const layerNormFused = tf.customGrad((x: Any, g: Any, b: Any, save: Any) => {
  const stats = callKernel(ROW_STATS, { x });
  save([x, stats, g]);
  return {
    value: callKernel(LAYER_NORM, { x, stats, g, b }),
    gradFunc: (dy: Any, saved: Any) => {
      const [xs, st, gs] = saved as tf.Tensor[];
      const dx = callKernel(LAYER_NORM_DX, { x: xs, stats: st, g: gs, dy });
      const part = callKernel<tf.Tensor2D>(LAYER_NORM_DG, { x: xs, stats: st, dy });
      const dg = part.shape[0] === 1 ? tf.reshape(part, [part.shape[1]]) : colSum(part);
      return [dx, dg, colSum(dy)];
    },
  };
}) as unknown as (x: tf.Tensor2D, g: tf.Tensor1D, b: tf.Tensor1D) => tf.Tensor2D;

/** GELU, tanh approximation. */
export const geluFused = tf.customGrad((x: Any, save: Any) => {
  save([x]);
  return {
    value: callKernel(GELU, { x }),
    gradFunc: (dy: Any, saved: Any) => [callKernel(GELU_GRAD, { x: saved[0], dy })],
  };
}) as unknown as (x: tf.Tensor) => tf.Tensor;

/** Rows of x (last axis) scaled to unit L2 norm, eps on the squared norm. */
export function l2normalizeFused(x: tf.Tensor, eps = 1e-12): tf.Tensor {
  const f = tf.customGrad((x: Any, save: Any) => {
    save([x]);
    return {
      value: callKernel(L2_NORMALIZE, { x }, { eps }),
      gradFunc: (dy: Any, saved: Any) => [callKernel(L2_NORMALIZE_GRAD, { x: saved[0], dy }, {
        eps,
      })],
    };
  }) as unknown as (x: tf.Tensor) => tf.Tensor;
  return f(x);
}

/** Mean of each input's tokens x [B * T, W] -> [B, W], over those `mask` [B, T] marks. */
export function meanPoolFused(x: tf.Tensor2D, b: number, mask?: tf.Tensor2D): tf.Tensor2D {
  const tokens = x.shape[0] / b;
  if (mask === undefined) {
    const f = tf.customGrad((x: Any) => ({
      value: callKernel(MEAN_POOL, { x }, { batch: b }),
      gradFunc: (dy: Any) => [callKernel(MEAN_POOL_GRAD, { dy }, { tokens })],
    })) as unknown as (x: tf.Tensor) => tf.Tensor2D;
    return f(x);
  }
  const f = tf.customGrad((x: Any, m: Any, save: Any) => {
    save([m]);
    return {
      value: callKernel(MEAN_POOL_MASKED, { x, mask: m }, { batch: b }),
      gradFunc: (dy: Any, saved: Any) => [
        callKernel(MEAN_POOL_MASKED_GRAD, { dy, mask: saved[0] }, { tokens }),
        tf.zerosLike(saved[0]),
      ],
    };
  }) as unknown as (x: tf.Tensor, m: tf.Tensor) => tf.Tensor2D;
  return f(x, mask);
}

/** Symmetric InfoNCE of a square logit matrix (positives on the diagonal). */
export const infoNceFused = tf.customGrad((logits: Any, save: Any) => {
  const lse = callKernel(INFO_NCE_LSE, { logits });
  save([logits, lse]);
  return {
    value: tf.reshape(callKernel(INFO_NCE_LOSS, { logits, lse }), []),
    gradFunc: (dy: Any, saved: Any) => [
      callKernel(INFO_NCE_GRAD, { logits: saved[0], lse: saved[1], dy: tf.reshape(dy, [1]) }),
    ],
  };
}) as unknown as (logits: tf.Tensor2D) => tf.Scalar;

/** Whether fused attention takes these sizes (tokens, head dimension). */
export function attentionFits(tokens: number, headDim: number): boolean {
  return tokens <= MAX_TOKENS && headDim <= MAX_HEAD_DIM;
}

/**
 * Self-attention from qkv [B * T, 3W] to the merged heads [B * T, W]; `keyMask` [B, T] is 1 for
 * a real key and 0 for padding (which gets a bias of -1e9).
 */
export function attentionFused(
  qkv: tf.Tensor2D,
  batch: number,
  heads: number,
  keyMask?: tf.Tensor2D,
): tf.Tensor2D {
  const attrs = { batch, heads };
  if (keyMask === undefined) {
    const f = tf.customGrad((qkv: Any, save: Any) => {
      save([qkv]);
      return {
        value: callKernel(ATTENTION, { qkv }, attrs),
        gradFunc: (dout: Any, saved: Any) => {
          const aux = callKernel(ATTENTION_BWD_Q, { qkv: saved[0], dout }, attrs);
          return [callKernel(ATTENTION_BWD_KV, { qkv: saved[0], dout, aux }, attrs)];
        },
      };
    }) as unknown as (x: tf.Tensor) => tf.Tensor2D;
    return f(qkv);
  }
  const f = tf.customGrad((qkv: Any, mask: Any, save: Any) => {
    save([qkv, mask]);
    return {
      value: callKernel(`${ATTENTION}Masked`, { qkv, mask }, attrs),
      gradFunc: (dout: Any, saved: Any) => {
        const [q, km] = saved as tf.Tensor[];
        const aux = callKernel(`${ATTENTION_BWD_Q}Masked`, { qkv: q, dout, mask: km }, attrs);
        return [
          callKernel(`${ATTENTION_BWD_KV}Masked`, { qkv: q, dout, aux, mask: km }, attrs),
          tf.zerosLike(km),
        ];
      },
    };
  }) as unknown as (x: tf.Tensor, m: tf.Tensor) => tf.Tensor2D;
  return f(qkv, keyMask);
}
