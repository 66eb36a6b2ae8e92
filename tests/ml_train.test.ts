/**
 * Training library on the cpu backend: PRNG, vocabulary, data order, schedule, determinism,
 * checkpoint/resume bit-identity, no tensor leaks, model save/load round trip.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../stages/lib/tf/backend.ts";
import { BatchSource } from "../stages/lib/model/data.ts";
import { encodeImages, encodeTexts, loadModel, saveModel } from "../stages/lib/model/io.ts";
import { ContrastiveModel } from "../stages/lib/model/model.ts";
import { learningRate } from "../stages/lib/model/optim.ts";
import { keyedRng, keySeed, permutation, Rng } from "../stages/lib/random.ts";
import { tinyConfig, toySplit, toyTrainOptions } from "../stages/lib/model/toy.ts";
import { train, type TrainOptions } from "../stages/lib/model/train.ts";
import { OOV, PAD, Vocab, words } from "../stages/lib/model/vocab.ts";
import type { BuiltinSimilarityName } from "../stages/lib/similarity/registry.ts";

await initBackend("cpu");

const OPTS: TrainOptions = toyTrainOptions({});

const split = toySplit(64, 11);
const vocab = Vocab.build(split.captions.map((c) => c.text), { maxSize: 64, minCount: 1 });
const source = (batchSize = 8, seed = 5) =>
  new BatchSource(split, vocab, { batchSize, maxLen: 8, seed, imageBytes: 16 * 16 * 3 });

async function weightsOf(model: ContrastiveModel): Promise<Map<string, Float32Array>> {
  return await model.params.read();
}

function assertSameWeights(
  a: Map<string, Float32Array>,
  b: Map<string, Float32Array>,
  what: string,
) {
  assert.deepEqual([...a.keys()], [...b.keys()]);
  for (const [k, v] of a) {
    const w = b.get(k)!;
    assert.equal(v.length, w.length);
    for (let i = 0; i < v.length; i++) {
      if (!Object.is(v[i], w[i])) assert.fail(`${what}: ${k}[${i}] ${v[i]} != ${w[i]}`);
    }
  }
}

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "ml_train_" });
}

Deno.test("ml/prng: xoshiro state round-trips; derived streams are stable", () => {
  const r = keyedRng(42, 1, 2);
  for (let i = 0; i < 10; i++) r.u32();
  const s = r.state();
  const a = Array.from({ length: 5 }, () => r.u32());
  const r2 = Rng.fromState(s);
  assert.deepEqual(Array.from({ length: 5 }, () => r2.u32()), a);
  assert.notEqual(keySeed(1, 2), keySeed(1, 3));
  assert.notEqual(keySeed(1, 2, 3), keySeed(1, 3, 2));
  const p = permutation(100, 7, 0);
  assert.deepEqual([...p].sort((x, y) => x - y), [...Array(100).keys()]);
  assert.deepEqual(permutation(100, 7, 0), p);
  assert.notDeepEqual(permutation(100, 7, 1), p);
  // uniformity smoke check of int(): all 6 values appear roughly equally
  const counts = new Array(6).fill(0);
  const g = keyedRng(3);
  for (let i = 0; i < 6000; i++) counts[g.int(6)]++;
  for (const c of counts) assert.ok(c > 850 && c < 1150, `counts ${counts}`);
});

Deno.test("ml/vocab: lowercase letter runs, PAD=0 OOV=1, frequency order, padding", () => {
  assert.deepEqual(words("A man's 2 dogs, RUNNING-fast!"), [
    "a",
    "man",
    "s",
    "dogs",
    "running",
    "fast",
  ]);
  assert.deepEqual(words("Café über"), ["café", "über"]);
  const v = Vocab.build(["b a a", "c a b", "d"], { maxSize: 4, minCount: 1 });
  assert.deepEqual(v.tokens, ["<pad>", "<oov>", "a", "b"]);
  assert.deepEqual([...v.encode("A b zzz", 5)], [2, 3, OOV, PAD, PAD]);
  assert.deepEqual([...v.encode("a a a a a a", 3)], [2, 2, 2]);
  assert.deepEqual([...v.encode("123 !!", 3)], [OOV, PAD, PAD], "no words -> one OOV token");
  const m = Vocab.build(["x y y", "y z"], { maxSize: 100, minCount: 2 });
  assert.deepEqual(m.tokens, ["<pad>", "<oov>", "y"]);
});

Deno.test("ml/data: batches are a pure function of (seed, step); epochs are permutations", async () => {
  const s1 = source(8, 5);
  const s2 = source(8, 5);
  assert.equal(s1.batchesPerEpoch, 8);
  const seen = new Set<number>();
  for (let step = 0; step < 8; step++) {
    const b1 = await s1.batch(step);
    const b2 = await s2.batch(step);
    assert.deepEqual(b1.imageIndex, b2.imageIndex);
    assert.deepEqual(b1.ids, b2.ids);
    assert.deepEqual(b1.images, b2.images);
    for (const i of b1.imageIndex) seen.add(i);
  }
  assert.equal(seen.size, 64, "one epoch covers every image once");
  // Random access equals sequential access (resume needs no replay).
  const late = await source(8, 5).batch(13);
  for (let s = 0; s < 13; s++) await s1.batch(s);
  assert.deepEqual((await s1.batch(13)).ids, late.ids);
  assert.notDeepEqual((await s1.batch(8)).imageIndex, (await s1.batch(0)).imageIndex);
  assert.notDeepEqual((await source(8, 6).batch(0)).imageIndex, (await s1.batch(0)).imageIndex);
  assert.throws(() => source(65), /batch size 65 exceeds the 64/);
});

Deno.test("ml/optim: warm-up then cosine schedule", () => {
  const c = { lr: 1, warmup: 4, steps: 14, minLrRatio: 0.1 };
  assert.deepEqual([0, 1, 2, 3].map((s) => learningRate(s, c)), [0.25, 0.5, 0.75, 1]);
  assert.ok(Math.abs(learningRate(9, c) - 0.55) < 1e-12, "half-way through the cosine");
  assert.ok(Math.abs(learningRate(14, c) - 0.1) < 1e-12);
  for (let s = 4; s < 14; s++) assert.ok(learningRate(s + 1, c) <= learningRate(s, c));
});

async function run(
  sim: BuiltinSimilarityName,
  opts: Partial<TrainOptions> & { stopAfter?: number; ckpt?: string; modelSeed?: number } = {},
) {
  const model = ContrastiveModel.create(tinyConfig(sim, vocab.size), opts.modelSeed ?? 3);
  const losses: number[] = [];
  const r = await train({
    model,
    source: source(),
    options: { ...OPTS, ...opts },
    checkpointDir: opts.ckpt,
    stopAfter: opts.stopAfter,
    onStep: (_s, loss) => losses.push(loss),
  });
  const w = await weightsOf(model);
  model.dispose();
  return { r, w, losses };
}

Deno.test("ml/train: same seed gives bit-identical weights on cpu (clip, kme, wpse)", async () => {
  for (const sim of ["clip", "kme", "wpse"] as const) {
    const a = await run(sim);
    const b = await run(sim);
    assertSameWeights(a.w, b.w, sim);
    assert.deepEqual(a.losses, b.losses);
    const c = await run(sim, { modelSeed: 4 });
    assert.notDeepEqual(c.losses, a.losses, "another seed differs");
  }
});

Deno.test("ml/train: K steps + checkpoint + fresh state + N-K steps == N steps, bit for bit", async () => {
  // wpse: its random features are redrawn every step from (seed, step) alone.
  for (const sim of ["clip", "kme", "wpse"] as const) {
    const dir = await tempDir();
    try {
      const straight = await run(sim, { steps: 7, checkpointEvery: 0 });
      const first = await run(sim, { steps: 7, stopAfter: 3, ckpt: dir });
      assert.equal(first.r.stopped, true);
      assert.equal(first.r.steps, 3);
      // Fresh model from another seed: every weight must come from the checkpoint.
      const second = await run(sim, { steps: 7, ckpt: dir, modelSeed: 99 });
      assert.equal(second.r.resumedFrom, 3);
      assert.equal(second.r.steps, 7);
      assertSameWeights(straight.w, second.w, `${sim} resumed`);
      assert.deepEqual([...first.losses, ...second.losses], straight.losses);
      // Periodic checkpoints leave exactly one header and one binary.
      const files = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
      assert.deepEqual(files, ["checkpoint-00000007.bin", "checkpoint.json"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test("ml/train: abort writes a checkpoint, then throws", async () => {
  const dir = await tempDir();
  try {
    const ac = new AbortController();
    const model = ContrastiveModel.create(tinyConfig("kme", vocab.size), 3);
    await assert.rejects(
      train({
        model,
        source: source(),
        options: { ...OPTS, steps: 10 },
        checkpointDir: dir,
        signal: ac.signal,
        onStep: (s) => {
          if (s === 2) ac.abort(new Error("SIGINT"));
        },
      }),
      /SIGINT/,
    );
    model.dispose();
    const h = JSON.parse(await Deno.readTextFile(join(dir, "checkpoint.json")));
    assert.equal(h.step, 2);
    assert.equal(h.cursor.step, 2);
    assert.equal(h.rng.kind, "counter");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ml/train: a damaged checkpoint is moved aside, named, and training starts over to the same weights", async () => {
  const straight = await run("kme", { steps: 6, checkpointEvery: 0 });
  const damages: [string, (dir: string) => Promise<void>][] = [
    ["flipped byte in the binary", async (dir) => {
      const h = JSON.parse(await Deno.readTextFile(join(dir, "checkpoint.json")));
      const bytes = await Deno.readFile(join(dir, h.binary.file));
      bytes[100] ^= 1;
      await Deno.writeFile(join(dir, h.binary.file), bytes);
    }],
    ["truncated header", async (dir) => {
      const text = await Deno.readTextFile(join(dir, "checkpoint.json"));
      await Deno.writeTextFile(join(dir, "checkpoint.json"), text.slice(0, 500));
    }],
    ["binary deleted", async (dir) => {
      const h = JSON.parse(await Deno.readTextFile(join(dir, "checkpoint.json")));
      await Deno.remove(join(dir, h.binary.file));
    }],
    ["a tensor of the wrong size", async (dir) => {
      const h = JSON.parse(await Deno.readTextFile(join(dir, "checkpoint.json")));
      h.tensors[0].length -= 1;
      await Deno.writeTextFile(join(dir, "checkpoint.json"), JSON.stringify(h));
    }],
  ];
  for (const [what, damage] of damages) {
    const parent = await tempDir();
    const dir = join(parent, "checkpoint");
    try {
      await run("kme", { steps: 6, stopAfter: 3, ckpt: dir });
      await damage(dir);
      const said: string[] = [];
      const model = ContrastiveModel.create(tinyConfig("kme", vocab.size), 3);
      const r = await train({
        model,
        source: source(),
        options: { ...OPTS, steps: 6, checkpointEvery: 0 },
        checkpointDir: dir,
        log: (s) => said.push(s),
      });
      assert.equal(r.resumedFrom, 0, what);
      assertSameWeights(straight.w, await weightsOf(model), what);
      model.dispose();
      const warning = said.find((s) => s.startsWith("warning: damaged checkpoint"));
      assert.ok(warning, `${what}: no warning in ${JSON.stringify(said)}`);
      assert.match(warning!, new RegExp(`${dir}/checkpoint[-.\\w]*(json|bin)`), what);
      assert.ok(
        [...Deno.readDirSync(parent)].some((e) => e.name.startsWith("checkpoint.damaged-")),
        `${what}: the damaged checkpoint is kept aside`,
      );
    } finally {
      await Deno.remove(parent, { recursive: true });
    }
  }
});

Deno.test("ml/train: tensor count stays flat across steps (cpu, 30 steps)", async () => {
  const before = tf.memory().numTensors;
  const model = ContrastiveModel.create(tinyConfig("kme", vocab.size, { points: "queries" }), 3);
  const counts: number[] = [];
  await train({
    model,
    source: source(4),
    options: { ...OPTS, steps: 30, logEvery: 10 },
    onStep: () => counts.push(tf.memory().numTensors),
  });
  assert.equal(new Set(counts).size, 1, `tensor counts vary: ${[...new Set(counts)]}`);
  model.dispose();
  assert.equal(tf.memory().numTensors, before, "model and optimizer disposed");
});

Deno.test("ml/train: the next batch is requested before a step finishes (reads overlap compute)", async () => {
  const model = ContrastiveModel.create(tinyConfig("clip", vocab.size), 3);
  const src = source(4);
  const events: string[] = [];
  const batch = src.batch.bind(src);
  src.batch = (step: number) => {
    events.push(`read ${step}`);
    return batch(step);
  };
  await train({
    model,
    source: src,
    options: { ...OPTS, steps: 4, logEvery: 10 },
    onStep: (step) => events.push(`step ${step}`),
  });
  // onStep(k) reports update k (1-based), computed from batch k - 1.
  assert.deepEqual(events, [
    "read 0",
    "read 1",
    "step 1",
    "read 2",
    "step 2",
    "read 3",
    "step 3",
    "step 4",
  ]);
  model.dispose();
});

Deno.test("ml/io: saved model reloads to identical point sets and logits", async () => {
  const dir = await tempDir();
  try {
    for (
      const [sim, points] of [["kme", "queries"], ["wpse", "tokens"], ["clip", "tokens"]] as const
    ) {
      const model = ContrastiveModel.create(tinyConfig(sim, vocab.size, { points }), 8);
      const header = await saveModel(dir, model, vocab, { steps: 0 });
      assert.equal(header.format, "kme-clip-model");
      const loaded = await loadModel(dir);
      assert.deepEqual(loaded.vocab.tokens, vocab.tokens);
      assert.deepEqual(loaded.model.config, model.config);
      const imgs = await split.readImages(0, 4);
      const texts = split.captions.slice(0, 4).map((c) => c.text);
      const la = tf.tidy(() =>
        model.logits(encodeImages(model, imgs, 4), encodeTexts(model, vocab, texts))
      );
      const lb = tf.tidy(() =>
        loaded.model.logits(
          encodeImages(loaded.model, imgs, 4),
          encodeTexts(loaded.model, loaded.vocab, texts),
        )
      );
      assert.deepEqual(await la.data(), await lb.data());
      tf.dispose([la, lb]);
      model.dispose();
      loaded.model.dispose();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
