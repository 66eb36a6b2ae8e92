/**
 * webgpu backend (Deno's navigator.gpu): same loss curve as cpu within a tolerance.
 * Skipped, with the reason printed, when no adapter is available.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../stages/lib/tf/backend.ts";
import { adapter, webgpuTest } from "./helpers/webgpu.ts";
import { BatchSource } from "../stages/lib/model/data.ts";
import { ContrastiveModel } from "../stages/lib/model/model.ts";
import { tinyConfig, toySplit, toyTrainOptions } from "../stages/lib/model/toy.ts";
import { train, type TrainOptions } from "../stages/lib/model/train.ts";
import { Vocab } from "../stages/lib/model/vocab.ts";

if (adapter === undefined) {
  console.log("ml_webgpu: skipped: navigator.gpu gives no adapter on this machine");
} else {
  console.log(`ml_webgpu: adapter ${adapter}`);
}

const OPTS: TrainOptions = toyTrainOptions({ logEvery: 5 });

webgpuTest(
  "ml/webgpu: cpu and webgpu give the same 6-step loss curve (|diff| < 1e-3)",
  async () => {
    const split = toySplit(64, 3);
    const vocab = Vocab.build(split.captions.map((c) => c.text), { maxSize: 64, minCount: 1 });
    const curves: Record<string, number[]> = {};
    for (const be of ["cpu", "webgpu"] as const) {
      const info = await initBackend(be);
      assert.equal(tf.getBackend(), be);
      if (be === "webgpu") assert.ok(info.adapter);
      for (const sim of ["clip", "kme"] as const) {
        const model = ContrastiveModel.create(tinyConfig(sim, vocab.size), 5);
        const losses: number[] = [];
        await train({
          model,
          source: new BatchSource(split, vocab, {
            batchSize: 8,
            maxLen: 8,
            seed: 2,
            imageBytes: 768,
          }),
          options: OPTS,
          onStep: (_s, l) => losses.push(l),
        });
        model.dispose();
        curves[`${be}/${sim}`] = losses;
      }
    }
    for (const sim of ["clip", "kme"]) {
      const c = curves[`cpu/${sim}`];
      const g = curves[`webgpu/${sim}`];
      const maxDiff = Math.max(...c.map((l, i) => Math.abs(l - g[i])));
      console.log(
        `  ${sim}: max |loss_cpu - loss_webgpu| over 6 steps = ${maxDiff.toExponential(2)}`,
      );
      assert.ok(maxDiff < 1e-3, `${sim}: curves differ by ${maxDiff}`);
    }
  },
);

webgpuTest(
  "ml/webgpu: a tensor above the adapter's storage binding limit is an error, not garbage",
  async () => {
    await initBackend("webgpu");
    const backend = tf.backend() as unknown as {
      device: { limits: { maxStorageBufferBindingSize: number } };
    };
    const limit = backend.device.limits.maxStorageBufferBindingSize;
    if (limit > 2 ** 30) {
      console.log(`binding limit ${limit} B: too large to exceed in a test; not checked`);
      return;
    }
    const n = limit / 4 + 1024; // f32 elements: just over the limit
    assert.throws(
      () => tf.fill([n], 1.5),
      /webgpu: a [\d.]+ MiB tensor exceeds this adapter's maxStorageBufferBindingSize/,
    );
    const ok = tf.add(tf.fill([1024], 2), 1); // the backend still works after the refusal
    assert.deepEqual([...(await ok.data()).slice(0, 2)], [3, 3]);
    ok.dispose();
  },
);

async function trainWebgpu(
  sim: "clip" | "kme",
  o: { steps: number; stopAfter?: number; ckpt?: string; modelSeed?: number; lr?: number },
) {
  const split = toySplit(64, 3);
  const vocab = Vocab.build(split.captions.map((c) => c.text), { maxSize: 64, minCount: 1 });
  const model = ContrastiveModel.create(tinyConfig(sim, vocab.size), o.modelSeed ?? 5);
  const losses: number[] = [];
  const r = await train({
    model,
    source: new BatchSource(split, vocab, { batchSize: 8, maxLen: 8, seed: 2, imageBytes: 768 }),
    options: { ...OPTS, steps: o.steps, logEvery: 4, checkpointEvery: 0, lr: o.lr ?? OPTS.lr },
    checkpointDir: o.ckpt,
    stopAfter: o.stopAfter,
    onStep: (_s, l) => losses.push(l),
  });
  const weights = new Map<string, Float32Array>();
  for (const s of model.params.specs) {
    weights.set(s.name, (await model.params.get(s.name).data()) as Float32Array);
  }
  model.dispose();
  return { r, losses, weights };
}

webgpuTest(
  "ml/webgpu: K steps + checkpoint + fresh state + N-K steps == N steps, bit for bit",
  async () => {
    await initBackend("webgpu");
    for (const sim of ["clip", "kme"] as const) {
      const dir = await Deno.makeTempDir();
      try {
        // Losses are read on logging steps only (every 4th here): the stop at step 3 and the
        // end read the rest, so every step's loss still arrives, in order.
        const straight = await trainWebgpu(sim, { steps: 7 });
        const first = await trainWebgpu(sim, { steps: 7, stopAfter: 3, ckpt: dir });
        assert.equal(first.r.steps, 3);
        const second = await trainWebgpu(sim, { steps: 7, ckpt: dir, modelSeed: 99 });
        assert.equal(second.r.resumedFrom, 3);
        assert.deepEqual([...first.losses, ...second.losses], straight.losses, sim);
        for (const [name, w] of straight.weights) {
          assert.deepEqual(second.weights.get(name), w, `${sim}: ${name} after resume`);
        }
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    }
  },
);

webgpuTest(
  "ml/webgpu: a NaN loss, read only on a logging step, stops training before any " +
    "checkpoint",
  async () => {
    await initBackend("webgpu");
    const dir = await Deno.makeTempDir();
    try {
      // lr = NaN makes every weight NaN after the first update, so step 2's loss is NaN;
      // the loop learns it at step 4 (its first logging step), never checkpointed it.
      await assert.rejects(
        trainWebgpu("clip", { steps: 8, ckpt: dir, lr: NaN }),
        /loss is NaN at step 2/,
      );
      assert.deepEqual([...Deno.readDirSync(dir)], [], "no checkpoint written");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
