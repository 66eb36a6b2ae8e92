import assert from "node:assert/strict";
import { evaluateZeroShot, kernelClassPointSets } from "../stages/lib/eval/zeroshot.ts";
import { classEmbeddings } from "../stages/lib/similarity/clip.ts";
import type { PointSets } from "../stages/lib/similarity/similarity.ts";
import { kmeScorer } from "./helpers/point_sets.ts";
import { matrixScorer } from "../stages/lib/eval/retrieval/mod.ts";
import { Rng } from "../stages/lib/random.ts";

Deno.test("CLIP prompt pooling: normalise(mean of normalised prompts)", () => {
  // class 0: prompts (2, 0) and (0, 3) -> mean of unit vectors (0.5, 0.5) -> (1, 1)/sqrt 2
  // class 1: one prompt (0, -5) -> (0, -1)
  const prompts = Float32Array.from([2, 0, 0, -5, 0, 3]);
  const promptClass = Int32Array.from([0, 1, 0]);
  const out = classEmbeddings(prompts, 2, promptClass, 2);
  const r = Math.SQRT1_2;
  for (const [k, e] of [r, r, 0, -1].entries()) assert.ok(Math.abs(out[k] - e) < 1e-7, `${out}`);
  // A class without prompts, or a prompt of no class, is refused.
  assert.throws(() => classEmbeddings(prompts, 2, promptClass, 3), /class 2 has no prompt/);
  assert.throws(
    () => classEmbeddings(prompts, 2, Int32Array.from([0, 1, 2]), 2),
    /promptClass\[2\] = 2 outside/,
  );
});

function randomSets(n: number, P: number, d: number, seed: number, pad = 0): PointSets {
  const r = new Rng(seed);
  const data = new Float32Array(n * P * d);
  for (let q = 0; q < n * P; q++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += (data[q * d + k] = r.float() * 2 - 1) ** 2;
    for (let k = 0; k < d; k++) data[q * d + k] /= Math.sqrt(s);
  }
  const logits = new Float32Array(n * P).map((_, k) =>
    k % P >= P - pad ? -Infinity : r.float() * 2 - 1
  );
  return { n, points: P, dim: d, data, logits };
}

Deno.test("KME prompt pooling: s(x, class) = log mean_t exp(s(x, prompt_t))", async () => {
  const d = 8, sigma2 = 0.25;
  const images = randomSets(4, 3, d, 1);
  const prompts = randomSets(5, 4, d, 2, 1); // 5 prompts with a padding point each
  const promptClass = Int32Array.from([1, 0, 1, 1, 0]); // class 0: 2 prompts, class 1: 3
  const classes = kernelClassPointSets(prompts, promptClass, 2);
  assert.equal(classes.points, 12); // 3 prompts x 4 points, class 0 padded
  for (const backend of ["wasm", "js"] as const) {
    const perPrompt = (await kmeScorer(images, prompts, sigma2, backend)).scoreBlock(0, 4, 0, 5);
    const pooled = (await kmeScorer(images, classes, sigma2, backend)).scoreBlock(0, 4, 0, 2);
    for (let i = 0; i < 4; i++) {
      for (let c = 0; c < 2; c++) {
        const own = [...promptClass.keys()].filter((t) => promptClass[t] === c);
        const mean = own.reduce((s, t) => s + Math.exp(perPrompt[i * 5 + t]), 0) / own.length;
        const expected = Math.log(mean);
        assert.ok(
          Math.abs(pooled[i * 2 + c] - expected) < 1e-5 * Math.max(1, Math.abs(expected)),
          `${backend} (${i},${c}): ${pooled[i * 2 + c]} vs ${expected}`,
        );
      }
    }
  }
  // Class weights are normalised: sum of exp(logits) per class is 1.
  for (let c = 0; c < 2; c++) {
    let s = 0;
    for (let q = 0; q < 12; q++) s += Math.exp(classes.logits[c * 12 + q]);
    assert.ok(Math.abs(s - 1) < 1e-6);
  }
});

Deno.test("evaluateZeroShot: top-1, top-5, mean per-class recall, pessimistic ties", async () => {
  // 6 classes, 5 images; labels [0, 0, 1, 2, 5].
  const S = Float32Array.from([
    [9, 1, 1, 1, 1, 1], // label 0: rank 1
    [5, 5, 1, 1, 1, 1], // label 0: tie with class 1 -> rank 2
    [1, 2, 3, 4, 5, 6], // label 1: rank 5
    [1, 1, 0, 1, 1, 1], // label 2: rank 6
    [0, 0, 0, 0, 0, 7], // label 5: rank 1
  ].flat());
  const labels = Int32Array.from([0, 0, 1, 2, 5]);
  const r = await evaluateZeroShot(S, labels, 6);
  assert.deepEqual([...r.ranks], [1, 2, 5, 6, 1]);
  assert.equal(r.top1, 40);
  assert.equal(r.top5, 80);
  // recalls: class 0 1/2, class 1 0, class 2 0, class 5 1 -> mean over 4 classes with images
  assert.equal(r.meanPerClassRecall, (100 * (0.5 + 0 + 0 + 1)) / 4);
  assert.equal((r.protocol.counts as { classesWithImages: number }).classesWithImages, 4);
  // Through a block scorer: the same.
  const viaScorer = await evaluateZeroShot(matrixScorer(S, 5, 6), labels, 6, { imageBlock: 2 });
  assert.deepEqual(viaScorer.ranks, r.ranks);
  // Fewer than 5 classes: no top-5.
  const small = await evaluateZeroShot(Float32Array.from([1, 0, 0, 1]), Int32Array.from([0, 0]), 2);
  assert.equal(small.top5, null);
  assert.equal(small.top1, 50);
  await assert.rejects(evaluateZeroShot(S, Int32Array.from([0, 0, 1, 2, 6]), 6), /outside/);
});
