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

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const DEFAULT_ADAMW: AdamWConfig = { beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: 0.1 };

export class AdamW {
  readonly config: AdamWConfig;
  /** Number of updates applied so far. */
  step = 0;
  readonly m = new Map<string, tf.Variable>();
  readonly v = new Map<string, tf.Variable>();
  private readonly decay: Map<string, boolean>;

  /** `params`: name -> (variable, whether weight decay applies). */
  constructor(
    config: AdamWConfig,
    params: Iterable<[string, { variable: tf.Variable; decay: boolean }]>,
  ) {
    this.config = config;
    this.decay = new Map();
    for (const [name, { variable, decay }] of params) {
      this.decay.set(name, decay);
      this.m.set(name, tf.tidy(() => tf.variable(tf.zerosLike(variable), false)));
      this.v.set(name, tf.tidy(() => tf.variable(tf.zerosLike(variable), false)));
    }
  }

  names(): string[] {
    return [...this.decay.keys()];
  }

  /** Applies one update with learning rate `lr`; `grads` by parameter name. */
  apply(vars: Map<string, tf.Variable>, grads: Record<string, tf.Tensor>, lr: number): void {
    this.step += 1;
    const { beta1, beta2, eps, weightDecay } = this.config;
    const bc1 = 1 - Math.pow(beta1, this.step);
    const bc2 = 1 - Math.pow(beta2, this.step);
    tf.tidy(() => {
      for (const [name, decay] of this.decay) {
        const g = grads[name];
        if (g === undefined) continue; // parameter not reached by the loss
        const p = vars.get(name)!;
        const m = this.m.get(name)!;
        const v = this.v.get(name)!;
        const m1 = tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1));
        const v1 = tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2));
        m.assign(m1);
        v.assign(v1);
        const denom = tf.add(tf.sqrt(tf.div(v1, bc2)), eps);
        const update = tf.div(tf.div(m1, bc1), denom);
        let p1: tf.Tensor = p;
        if (decay && weightDecay > 0) p1 = tf.sub(p1, tf.mul(p1, lr * weightDecay));
        p.assign(tf.sub(p1, tf.mul(update, lr)));
      }
    });
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.m.clear();
    this.v.clear();
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
 * Scales `grads` in place (new tensors, old ones disposed) so that their global L2 norm is at
 * most `maxNorm` (maxNorm <= 0: no clipping). Returns the norm before clipping as a scalar
 * tensor (caller disposes).
 */
export function clipGlobalNorm(grads: Record<string, tf.Tensor>, maxNorm: number): tf.Scalar {
  const names = Object.keys(grads);
  // A chain of adds, not tf.addN: on tfjs-webgpu 4.22 addN over many inputs returned 0
  // (verified with the llvmpipe adapter), and a fixed order keeps the sum deterministic.
  const norm = tf.tidy(() => {
    let total: tf.Tensor = tf.scalar(0);
    for (const n of names) total = tf.add(total, tf.sum(tf.square(grads[n])));
    return tf.sqrt(total) as tf.Scalar;
  });
  if (maxNorm > 0) {
    const scale = tf.tidy(() => tf.minimum(tf.div(maxNorm, tf.add(norm, 1e-6)), 1));
    for (const n of names) {
      const old = grads[n];
      grads[n] = tf.mul(old, scale);
      old.dispose();
    }
    scale.dispose();
  }
  return norm;
}
