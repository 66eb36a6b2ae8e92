/**
 * The training loop: seeded batches, AdamW with warm-up + cosine, optional global-norm
 * clipping, periodic atomic checkpoints, resume, a JSONL log and abort handling.
 *
 * Determinism: the initial weights come from a JS PRNG (same on every backend), the batch of
 * step s is a pure function of (seed, s), and every update is a pure function of the restored
 * state, so the same seed gives bit-identical weights on a deterministic backend (cpu, or
 * single-threaded wasm), and a resumed run equals an uninterrupted one bit for bit.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Batch, BatchSource } from "./data.ts";
import type { ContrastiveModel } from "./model.ts";
import type { Draw } from "../similarity/similarity.ts";
import { AdamW, learningRate } from "./optim.ts";
import {
  CheckpointDamagedError,
  type CheckpointHeader,
  loadCheckpoint,
  saveCheckpoint,
} from "./checkpoint.ts";
import { writeFileAtomic } from "./tensorfile.ts";
import { batchTensors, type ImageInput } from "./batch_tensors.ts";

export interface TrainOptions {
  steps: number;
  lr: number;
  warmup: number;
  /** Final lr as a fraction of lr (cosine floor). */
  minLrRatio: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Max global gradient L2 norm; 0 disables clipping. */
  gradClip: number;
  logEvery: number;
  /** Checkpoint every this many steps (0: only on abort / stop). */
  checkpointEvery: number;
}

export interface LogRecord {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  grad_norm: number;
  /** The similarity's scalars after clamping (e.g. logit_scale, sigma2) are spread in here. */
  [scalar: string]: number;
  samples_per_s: number;
  elapsed_s: number;
}

export interface TrainArgs {
  model: ContrastiveModel;
  source: BatchSource;
  options: TrainOptions;
  /** Folder for checkpoints (resumed from when it holds one). */
  checkpointDir?: string;
  /** JSONL log path; on resume, records after the checkpoint's step are dropped. */
  logPath?: string;
  /** Stop (after writing a checkpoint) once this many steps are done; for tests. */
  stopAfter?: number;
  signal?: AbortSignal;
  /**
   * Held-out loss, computed every `every` steps and at the last one; the value goes into that
   * step's log record as `val_loss` (such a step is always logged). It must not change the
   * model's state, so a resumed run logs what an uninterrupted one does.
   */
  validate?: { every: number; loss(): Promise<number | undefined> };
  /** Called after each checkpoint is written, with its step. */
  onCheckpoint?(step: number): Promise<void>;
  /** Called after every step with the step's loss. */
  onStep?(step: number, loss: number, samplesPerSec: number): void;
  onLog?(record: LogRecord): void;
  log?(message: string): void;
}

export interface TrainResult {
  steps: number;
  /** Mean loss over the last min(20, steps) steps run in this process (or the log). */
  finalLoss: number;
  lastLoss: number;
  /** Step the run resumed from (0 if fresh). */
  resumedFrom: number;
  /** Mean throughput over this process's steps. */
  samplesPerSec: number;
  /** Whether the run stopped early (stopAfter). */
  stopped: boolean;
  scalars: Record<string, number>;
}

/** Creates the optimizer over the model's trainable parameters. */
export function createOptimizer(model: ContrastiveModel, o: TrainOptions): AdamW {
  const decayOf = new Map(model.params.specs.map((s) => [s.name, s.decay]));
  return new AdamW(
    { beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay },
    model.trainableNames().map((
      n,
    ) => [n, { variable: model.params.get(n), decay: decayOf.get(n)! }]),
  );
}

/** A step's loss and gradient norm (before clipping), still on the backend. */
export interface StepTensors {
  loss: tf.Scalar;
  gradNorm: tf.Scalar;
}

/**
 * One optimisation step, queued: the gradients are clipped to a global norm and applied by
 * AdamW (optim.ts), and nothing is read back, so on webgpu the next step's
 * kernels queue behind this one's. The caller reads (and disposes) the two scalars.
 */
export function trainStepTensors(
  model: ContrastiveModel,
  opt: AdamW,
  images: ImageInput,
  ids: tf.Tensor2D,
  lr: number,
  gradClip: number,
  draw: Draw = { kind: "eval" },
): StepTensors {
  const names = opt.names();
  const vars = names.map((n) => model.params.get(n));
  const { value, grads } = tf.engine().gradients(
    () => model.loss(images, ids, draw),
    vars,
    one(),
    true,
  );
  const named: Record<string, tf.Tensor> = {};
  grads.forEach((g, i) => {
    if (g == null) throw new Error(`no gradient reaches parameter ${names[i]}`);
    named[names[i]] = g;
  });
  let norm: tf.Scalar;
  try {
    norm = opt.applyClipped(named, lr, gradClip);
  } finally {
    tf.dispose(Object.values(named));
  }
  model.clampScalars();
  return { loss: value, gradNorm: norm };
}

const ones = new Map<string, tf.Scalar>();

/**
 * The seed of backpropagation, d loss / d loss = 1, made once per backend: left to
 * `variableGrads`, it is a new host tensor, uploaded every step on webgpu.
 */
function one(): tf.Scalar {
  const key = tf.getBackend();
  let t = ones.get(key);
  if (t === undefined || t.isDisposed) {
    t = tf.keep(tf.scalar(1));
    ones.set(key, t);
  }
  return t;
}

/** Several scalars in one read-back (one stack, one copy from the GPU). */
export async function readScalars(xs: tf.Scalar[]): Promise<number[]> {
  if (xs.length === 0) return [];
  if (xs.length === 1) return [(await xs[0].data())[0]];
  const all = tf.stack(xs);
  try {
    return Array.from(await all.data());
  } finally {
    all.dispose();
  }
}

/**
 * Steps whose loss is not read yet. On webgpu a read-back stalls the queue, so the losses wait
 * here until a logging or checkpoint step (or the end) reads them all at once; elsewhere every
 * step is read at once (the values are on the host anyway, and the progress line stays live).
 * A non-finite loss is found when read, always before a checkpoint is written.
 */
class PendingLosses {
  private readonly steps: { step: number; batch: number; t: StepTensors }[] = [];

  constructor(readonly deferred: boolean) {}

  push(step: number, batch: number, t: StepTensors): void {
    this.steps.push({ step, batch, t });
  }

  get size(): number {
    return this.steps.length;
  }

  /** Reads every pending step: (step, batch, loss, gradNorm) in order; throws on a NaN loss. */
  async read(): Promise<{ step: number; batch: number; loss: number; gradNorm: number }[]> {
    const taken = this.steps.splice(0);
    let values: number[];
    try {
      values = await readScalars(taken.flatMap((p) => [p.t.loss, p.t.gradNorm]));
    } finally {
      for (const p of taken) tf.dispose([p.t.loss, p.t.gradNorm]);
    }
    const out = taken.map((p, i) => ({
      step: p.step,
      batch: p.batch,
      loss: values[2 * i],
      gradNorm: values[2 * i + 1],
    }));
    const bad = out.find((r) => !Number.isFinite(r.loss));
    if (bad) {
      throw new Error(`loss is ${bad.loss} at step ${bad.step}; lower lr or enable grad_clip`);
    }
    return out;
  }

  dispose(): void {
    for (const p of this.steps.splice(0)) tf.dispose([p.t.loss, p.t.gradNorm]);
  }
}

async function truncateLog(path: string, upTo: number): Promise<void> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  const kept = text.split("\n").filter((l) => {
    if (l.trim() === "") return false;
    try {
      return (JSON.parse(l) as LogRecord).step <= upTo;
    } catch {
      return false; // a torn last line from a killed process
    }
  });
  await writeFileAtomic(path, kept.map((l) => l + "\n").join(""));
}

/** Runs (or resumes) training to `options.steps`. */
export async function train(args: TrainArgs): Promise<TrainResult> {
  const { model, source, options: o } = args;
  const say = args.log ?? (() => {});
  const opt = createOptimizer(model, o);
  const seed = source.seed;
  try {
    let recent: number[] = [];
    let resumedFrom = 0;
    if (args.checkpointDir !== undefined) {
      let h: CheckpointHeader | undefined;
      try {
        h = await loadCheckpoint(args.checkpointDir, model, opt);
      } catch (e) {
        if (!(e instanceof CheckpointDamagedError)) throw e;
        // Kept for inspection, out of the way; training from step 0 gives what an
        // uninterrupted run gives, so the result does not depend on the damage.
        const aside = `${args.checkpointDir}.damaged-${Date.now()}`;
        await Deno.rename(args.checkpointDir, aside);
        say(`warning: damaged checkpoint (${e.message}); moved to ${aside}; starting over`);
      }
      if (h !== undefined) {
        resumedFrom = h.step;
        recent = h.recentLosses;
        say(`resumed from checkpoint at step ${h.step}`);
      }
    }
    if (args.logPath !== undefined) await truncateLog(args.logPath, resumedFrom);
    const logFile = args.logPath === undefined
      ? undefined
      : await Deno.open(args.logPath, { append: true, create: true });

    const pending = new PendingLosses(tf.getBackend() === "webgpu");
    const t0 = performance.now();
    let windowStart = t0;
    let windowSamples = 0;
    let samples = 0;
    let lastLoss = NaN;
    let lastGradNorm = NaN;
    let stopped = false;
    /** Reads the pending steps' losses (a NaN throws here, before any checkpoint). */
    const settle = async () => {
      if (pending.size === 0) return;
      const read = await pending.read();
      const sps = samples / ((performance.now() - t0) / 1000);
      for (const r of read) {
        lastLoss = r.loss;
        lastGradNorm = r.gradNorm;
        recent.push(r.loss);
        if (recent.length > 20) recent.shift();
        args.onStep?.(r.step, r.loss, sps);
      }
    };
    const save = async () => {
      await settle();
      if (args.checkpointDir === undefined) return;
      await saveCheckpoint(args.checkpointDir, model, opt, source, seed, recent, { train: o });
      await args.onCheckpoint?.(opt.step);
    };
    // The next batch is read while this step computes (disk reads of an uncached split are
    // asynchronous). batch(step) is a pure function of the step, so prefetching changes only
    // the time; a failed prefetch is reported where it is awaited.
    let prefetched: { step: number; batch: Promise<Batch> } | undefined;
    const prefetch = (s: number) => {
      const batch = source.batch(s);
      batch.catch(() => {}); // awaited below, or dropped when the loop ends
      return { step: s, batch };
    };
    try {
      while (opt.step < o.steps) {
        if (args.signal?.aborted) {
          await save();
          say(`interrupted at step ${opt.step}; checkpoint written`);
          throw args.signal.reason ?? new DOMException("aborted", "AbortError");
        }
        if (args.stopAfter !== undefined && opt.step >= args.stopAfter) {
          stopped = true;
          await save();
          break;
        }
        const step = opt.step; // 0-based index of this update
        const batch = await (prefetched?.step === step ? prefetched.batch : source.batch(step));
        prefetched = step + 1 < o.steps ? prefetch(step + 1) : undefined;
        const lr = learningRate(step, {
          lr: o.lr,
          warmup: o.warmup,
          steps: o.steps,
          minLrRatio: o.minLrRatio,
        });
        const tensors = batchTensors(model, batch);
        try {
          // The similarity's randomness (WPSE's features) is a function of (seed, step) alone.
          const draw = { kind: "train" as const, step, seed };
          const t = trainStepTensors(model, opt, tensors.images, tensors.ids, lr, o.gradClip, draw);
          pending.push(opt.step, batch.size, t);
        } finally {
          tensors.dispose(); // on webgpu, freed once the queued kernels no longer need it
        }
        samples += batch.size;
        windowSamples += batch.size;
        const v = args.validate;
        const validates = v !== undefined && (opt.step % v.every === 0 || opt.step === o.steps);
        const logs = validates || opt.step % o.logEvery === 0 || opt.step === o.steps;
        const checkpoints = o.checkpointEvery > 0 && opt.step % o.checkpointEvery === 0 &&
          opt.step < o.steps;
        if (!pending.deferred || logs || checkpoints) await settle();
        if (logs) {
          const now = performance.now();
          const val = validates ? await v!.loss() : undefined;
          const rec: LogRecord = {
            step: opt.step,
            epoch: source.cursor(step).epoch,
            loss: lastLoss,
            lr,
            grad_norm: lastGradNorm,
            ...(await model.scalars()),
            ...(val !== undefined ? { val_loss: val } : {}),
            samples_per_s: windowSamples / Math.max(1e-9, (now - windowStart) / 1000),
            elapsed_s: (now - t0) / 1000,
          };
          windowStart = performance.now(); // the throughput leaves out validation
          windowSamples = 0;
          if (logFile !== undefined) {
            await logFile.write(new TextEncoder().encode(JSON.stringify(rec) + "\n"));
          }
          args.onLog?.(rec);
        }
        if (checkpoints) await save();
      }
      if (!stopped) await save();
    } finally {
      pending.dispose();
      logFile?.close();
    }
    const elapsed = (performance.now() - t0) / 1000;
    return {
      steps: opt.step,
      finalLoss: recent.length > 0 ? recent.reduce((a, b) => a + b, 0) / recent.length : NaN,
      lastLoss,
      resumedFrom,
      samplesPerSec: samples / Math.max(1e-9, elapsed),
      stopped,
      scalars: await model.scalars(),
    };
  } finally {
    opt.dispose();
  }
}
