/**
 * AdamW (decoupled weight decay, as torch.optim.AdamW), the learning-rate schedule and global
 * gradient-norm clipping.
 *
 * Update for parameter p with gradient g at step k (1-based):
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   p = p - lr * wd * p                      (only where the parameter decays)
 *   p = p - lr * (m / (1 - b1^k)) / (sqrt(v / (1 - b2^k)) + eps)
 * The bias-correction factors are computed in float64 in JS and passed as float32 scalars, so
 * the update is a pure function of (p, m, v, g, k): resuming with restored moments and step is
 * bit-identical to an uninterrupted run.
 */
import * as tf from "@tensorflow/tfjs-core";
import { adamwStepWebgpu } from "../tf/kernels/adamw.ts";
import { fusedOps } from "./gpu_ops.ts";

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const DEFAULT_ADAMW: AdamWConfig = { beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: 0.1 };

interface Entry {
  name: string;
  variable: tf.Variable;
  decay: boolean;
  shape: number[];
  offset: number;
  size: number;
}

/**
 * AdamW over all parameters at once: the gradients are concatenated into one flat vector and
 * the moments are two flat vectors, so a step is ~20 kernels on one vector instead of ~14 per
 * parameter (the per-parameter form spent more time launching kernels than computing). Every
 * element goes through the same float32 operations as in the per-parameter form (weight decay
 * is a multiplication by a 0/1 mask times lr * wd, and p - p * 0 = p), so the update is
 * unchanged bit for bit.
 */
export class AdamW {
  readonly config: AdamWConfig;
  /** Number of updates applied so far. */
  step = 0;
  /** First and second moments, flat over the parameters in `names()` order. */
  readonly m: tf.Variable;
  readonly v: tf.Variable;
  /** Total number of scalar parameters. */
  readonly size: number;
  private readonly entries: Entry[];
  /** 1 where weight decay applies, else 0; undefined when it applies to all or none. */
  private readonly decayMask: tf.Tensor1D | undefined;
  private readonly anyDecay: boolean;

  /** `params`: name -> (variable, whether weight decay applies). */
  constructor(
    config: AdamWConfig,
    params: Iterable<[string, { variable: tf.Variable; decay: boolean }]>,
  ) {
    this.config = config;
    this.entries = [];
    let offset = 0;
    for (const [name, { variable, decay }] of params) {
      this.entries.push({
        name,
        variable,
        decay,
        shape: variable.shape,
        offset,
        size: variable.size,
      });
      offset += variable.size;
    }
    this.size = offset;
    this.m = tf.tidy(() => tf.variable(tf.zeros([this.size]), false));
    this.v = tf.tidy(() => tf.variable(tf.zeros([this.size]), false));
    this.anyDecay = this.entries.some((e) => e.decay);
    const allDecay = this.entries.every((e) => e.decay);
    if (this.anyDecay && !allDecay) {
      const mask = new Float32Array(this.size);
      for (const e of this.entries) if (e.decay) mask.fill(1, e.offset, e.offset + e.size);
      this.decayMask = tf.tensor1d(mask, "float32");
    }
  }

  names(): string[] {
    return this.entries.map((e) => e.name);
  }

  /** Concatenates per-parameter tensors (by name, all of `names()`) into one flat vector. */
  flatten(tensors: Record<string, tf.Tensor>): tf.Tensor1D {
    return tf.tidy(() =>
      tf.concat(this.entries.map((e) => {
        const t = tensors[e.name];
        if (t === undefined) throw new Error(`no gradient for parameter ${e.name}`);
        return tf.reshape(t, [e.size]);
      }))
    ) as tf.Tensor1D;
  }

  /** Applies one update with learning rate `lr`; `grad`: the flat gradient (see flatten). */
  applyFlat(grad: tf.Tensor1D, lr: number): void {
    if (grad.size !== this.size) {
      throw new Error(`flat gradient has ${grad.size} values, expected ${this.size}`);
    }
    this.step += 1;
    const { beta1, beta2, eps, weightDecay } = this.config;
    const bc1 = 1 - Math.pow(beta1, this.step);
    const bc2 = 1 - Math.pow(beta2, this.step);
    tf.tidy(() => {
      const g = grad;
      const p = this.flatten(Object.fromEntries(this.entries.map((e) => [e.name, e.variable])));
      const m1 = tf.add(tf.mul(this.m, beta1), tf.mul(g, 1 - beta1));
      const v1 = tf.add(tf.mul(this.v, beta2), tf.mul(tf.square(g), 1 - beta2));
      this.m.assign(m1);
      this.v.assign(v1);
      const denom = tf.add(tf.sqrt(tf.div(v1, bc2)), eps);
      const update = tf.div(tf.div(m1, bc1), denom);
      let p1: tf.Tensor = p;
      if (this.anyDecay && weightDecay > 0) {
        const factor = this.decayMask === undefined
          ? tf.scalar(lr * weightDecay)
          : tf.mul(this.decayMask, lr * weightDecay);
        p1 = tf.sub(p1, tf.mul(p1, factor));
      }
      const p2 = tf.sub(p1, tf.mul(update, lr));
      const parts = tf.split(p2, this.entries.map((e) => e.size));
      this.entries.forEach((e, i) => e.variable.assign(tf.reshape(parts[i], e.shape)));
    });
  }

  /**
   * Clips the gradients (by name, all of `names()`) to global norm `maxNorm` (<= 0: no
   * clipping) and applies one update; returns the norm before clipping (caller disposes). On
   * webgpu the update runs in place in a few dispatches (kernels/adamw.ts); elsewhere through
   * the flat vector, bit for bit as before.
   */
  applyClipped(grads: Record<string, tf.Tensor>, lr: number, maxNorm: number): tf.Scalar {
    if (tf.getBackend() !== "webgpu" || !fusedOps()) {
      const flat = this.flatten(grads);
      const { grad, norm } = clipGlobalNorm(flat, maxNorm);
      flat.dispose();
      try {
        this.applyFlat(grad, lr);
      } finally {
        grad.dispose();
      }
      return norm;
    }
    this.step += 1;
    const { beta1, beta2, eps, weightDecay } = this.config;
    const norm = adamwStepWebgpu({
      params: this.entries.map((e) => e.variable),
      grads: this.entries.map((e) => {
        const g = grads[e.name];
        if (g === undefined) throw new Error(`no gradient for parameter ${e.name}`);
        return g;
      }),
      decay: this.entries.map((e) => e.decay && weightDecay > 0),
      m: this.m,
      v: this.v,
      lr,
      beta1,
      beta2,
      eps,
      weightDecay,
      bc1: 1 - Math.pow(beta1, this.step),
      bc2: 1 - Math.pow(beta2, this.step),
      maxNorm,
    });
    const scalar = tf.reshape(norm, []) as tf.Scalar;
    norm.dispose();
    return scalar;
  }

  /** Applies one update with learning rate `lr`; `grads` by parameter name. */
  apply(grads: Record<string, tf.Tensor>, lr: number): void {
    const g = this.flatten(grads);
    try {
      this.applyFlat(g, lr);
    } finally {
      g.dispose();
    }
  }

  /** The moments of every parameter, by name (for checkpoints). */
  async readMoments(): Promise<Map<string, { shape: number[]; m: Float32Array; v: Float32Array }>> {
    const m = (await this.m.data()) as Float32Array;
    const v = (await this.v.data()) as Float32Array;
    const out = new Map<string, { shape: number[]; m: Float32Array; v: Float32Array }>();
    for (const e of this.entries) {
      out.set(e.name, {
        shape: e.shape,
        m: m.slice(e.offset, e.offset + e.size),
        v: v.slice(e.offset, e.offset + e.size),
      });
    }
    return out;
  }

  /** Restores the moments (every parameter's, by name) from `readMoments()` values. */
  loadMoments(values: (name: string) => { m: Float32Array; v: Float32Array }): void {
    const m = new Float32Array(this.size);
    const v = new Float32Array(this.size);
    for (const e of this.entries) {
      const x = values(e.name);
      if (x.m.length !== e.size || x.v.length !== e.size) {
        throw new Error(`moments of ${e.name}: expected ${e.size} values`);
      }
      m.set(x.m, e.offset);
      v.set(x.v, e.offset);
    }
    tf.tidy(() => {
      this.m.assign(tf.tensor1d(m, "float32"));
      this.v.assign(tf.tensor1d(v, "float32"));
    });
  }

  dispose(): void {
    this.m.dispose();
    this.v.dispose();
    this.decayMask?.dispose();
  }
}

export interface ScheduleConfig {
  /** Peak learning rate. */
  lr: number;
  /** Linear warm-up steps (from lr/warmup to lr). */
  warmup: number;
  /** Total steps (cosine decays to minLrRatio * lr at the last step). */
  steps: number;
  minLrRatio: number;
}

/** Learning rate for the update with 0-based index `step`: linear warm-up, then cosine. */
export function learningRate(step: number, c: ScheduleConfig): number {
  if (c.warmup > 0 && step < c.warmup) return (c.lr * (step + 1)) / c.warmup;
  const decaySteps = Math.max(1, c.steps - c.warmup);
  const progress = Math.min(1, (step - c.warmup) / decaySteps);
  const min = c.lr * c.minLrRatio;
  return min + 0.5 * (c.lr - min) * (1 + Math.cos(Math.PI * progress));
}

/**
 * Global-norm clipping of a flat gradient: returns the gradient scaled so that its L2 norm is
 * at most `maxNorm` (maxNorm <= 0: unchanged, a clone) and the norm before clipping (a scalar
 * tensor). The caller disposes both.
 */
export function clipGlobalNorm(
  grad: tf.Tensor1D,
  maxNorm: number,
): { grad: tf.Tensor1D; norm: tf.Scalar } {
  return tf.tidy(() => {
    const norm = tf.sqrt(tf.sum(tf.square(grad))) as tf.Scalar;
    if (maxNorm <= 0) return { grad: tf.clone(grad), norm };
    const scale = tf.minimum(tf.div(maxNorm, tf.add(norm, 1e-6)), 1);
    return { grad: tf.mul(grad, scale) as tf.Tensor1D, norm };
  });
}
