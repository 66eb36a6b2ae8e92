/**
 * Where a wasm training step of R1 (bench/r1.ts) spends its time, by kernel, from `tf.profile`:
 *
 *   deno run -A bench/wasm_profile.ts [clip|kme] [threads]      (default clip, 1 thread)
 *
 * Three warm-up steps, then three profiled ones; prints the wall time per step, the sum of
 * kernel times, and the top 30 kernels (products, sums, concats and copies by input shapes).
 * The figures in docs/model.md section 8 come from it. `KME_WASM_SIMD=0` shows the step
 * without our SIMD kernels (stages/lib/tf/wasm_simd/).
 */
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../stages/lib/tf/backend.ts";
import { ContrastiveModel } from "../stages/lib/model/model.ts";
import { batchTensors } from "../stages/lib/model/batch_tensors.ts";
import { createOptimizer, trainStepTensors } from "../stages/lib/model/train.ts";
import { benchCase } from "./r1.ts";
const sim = Deno.args[0] ?? "clip";
await initBackend("wasm", { threads: Number(Deno.args[1] ?? 1) });
const bc = benchCase("r1");
const model = ContrastiveModel.create(bc.config(sim), 1);
const opt = createOptimizer(model, bc.train);
const batches = bc.batches(2, 1);
const step = async (i: number) => {
  const bt = batchTensors(model, batches[i % 2]);
  const r = trainStepTensors(model, opt, bt.images, bt.ids, bc.train.lr, bc.train.gradClip);
  await r.loss.data();
  tf.dispose([r.loss, r.gradNorm]);
  bt.dispose();
};
for (let i = 0; i < 3; i++) await step(i);
const agg = new Map<string, { ms: number; n: number }>();
let total = 0;
const t0 = performance.now();
const N = 3;
for (let i = 0; i < N; i++) {
  const p = await tf.profile(() => step(i));
  for (const k of p.kernels) {
    const ms = (await k.kernelTimeMs) as number;
    const key = ["BatchMatMul", "Sum", "Concat", "Identity", "Multiply"].includes(k.name)
      ? `${k.name} ${k.inputShapes.map((s) => `[${s}]`).join("x")}`
      : k.name;
    const e = agg.get(key) ?? { ms: 0, n: 0 };
    e.ms += ms;
    e.n++;
    agg.set(key, e);
    total += ms;
  }
}
const wall = (performance.now() - t0) / N;
console.log(`wall/step (profiled) ${wall.toFixed(0)} ms; kernel sum ${(total / N).toFixed(0)} ms`);
const rows = [...agg].sort((a, b) => b[1].ms - a[1].ms).slice(0, 30);
for (const [k, e] of rows) {
  console.log(`${(e.ms / N).toFixed(1).padStart(7)} ms ${String(e.n / N).padStart(4)}x  ${k}`);
}
Deno.exit(0);
