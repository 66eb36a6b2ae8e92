/**
 * wasm backend: kernel patches, agreement with cpu, determinism, no leaks over 200 steps, and
 * learnability of a toy task for clip and kme (run on wasm because it is ~8x faster than cpu).
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend, resolveBackendName } from "../stages/lib/tf/backend.ts";
import { BatchSource } from "../stages/lib/model/data.ts";
import { ClipModel } from "../stages/lib/model/model.ts";
import { Rng } from "../stages/lib/model/prng.ts";
import { tinyConfig, toySplit } from "../stages/lib/model/toy.ts";
import { train, type TrainOptions } from "../stages/lib/model/train.ts";
import { Vocab } from "../stages/lib/model/vocab.ts";
import type { SimilarityKind } from "../stages/lib/model/similarity.ts";

const OPTS: TrainOptions = {
  steps: 20,
  lr: 2e-3,
  warmup: 5,
  minLrRatio: 0.1,
  weightDecay: 0.05,
  beta1: 0.9,
  beta2: 0.98,
  eps: 1e-6,
  gradClip: 1,
  logEvery: 10,
  checkpointEvery: 0,
};

const split = toySplit(512, 21);
const vocab = Vocab.build(split.captions.map((c) => c.text), { maxSize: 64, minCount: 1 });
const source = (batchSize: number) =>
  new BatchSource(split, vocab, { batchSize, maxLen: 8, seed: 9, imageBytes: 16 * 16 * 3 });

async function curve(
  backend: "cpu" | "wasm",
  sim: SimilarityKind,
  opts: Partial<TrainOptions> = {},
  batch = 8,
): Promise<{ losses: number[]; weights: Map<string, Float32Array>; finalLoss: number }> {
  await initBackend(backend);
  const model = ClipModel.create(tinyConfig(sim, vocab.size), 5);
  const losses: number[] = [];
  const r = await train({
    model,
    source: source(batch),
    options: { ...OPTS, ...opts },
    onStep: (_s, l) => losses.push(l),
  });
  const weights = await model.params.read();
  model.dispose();
  return { losses, weights, finalLoss: r.finalLoss };
}

Deno.test("ml/backend: resolveBackendName is cheap and falls back to wasm without tfjs-node", () => {
  assert.equal(resolveBackendName("cpu"), "cpu");
  assert.equal(resolveBackendName("auto"), "wasm", "tfjs-node is not installed here");
});

Deno.test("ml/backend: 'tensorflow' without tfjs-node fails with the install command", async () => {
  await assert.rejects(initBackend("tensorflow"), /deno add npm:@tensorflow\/tfjs-node/);
});

Deno.test("ml/wasm: patched kernels (segment sum for gather's gradient, transposed matmul) match cpu", async () => {
  const rng = new Rng(4);
  const e = Float32Array.from({ length: 50 * 6 }, () => rng.normal());
  const ids = Int32Array.from({ length: 40 }, () => rng.int(50));
  const a = Float32Array.from({ length: 7 * 5 }, () => rng.normal());
  const b = Float32Array.from({ length: 9 * 5 }, () => rng.normal());
  const results: Record<string, Float32Array[]> = {};
  for (const be of ["cpu", "wasm"] as const) {
    await initBackend(be);
    const out = tf.tidy(() => {
      const E = tf.tensor2d(e, [50, 6]);
      const w = tf.tensor2d(Float32Array.from({ length: 40 * 6 }, (_, i) => (i % 13) - 6), [40, 6]);
      const g = tf.grad((x: tf.Tensor) =>
        tf.sum(tf.mul(tf.gather(x, tf.tensor1d(ids, "int32")), w))
      )(E);
      const A = tf.tensor2d(a, [7, 5]);
      const B = tf.tensor2d(b, [9, 5]);
      return [
        g,
        tf.matMul(A, B, false, true),
        tf.matMul(tf.transpose(A), tf.transpose(B), true, false),
        tf.matMul(tf.reshape(A, [1, 7, 5]), tf.reshape(B, [1, 9, 5]), false, true),
      ];
    });
    results[be] = await Promise.all(out.map(async (t) => (await t.data()) as Float32Array));
    tf.dispose(out);
  }
  for (let k = 0; k < results.cpu.length; k++) {
    const [c, w] = [results.cpu[k], results.wasm[k]];
    assert.equal(c.length, w.length);
    for (let i = 0; i < c.length; i++) {
      assert.ok(
        Math.abs(c[i] - w[i]) <= 1e-4 * Math.max(1, Math.abs(c[i])),
        `output ${k}[${i}]: ${c[i]} vs ${w[i]}`,
      );
    }
  }
});

Deno.test("ml/wasm: cpu and wasm give the same 20-step loss curve (|diff| < 1e-3)", async () => {
  for (const sim of ["clip", "kme"] as const) {
    const cpu = await curve("cpu", sim);
    const wasm = await curve("wasm", sim);
    assert.equal(cpu.losses.length, 20);
    const maxDiff = Math.max(...cpu.losses.map((l, i) => Math.abs(l - wasm.losses[i])));
    console.log(`  ${sim}: max |loss_cpu - loss_wasm| over 20 steps = ${maxDiff.toExponential(2)}`);
    assert.ok(maxDiff < 1e-3, `${sim}: curves differ by ${maxDiff}`);
  }
});

Deno.test("ml/wasm: same seed gives bit-identical weights on single-threaded wasm", async () => {
  const a = await curve("wasm", "kme", { steps: 8 });
  const b = await curve("wasm", "kme", { steps: 8 });
  assert.deepEqual(a.losses, b.losses);
  for (const [k, v] of a.weights) assert.deepEqual(v, b.weights.get(k), k);
});

Deno.test("ml/wasm: tensor count and backend bytes stay flat over 200 steps", async () => {
  await initBackend("wasm");
  const before = tf.memory().numTensors;
  const model = ClipModel.create(tinyConfig("kme", vocab.size, { points: "queries" }), 5);
  const counts: number[] = [];
  const bytes: number[] = [];
  await train({
    model,
    source: source(4),
    options: { ...OPTS, steps: 200, logEvery: 50 },
    onStep: () => {
      counts.push(tf.memory().numTensors);
      bytes.push(tf.memory().numBytes);
    },
  });
  assert.equal(counts.length, 200);
  assert.equal(new Set(counts).size, 1, `tensor counts vary: ${[...new Set(counts)]}`);
  assert.equal(new Set(bytes).size, 1, `tensor bytes vary: ${[...new Set(bytes)]}`);
  model.dispose();
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("ml/wasm: loss falls well below log(batch) on the toy task, clip and kme", async () => {
  const batch = 32;
  for (const sim of ["clip", "kme"] as const) {
    const r = await curve("wasm", sim, { steps: 200, warmup: 10, weightDecay: 0.01 }, batch);
    const first = r.losses[0];
    console.log(
      `  ${sim}: loss ${first.toFixed(3)} -> ${r.finalLoss.toFixed(3)} (log B = ${
        Math.log(batch).toFixed(3)
      })`,
    );
    assert.ok(r.finalLoss < 0.45 * Math.log(batch), `${sim}: final loss ${r.finalLoss}`);
  }
});
