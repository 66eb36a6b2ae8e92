/** prepare/synthetic: exact PMI, agreement with sampling, determinism, dataset contents. */
import assert from "node:assert/strict";
import { join } from "node:path";
import stage from "../stages/prepare/synthetic/stage.ts";
import { ATTR_INDEX, parseAll, SceneModel } from "../stages/lib/synthetic/scene_model.ts";
import { Rng } from "../stages/lib/random.ts";
import { openDataset } from "../stages/lib/dataset/read.ts";
import { makeContext } from "./fixtures/data/context.ts";

const defaults = stage.params.parse({});
const model = new SceneModel({
  mention: defaults.mention,
  attribute_noise: defaults.attribute_noise,
});

Deno.test("synthetic model: exact distributions normalise; prior is non-uniform, non-factorised", () => {
  let total = 0;
  for (const l of model.logPs) total += Math.exp(l);
  assert.ok(Math.abs(total - 1) < 1e-12, `sum p(s) = ${total}`);
  for (const zi of [0, 17, 250, model.numLatents - 1]) {
    let sum = 0;
    for (let si = 0; si < model.numCaptionStructures; si++) {
      sum += Math.exp(model.logPsGivenZ[si * model.numLatents + zi]);
    }
    assert.ok(Math.abs(sum - 1) < 1e-12, `sum_s p(s|z=${zi}) = ${sum}`);
  }
  const prior = Array.from(model.prior);
  assert.ok(Math.max(...prior) / Math.min(...prior) > 5, "prior should be far from uniform");
  // p(shape, colour) != p(shape) p(colour)
  const joint = new Map<string, number>();
  const ps = [0, 0, 0, 0, 0, 0];
  const pc = [0, 0, 0, 0, 0, 0];
  model.prior.forEach((p, zi) => {
    const z = model.latent(zi);
    const s = z[ATTR_INDEX.shape];
    const c = z[ATTR_INDEX.colour];
    joint.set(`${s},${c}`, (joint.get(`${s},${c}`) ?? 0) + p);
    ps[s] += p;
    pc[c] += p;
  });
  assert.ok(joint.get("0,0")! > 1.5 * ps[0] * pc[0]);
  assert.ok(model.mutualInformation() > 1);
});

Deno.test("synthetic model: exact PMI matches the empirical PMI of 300k samples", () => {
  // Sample (z, caption text) from the generator itself, map each text back to its caption
  // structure (checking that the wording is unambiguous), and compare
  //   empirical PMI = log( n(z,s) N / (n(z) n(s)) )   with   exact log p(s|z) - log p(s).
  // Tolerance: |difference| <= 4 / sqrt(n(z,s)) + 0.02 nats
  // (about 4 standard errors of a log-count) for every cell with n(z,s) >= 200; over those
  // cells, mean of n * difference^2 < 2 (sampling noise alone gives ~1) and count-weighted mean
  // difference within +-0.01 nats. The cells checked must span PMI < 0 to > 2.
  const N = 300_000;
  const rng = new Rng(2024);
  const nZ = model.numLatents;
  const joint = new Map<number, number>();
  const nz = new Float64Array(nZ);
  const ns = new Float64Array(model.numCaptionStructures);
  const parsed = new Map<string, number>();
  for (let k = 0; k < N; k++) {
    const zi = model.sampleLatent(rng);
    const cap = model.sampleCaption(rng, zi);
    let si = parsed.get(cap.text);
    if (si === undefined) {
      const all = parseAll(cap.text);
      assert.equal(all.length, 1, `ambiguous or unparsable caption "${cap.text}"`);
      si = model.structureIndex(all[0]);
      parsed.set(cap.text, si);
    }
    assert.equal(si, cap.index);
    const key = si * nZ + zi;
    joint.set(key, (joint.get(key) ?? 0) + 1);
    nz[zi]++;
    ns[si]++;
  }
  let cells = 0;
  let lo = Infinity;
  let hi = -Infinity;
  let z2 = 0;
  let bias = 0;
  let weight = 0;
  for (const [key, n] of joint) {
    if (n < 200) continue;
    const zi = key % nZ;
    const si = Math.floor(key / nZ);
    const empirical = Math.log((n * N) / (nz[zi] * ns[si]));
    const exact = model.pmi(zi, si);
    const diff = Math.abs(empirical - exact);
    assert.ok(
      diff <= 4 / Math.sqrt(n) + 0.02,
      `cell z=${zi} s=${si}: n=${n} empirical ${empirical} exact ${exact}`,
    );
    cells++;
    lo = Math.min(lo, exact);
    hi = Math.max(hi, exact);
    z2 += (empirical - exact) ** 2 * n;
    bias += n * (empirical - exact);
    weight += n;
  }
  assert.ok(cells >= 100, `only ${cells} cells with enough samples`);
  // Standardised errors (empirical - exact) * sqrt(n) have mean square ~1 when the only error
  // is sampling noise; a wrong formula gives hundreds.
  assert.ok(z2 / cells < 2, `mean squared standardised error ${z2 / cells}`);
  assert.ok(Math.abs(bias / weight) < 0.01, `count-weighted mean error ${bias / weight}`);
  assert.ok(hi > 3, `checked PMIs only span ${lo}..${hi}`);

  // Rare (negative-PMI) pairs have too few samples per cell: pool the cells into bins of exact
  // PMI and compare log( sum n(z,s) N / sum n(z) n(s) ) with log( sum p(z,s) / sum p(z)p(s) )
  // over each bin, within 4 / sqrt(sum n(z,s)) + 0.02 nats.
  const edges = [-Infinity, -4, -3, -2, -1, 0, 1, 2, 3, Infinity];
  const bins = edges.slice(1).map(() => ({ n: 0, nn: 0, p: 0, pp: 0 }));
  for (let si = 0; si < model.numCaptionStructures; si++) {
    const ps = Math.exp(model.logPs[si]);
    for (let zi = 0; zi < nZ; zi++) {
      const pmi = model.pmi(zi, si);
      const b = bins[edges.findIndex((e, k) => pmi >= e && pmi < edges[k + 1])];
      b.n += joint.get(si * nZ + zi) ?? 0;
      b.nn += (nz[zi] * ns[si]) / N;
      b.pp += model.prior[zi] * ps;
      b.p += model.prior[zi] * ps * Math.exp(pmi);
    }
  }
  let negative = 0;
  bins.forEach((b, k) => {
    if (b.n < 200) return;
    const empirical = Math.log(b.n / b.nn);
    const exact = Math.log(b.p / b.pp);
    assert.ok(
      Math.abs(empirical - exact) <= 4 / Math.sqrt(b.n) + 0.02,
      `PMI bin [${edges[k]}, ${edges[k + 1]}): n=${b.n} empirical ${empirical} exact ${exact}`,
    );
    if (exact < -2) negative++;
  });
  assert.ok(negative >= 2, "negative-PMI bins must be checked too");
  // Also the caption marginal itself: p(s) vs frequency for the frequent structures.
  for (let si = 0; si < ns.length; si++) {
    if (ns[si] < 2000) continue;
    assert.ok(Math.abs(Math.log(ns[si] / N) - model.logPs[si]) < 4 / Math.sqrt(ns[si]) + 0.01);
  }
});

const small = {
  counts: { train: 120, val: 30, test: 50 },
  captions_per_image: 2,
  grid_images: 40,
  grid_captions: 30,
};

async function runSynthetic(seed: number, params: Record<string, unknown> = small) {
  const ctx = await makeContext({ params: stage.params.parse(params), seed });
  await stage.run(ctx);
  return ctx;
}

async function readAll(dir: string): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(dir)) {
    files.set(e.name, await Deno.readFile(join(dir, e.name)));
  }
  return files;
}

Deno.test("synthetic stage: params have defaults and reject unknown keys", () => {
  assert.deepEqual(defaults.counts, { train: 20000, val: 1000, test: 1000 });
  assert.equal(defaults.image_size, 32);
  assert.equal(stage.params.parse({ mention: { size: 0.9 } }).mention.shape, 0.85);
  assert.throws(() => stage.params.parse({ count: 3 }));
  assert.throws(() => stage.params.parse({ attribute_noise: 0 }));
});

Deno.test("synthetic stage: same seed -> byte-identical files; other seed differs", async () => {
  const a = await runSynthetic(7);
  const b = await runSynthetic(7);
  const c = await runSynthetic(8);
  try {
    const fa = await readAll(a.outDir);
    const fb = await readAll(b.outDir);
    const fc = await readAll(c.outDir);
    assert.deepEqual([...fa.keys()].sort(), [...fb.keys()].sort());
    for (const [name, bytes] of fa) assert.deepEqual(fb.get(name), bytes, `${name} differs`);
    for (const name of ["train.images.u8", "test.captions.jsonl", "pmi.f32", "dataset.json"]) {
      assert.notDeepEqual(fc.get(name), fa.get(name), `${name} should depend on the seed`);
    }
  } finally {
    await Promise.all([a.cleanup(), b.cleanup(), c.cleanup()]);
  }
});

Deno.test("synthetic stage: test split does not depend on the train count", async () => {
  const a = await runSynthetic(3);
  const b = await runSynthetic(3, { ...small, counts: { ...small.counts, train: 60 } });
  try {
    for (const name of ["test.images.u8", "test.captions.jsonl", "pmi.f32", "pmi.json"]) {
      assert.deepEqual(
        await Deno.readFile(join(a.outDir, name)),
        await Deno.readFile(join(b.outDir, name)),
      );
    }
  } finally {
    await Promise.all([a.cleanup(), b.cleanup()]);
  }
});

Deno.test("synthetic stage: dataset, labels, latents and the PMI grid are consistent", async () => {
  const ctx = await runSynthetic(11);
  try {
    const ds = await openDataset(ctx.outDir, { verify: true });
    assert.equal(ds.meta.source, "synthetic");
    assert.deepEqual(ds.meta.image, { height: 32, width: 32, channels: 3 });
    assert.deepEqual(ds.meta.classNames, [
      "circle",
      "square",
      "triangle",
      "star",
      "cross",
      "diamond",
    ]);
    const test = ds.split("test");
    assert.equal(test.numImages, 50);
    assert.equal(test.captions.length, 100);
    assert.equal(ds.split("train").numImages, 120);
    assert.equal(ds.split("val").numImages, 30);
    const latents = await Deno.readFile(join(ctx.outDir, "test.latents.u8"));
    for (let i = 0; i < test.numImages; i++) {
      assert.equal(test.labels![i], latents[i * 4 + ATTR_INDEX.shape]);
      assert.equal(test.captionOffsets[i + 1] - test.captionOffsets[i], 2);
    }
    const pmi = JSON.parse(await Deno.readTextFile(join(ctx.outDir, "pmi.json")));
    assert.deepEqual(pmi.shape, [40, 30]);
    assert.equal(pmi.images.length, 40);
    assert.equal(pmi.captions.length, 30);
    const bytes = await Deno.readFile(join(ctx.outDir, pmi.matrix.file));
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    assert.equal(bytes.length, 40 * 30 * 4);
    for (let j = 0; j < 30; j++) {
      const c = pmi.captions[j];
      assert.equal(c.text, test.captions[test.captionOffsets[c.image] + c.caption].text);
    }
    for (let i = 0; i < 40; i++) {
      const img = pmi.images[i];
      const zi = model.latentIndex(Array.from(latents.subarray(img * 4, img * 4 + 4)));
      for (let j = 0; j < 30; j++) {
        const si = model.structureIndex(model.parse(pmi.captions[j].text)!);
        const want = Math.fround(model.pmi(zi, si));
        assert.equal(view.getFloat32((i * 30 + j) * 4, true), want);
        assert.ok(Number.isFinite(want));
      }
    }
    // Positive pairs score above the grid average.
    let diag = 0;
    let all = 0;
    for (let i = 0; i < 30; i++) diag += view.getFloat32((i * 30 + i) * 4, true) / 30;
    for (let k = 0; k < 40 * 30; k++) all += view.getFloat32(k * 4, true) / (40 * 30);
    assert.ok(diag > all + 1, `diagonal ${diag} vs mean ${all}`);
  } finally {
    await ctx.cleanup();
  }
});

Deno.test("synthetic stage: abort stops the run without writing dataset.json", async () => {
  const ac = new AbortController();
  ac.abort(new Error("interrupted"));
  const ctx = await makeContext({ params: stage.params.parse(small), seed: 1, signal: ac.signal });
  try {
    await assert.rejects(() => stage.run(ctx), /interrupted/);
    await assert.rejects(() => Deno.stat(join(ctx.outDir, "dataset.json")), Deno.errors.NotFound);
  } finally {
    await ctx.cleanup();
  }
});

Deno.test({
  name: "synthetic stage: default size (22k images, 110k captions) in under 60 s",
  ignore: !Deno.env.get("KME_SLOW_TESTS"),
  fn: async () => {
    const t0 = performance.now();
    const ctx = await makeContext({ params: defaults, seed: 1 });
    try {
      await stage.run(ctx);
      const seconds = (performance.now() - t0) / 1000;
      console.log(`prepare/synthetic default params: ${seconds.toFixed(2)} s`);
      assert.ok(seconds < 60);
    } finally {
      await ctx.cleanup();
    }
  },
});
