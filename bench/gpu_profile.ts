/**
 * `deno task bench gpu-profile [--case r1|c1] [--sim clip] [--batch 128] [--steps 3] [--warmup 2]
 * [--json FILE] [--no-timing]`: what one webgpu training step costs besides arithmetic, as train() runs it
 * (batch tensors, forward, backward, clipping, AdamW; the loss read only on the logging step):
 * - kernel dispatches, and by op;
 * - ops that ran on the CPU, and read-backs, by op (none is allowed on a non-logging step);
 * - bytes uploaded, against the batch's raw bytes (images as bytes, ids as int32);
 * - GPU buffers created (a pool that works creates none after warm-up);
 * - then one more step under `tf.profile`: the top kernels by GPU time, from WebGPU timestamp
 *   queries (llvmpipe and NVIDIA have them under Deno; without them the profile says so).
 * Works on any WebGPU adapter, Deno's software llvmpipe included. Prints a summary and writes
 * JSON (`--json`). tests/ml_webgpu_step.test.ts holds a step to these counts.
 */
import * as tf from "@tensorflow/tfjs-core";
import { parseArgs } from "node:util";
import { initBackend } from "../stages/lib/tf/backend.ts";
import { webgpuCounters, type WebgpuCounts } from "../stages/lib/tf/webgpu_counters.ts";
import { ContrastiveModel } from "../stages/lib/model/model.ts";
import { batchTensors } from "../stages/lib/model/batch_tensors.ts";
import { createOptimizer, readScalars, trainStepTensors } from "../stages/lib/model/train.ts";
import { benchCase, type CaseName as BenchCaseName } from "./r1.ts";

export interface StepProfile {
  step: number;
  logging: boolean;
  counts: WebgpuCounts;
}

export interface GpuProfile {
  case: BenchCaseName;
  similarity: string;
  batch: number;
  adapter: string;
  /** Raw bytes of one batch: images as bytes plus ids as int32. */
  batchBytes: number;
  steps: StepProfile[];
  /** The counted non-logging steps' worst figures. */
  summary: {
    dispatches: number;
    cpuOps: number;
    uploadBytes: number;
    readbackBytesNonLogging: number;
    buffersCreated: number;
  };
  timing: {
    source: "timestamp-query" | "unavailable (no timestamp-query)";
    topKernels: KernelTime[];
  };
  stepWallMs: number;
}

export interface KernelTime {
  name: string;
  ms: number;
  calls: number;
}

/** Profiles `steps` steps after `warmup` (the last counted step is the logging one). */
export async function profileSteps(
  o: {
    case: BenchCaseName;
    sim: string;
    batch: number;
    steps: number;
    warmup: number;
    /** Time the kernels of one more step (default true). */
    timing?: boolean;
  },
): Promise<GpuProfile> {
  const be = await initBackend("webgpu");
  const bc = benchCase(o.case);
  const model = ContrastiveModel.create(bc.config(o.sim), 1);
  const opt = createOptimizer(model, bc.train);
  const batches = bc.batches(2, 1, o.batch);
  const counters = webgpuCounters(tf);
  const batchBytes = batches[0].images.byteLength + batches[0].ids.byteLength;
  const pending: tf.Scalar[] = [];
  const step = (k: number) => {
    const b = batches[k % batches.length];
    const t = batchTensors(model, { ...b, size: o.batch });
    try {
      const s = trainStepTensors(model, opt, t.images, t.ids, bc.train.lr, bc.train.gradClip);
      pending.push(s.loss);
      s.gradNorm.dispose();
    } finally {
      t.dispose();
    }
  };
  const readPending = async () => {
    const v = await readScalars(pending);
    tf.dispose(pending.splice(0));
    return v;
  };
  for (let k = 0; k < o.warmup; k++) step(k);
  await readPending();
  counters.take();
  const steps: StepProfile[] = [];
  const t0 = performance.now();
  for (let k = 0; k < o.steps; k++) {
    step(o.warmup + k);
    const logging = k === o.steps - 1;
    if (logging) await readPending();
    steps.push({ step: o.warmup + k + 1, logging, counts: counters.take() });
  }
  const stepWallMs = (performance.now() - t0) / o.steps;
  const timing = o.timing === false
    ? { source: "timestamp-query" as const, topKernels: [] }
    : await kernelTimes(() => step(0));
  await readPending();
  counters.take();
  model.dispose();
  opt.dispose();
  const plain = steps.filter((s) => !s.logging).map((s) => s.counts);
  const worst = (f: (c: WebgpuCounts) => number) =>
    Math.max(0, ...(plain.length ? plain : steps.map((s) => s.counts)).map(f));
  const count = (t: Record<string, { count: number }>) =>
    Object.values(t).reduce((a, e) => a + e.count, 0);
  return {
    case: o.case,
    similarity: o.sim,
    batch: o.batch,
    adapter: be.adapter ?? "?",
    batchBytes,
    steps,
    summary: {
      dispatches: worst((c) => c.dispatches),
      cpuOps: worst((c) => count(c.cpuOps)),
      uploadBytes: worst((c) => c.uploadBytes),
      readbackBytesNonLogging: Math.max(0, ...plain.map((c) => c.readbackBytes)),
      buffersCreated: worst((c) => c.buffersCreated),
    },
    timing,
    stepWallMs,
  };
}

/**
 * Per-kernel GPU time of one step, from WebGPU timestamp queries inside `tf.profile`. Without
 * them there is no honest per-op time: Deno resolves `onSubmittedWorkDone` only once the whole
 * queue is idle (tried: every program submitted and stamped on its own came out at the same
 * instant), and a step cannot wait in the middle of its synchronous code. The profile then says
 * so and keeps its dispatch counts; llvmpipe and NVIDIA both have timestamp queries under Deno.
 */
async function kernelTimes(run: () => void): Promise<GpuProfile["timing"]> {
  const device = (tf.backend() as unknown as { device: GPUDevice }).device;
  if (!device.features.has("timestamp-query")) {
    run();
    return { source: "unavailable (no timestamp-query)", topKernels: [] };
  }
  const info = await tf.profile(run);
  const byName = new Map<string, KernelTime>();
  for (const k of info.kernels) {
    const ms = typeof k.kernelTimeMs === "number" ? k.kernelTimeMs : 0;
    const e = byName.get(k.name) ?? { name: k.name, ms: 0, calls: 0 };
    e.ms += ms;
    e.calls += 1;
    byName.set(k.name, e);
  }
  return {
    source: "timestamp-query",
    topKernels: [...byName.values()].sort((x, y) => y.ms - x.ms),
  };
}

function fmtBytes(n: number): string {
  return n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(2)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}

export function describeProfile(p: GpuProfile): string {
  const lines = [
    `${p.case} ${p.similarity}, batch ${p.batch}, webgpu on ${p.adapter}; ${
      p.stepWallMs.toFixed(0)
    } ms/step (counted steps, with the counters on)`,
    `per non-logging step: ${p.summary.dispatches} dispatches, ${p.summary.cpuOps} CPU ops, ` +
    `${fmtBytes(p.summary.uploadBytes)} up (batch: ${fmtBytes(p.batchBytes)}), ` +
    `${
      fmtBytes(p.summary.readbackBytesNonLogging)
    } read back, ${p.summary.buffersCreated} new buffers`,
  ];
  for (const s of p.steps) {
    const c = s.counts;
    const cpu = Object.entries(c.cpuOps).map(([k, v]) => `${k} x${v.count}`).join(", ");
    const reads = Object.entries(c.readbacks).map(([k, v]) => `${k} ${fmtBytes(v.bytes)}`).join(
      ", ",
    );
    const ups = Object.entries(c.uploads).map(([k, v]) => `${k} ${fmtBytes(v.bytes)}`).join(", ");
    lines.push(
      `  step ${s.step}${s.logging ? " (logging)" : ""}: ${c.dispatches} dispatches; cpu: ${
        cpu || "none"
      }; up: ${ups || "none"}; read: ${reads || "none"}; new buffers ${c.buffersCreated}`,
    );
  }
  const last = p.steps.at(-1)!.counts.dispatchesByOp;
  const byOp = Object.entries(last).sort((a, b) => b[1] - a[1]).slice(0, 12);
  lines.push(`  dispatches by op: ${byOp.map(([k, v]) => `${k} ${v}`).join(", ")}`);
  const total = p.timing.topKernels.reduce((a, k) => a + k.ms, 0);
  lines.push(`top kernels by GPU time (${p.timing.source}; ${total.toFixed(1)} ms in all):`);
  for (const k of p.timing.topKernels.slice(0, 12)) {
    lines.push(
      `  ${k.name.padEnd(28)} ${k.ms.toFixed(2).padStart(9)} ms  ${
        (100 * k.ms / Math.max(total, 1e-9)).toFixed(1).padStart(5)
      }%  ${k.calls} calls`,
    );
  }
  return lines.join("\n");
}

export async function gpuProfileMain(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      case: { type: "string", default: "r1" },
      sim: { type: "string", default: "clip" },
      batch: { type: "string" },
      steps: { type: "string", default: "3" },
      warmup: { type: "string", default: "2" },
      json: { type: "string" },
      "no-timing": { type: "boolean", default: false },
    },
  });
  const kase = values.case as BenchCaseName;
  const bc = benchCase(kase);
  const p = await profileSteps({
    case: kase,
    sim: values.sim!,
    batch: values.batch ? Number(values.batch) : bc.batch,
    steps: Number(values.steps),
    warmup: Number(values.warmup),
    timing: !values["no-timing"],
  });
  console.log(describeProfile(p));
  if (values.json) await Deno.writeTextFile(values.json, JSON.stringify(p, null, 1) + "\n");
}

if (import.meta.main) await gpuProfileMain(Deno.args);
