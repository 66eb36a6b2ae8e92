/**
 * wasm backend: kernel patches, agreement with cpu, determinism (also across thread counts), no
 * leaks over 200 steps, and learnability of a toy task for clip and kme (run on wasm because it
 * is much faster than cpu).
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { fileURLToPath } from "node:url";
import { initBackend, resolveBackendName } from "../stages/lib/tf/backend.ts";
import { BatchSource } from "../stages/lib/model/data.ts";
import { ContrastiveModel } from "../stages/lib/model/model.ts";
import { keyedRng } from "../stages/lib/random.ts";
import { tinyConfig, toySplit, toyTrainOptions } from "../stages/lib/model/toy.ts";
import { train, type TrainOptions } from "../stages/lib/model/train.ts";
import { Vocab } from "../stages/lib/model/vocab.ts";
import type { BuiltinSimilarityName } from "../stages/lib/similarity/registry.ts";

const OPTS: TrainOptions = toyTrainOptions({ steps: 20, warmup: 5, logEvery: 10 });

const split = toySplit(512, 21);
const vocab = Vocab.build(split.captions.map((c) => c.text), { maxSize: 64, minCount: 1 });
const source = (batchSize: number) =>
  new BatchSource(split, vocab, { batchSize, maxLen: 8, seed: 9, imageBytes: 16 * 16 * 3 });

async function curve(
  backend: "cpu" | "wasm",
  sim: BuiltinSimilarityName,
  opts: Partial<TrainOptions> = {},
  batch = 8,
): Promise<{ losses: number[]; weights: Map<string, Float32Array>; finalLoss: number }> {
  await initBackend(backend);
  const model = ContrastiveModel.create(tinyConfig(sim, vocab.size), 5);
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

Deno.test("ml/wasm: patched kernels (segment sum for gather's gradient, transposed matmul, cos, sin) match cpu", async () => {
  const rng = keyedRng(4);
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
        // WPSE's random features: cos of large angles, and its gradient (through sin).
        tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.cos(tf.mul(x, 9)), tf.sin(x))))(A),
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
  for (const sim of ["clip", "kme", "wpse"] as const) {
    const cpu = await curve("cpu", sim);
    const wasm = await curve("wasm", sim);
    assert.equal(cpu.losses.length, 20);
    const maxDiff = Math.max(...cpu.losses.map((l, i) => Math.abs(l - wasm.losses[i])));
    console.log(`  ${sim}: max |loss_cpu - loss_wasm| over 20 steps = ${maxDiff.toExponential(2)}`);
    assert.ok(maxDiff < 1e-3, `${sim}: curves differ by ${maxDiff}`);
  }
});

Deno.test("ml/wasm: same seed gives bit-identical weights on wasm", async () => {
  const a = await curve("wasm", "kme", { steps: 8 });
  const b = await curve("wasm", "kme", { steps: 8 });
  assert.deepEqual(a.losses, b.losses);
  for (const [k, v] of a.weights) assert.deepEqual(v, b.weights.get(k), k);
});

Deno.test("ml/wasm: tensor count and backend bytes stay flat over 200 steps", async () => {
  await initBackend("wasm");
  const before = tf.memory().numTensors;
  const model = ContrastiveModel.create(tinyConfig("kme", vocab.size, { points: "queries" }), 5);
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

Deno.test("ml/wasm: JS kernels (transpose, slice/split, reductions, gather, transposed matmul) match cpu", async () => {
  const rng = keyedRng(17);
  const fill = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
  const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
  type Case = (t: typeof tf) => tf.Tensor | tf.Tensor[];
  const cases: [string, Case, boolean][] = []; // [name, f, exact]
  const tr: [number[], number[]][] = [
    [[300, 70], [1, 0]], // plane >= 16K: tiled JS transpose
    [[3, 150, 130], [0, 2, 1]],
    [[5, 140, 1, 130], [3, 2, 0, 1]],
    [[4, 6, 3, 5, 7], [2, 0, 3, 1, 4]], // rank 5: JS run copies
    [[2, 3, 4, 5, 6, 3], [5, 4, 3, 2, 1, 0]],
    [[6, 5, 4, 3, 2], [0, 1, 2, 4, 3]],
    [[7, 9], [1, 0]], // small: stays on the wasm kernel
  ];
  for (const [shape, perm] of tr) {
    const v = fill(size(shape));
    cases.push([`transpose ${shape} ${perm}`, (t) => t.transpose(t.tensor(v, shape), perm), true]);
    cases.push([
      `transpose int32 ${shape}`,
      (t) =>
        t.transpose(
          t.tensor(Int32Array.from(v, (x) => Math.round(x * 1000)), shape, "int32"),
          perm,
        ),
      true,
    ]);
  }
  for (
    const [shape, begin, sz] of [
      [[1000], [3], [900]],
      [[20, 30], [2, 5], [10, -1]],
      [[4, 5, 6, 7], [1, 0, 2, 3], [2, 5, 3, 4]],
      [[3, 4, 5, 6, 7], [0, 1, 0, 2, 0], [3, 2, 5, 3, 7]],
    ] as [number[], number[], number[]][]
  ) {
    const v = fill(size(shape));
    cases.push([`slice ${shape}`, (t) => t.slice(t.tensor(v, shape), begin, sz), true]);
    cases.push([`split ${shape}`, (t) => t.split(t.tensor(v, shape), [1, shape[0] - 1], 0), true]);
    cases.push([
      `split last ${shape}`,
      (t) => t.split(t.tensor(v, shape), [1, shape.at(-1)! - 1], -1),
      true,
    ]);
  }
  const big = fill(300 * 80);
  const b3 = fill(7 * 130 * 40);
  cases.push(["sum axis 0", (t) => t.sum(t.tensor(big, [300, 80]), 0), false]);
  cases.push(["mean axis 0 keepDims", (t) => t.mean(t.tensor(big, [300, 80]), 0, true), false]);
  cases.push(["max axes 0,2", (t) => t.max(t.tensor(b3, [7, 130, 40]), [0, 2]), true]);
  cases.push(["min axis 1", (t) => t.min(t.tensor(b3, [7, 130, 40]), 1), true]);
  const e = fill(50 * 70);
  const idx = Int32Array.from({ length: 33 }, () => rng.int(50));
  cases.push([
    "gather axis 0",
    (t) => t.gather(t.tensor(e, [50, 70]), t.tensor1d(idx, "int32")),
    true,
  ]);
  cases.push([
    "gather axis 1 2-D indices",
    (t) =>
      t.gather(
        t.tensor(e, [5, 10, 70]),
        t.tensor2d(Int32Array.from(idx.slice(0, 6), (i) => i % 10), [2, 3], "int32"),
        1,
      ),
    true,
  ]);
  // Transposed products on both sides of the cost model (swapped or not).
  for (const [m, k, n] of [[200, 300, 40], [40, 300, 200], [64, 500, 64], [300, 20, 300]]) {
    const a = fill(m * k);
    const b = fill(k * n);
    cases.push([
      `A^T B ${m},${k},${n}`,
      (t) => t.matMul(t.tensor(a, [k, m]), t.tensor(b, [k, n]), true, false),
      false,
    ]);
    cases.push([
      `A B^T ${m},${k},${n}`,
      (t) => t.matMul(t.tensor(a, [m, k]), t.tensor(b, [n, k]), false, true),
      false,
    ]);
    cases.push([
      `A^T B^T ${m},${k},${n}`,
      (t) => t.matMul(t.tensor(a, [k, m]), t.tensor(b, [n, k]), true, true),
      false,
    ]);
    cases.push([
      `batched A B^T ${m},${k},${n}`,
      (t) => t.matMul(t.tensor(a, [2, m / 2, k]), t.tensor(b, [2, n / 2, k]), false, true),
      false,
    ]);
  }
  const results: Record<string, Float32Array[][]> = {};
  for (const be of ["cpu", "wasm"] as const) {
    await initBackend(be);
    results[be] = [];
    for (const [, f] of cases) {
      const out = tf.tidy(() => [f(tf)].flat());
      results[be].push(await Promise.all(out.map(async (t) => Float32Array.from(await t.data()))));
      tf.dispose(out);
    }
  }
  cases.forEach(([name, , exact], i) => {
    const [c, w] = [results.cpu[i], results.wasm[i]];
    assert.equal(c.length, w.length, name);
    c.forEach((cc, j) => {
      if (exact) assert.deepEqual(w[j], cc, name);
      else {
        for (let q = 0; q < cc.length; q++) {
          assert.ok(
            Math.abs(cc[q] - w[j][q]) <= 1e-4 * Math.max(1, Math.abs(cc[q])),
            `${name}[${q}]`,
          );
        }
      }
    });
  });
  await initBackend("wasm");
  assert.throws(() => tf.gather(tf.ones([4, 2]), tf.tensor1d([4], "int32")), /index 4/);
});

// Child mode for the next test: train a few steps with $KME_WASM_THREADS and print a digest.
if (Deno.env.get("KME_TEST_WASM_CHILD") === "1") {
  const info = await initBackend("wasm");
  const r = await curve("wasm", "kme", { steps: 6 });
  const bytes = new Uint8Array(
    [...r.weights.values()].flatMap((
      v,
    ) => [...new Uint8Array(v.buffer, v.byteOffset, v.byteLength)]),
  );
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  console.log(JSON.stringify({
    threads: info.threads,
    losses: r.losses,
    sha256: [...digest].map((x) => x.toString(16).padStart(2, "0")).join(""),
  }));
  Deno.exit(0);
}

Deno.test("ml/wasm: 1 and 2 XNNPACK threads give bit-identical training", async () => {
  const run = async (threads: number) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "--quiet", fileURLToPath(import.meta.url)],
      env: { KME_TEST_WASM_CHILD: "1", KME_WASM_THREADS: String(threads) },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
  };
  const one = await run(1);
  const two = await run(2);
  assert.equal(one.threads, 1);
  assert.equal(two.threads, 2, "the threaded wasm module should run 2 XNNPACK threads");
  assert.deepEqual(two.losses, one.losses);
  assert.equal(two.sha256, one.sha256);
});
