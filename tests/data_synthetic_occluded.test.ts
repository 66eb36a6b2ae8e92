/**
 * The occluded world of prepare/synthetic (param `occlusion`, issue 14): exact PMI against
 * closed forms and a sampling estimate, the ranks of PMI and exp(PMI) on small worlds computed
 * by hand and on the real one, the rank knob, images that show what they hide and nothing
 * more, the stage's files, and its param errors.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import stage from "../stages/prepare/synthetic/stage.ts";
import { ATTR_INDEX, ATTRIBUTES, SceneModel } from "../stages/lib/synthetic/scene_model.ts";
import {
  archetypeLatents,
  mixturePrior,
  OccludedWorld,
  OcclusionModel,
} from "../stages/lib/synthetic/occlusion.ts";
import { SceneRenderer } from "../stages/prepare/synthetic/render.ts";
import { HIDDEN_RGB, SYMBOL_RGB } from "../stages/prepare/synthetic/symbolic.ts";
import { spectrum } from "../stages/lib/spectrum.ts";
import { Rng } from "../stages/lib/random.ts";
import { openDataset } from "../stages/lib/dataset/read.ts";
import { makeContext } from "./fixtures/data/context.ts";

const close = (a: number, b: number, tol: number, what = "") =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

/**
 * log p(s | z), [s * nZ + z], of a small world with the scene model's caption rule: each
 * attribute is mentioned with probability q, and then names its value with probability 1 - eps
 * (else one of the others, uniformly). Structures and latents use scene_model.ts.s mixed radix.
 */
function captionTable(sizes: number[], q: number, eps: number): Float64Array {
  const nZ = sizes.reduce((a, b) => a * b, 1);
  const nS = sizes.reduce((a, b) => a * (b + 1), 1);
  const out = new Float64Array(nS * nZ);
  for (let s = 0; s < nS; s++) {
    for (let z = 0; z < nZ; z++) {
      let lp = 0;
      let si = s, zi = z;
      for (let a = sizes.length - 1; a >= 0; a--) {
        const m = (si % (sizes[a] + 1)) - 1;
        const t = zi % sizes[a];
        si = Math.floor(si / (sizes[a] + 1));
        zi = Math.floor(zi / sizes[a]);
        lp += Math.log(m < 0 ? 1 - q : m === t ? q * (1 - eps) : (q * eps) / (sizes[a] - 1));
      }
      out[s * nZ + z] = lp;
    }
  }
  return out;
}

function ranks(m: OcclusionModel): { pmi: number; exp: number; rows: number } {
  const { classes, data } = m.pmiMatrix();
  const nS = m.numStructures;
  return {
    pmi: spectrum(data, classes.length, nS).rank,
    exp: spectrum(data.map(Math.exp), classes.length, nS).rank,
    rows: classes.length,
  };
}

Deno.test("occluded world, 2 binary attributes: PMI by hand, rank 3 -> 5, exp(PMI) rank 4", () => {
  // z = (a, b) in {0,1}^2, index 2a + b; p(z) = [0.4, 0.1, 0.2, 0.3] (a and b correlated).
  const prior = [0.4, 0.1, 0.2, 0.3];
  const q = 0.6, eps = 0.1;
  const table = captionTable([2, 2], q, eps);
  const occluded = new OcclusionModel([2, 2], prior, table, 0.3);
  // Classes and structures: index 3 (v_a + 1) + (v_b + 1), -1 = hidden / not mentioned.
  // Visible (0, 0), caption "a = 0" (b not mentioned): p(s | z) = q (1 - eps) (1 - q) = 0.216;
  // p(s) = (1 - q) q [p(a = 0) (1 - eps) + p(a = 1) eps] = 0.4 * 0.6 * 0.5 = 0.12.
  close(occluded.pmi(4, 3), Math.log(0.216 / 0.12), 1e-14, "PMI((0,0), (0,-))");
  // a hidden, b = 1 visible: p(a | b = 1) = [0.1, 0.3] / 0.4 = [0.25, 0.75]. Caption (1, 1):
  // p(s | x) = [0.25 q eps + 0.75 q (1 - eps)] q (1 - eps) = 0.42 * 0.54 = 0.2268;
  // p(s) = q^2 [0.4 eps^2 + 0.1 eps (1 - eps) + 0.2 (1 - eps) eps + 0.3 (1 - eps)^2] = 0.09864.
  close(occluded.pmi(2, 8), Math.log(0.2268 / 0.09864), 1e-14, "PMI((-,1), (1,1))");
  // Everything hidden: p(z | x) = p(z), so PMI = 0 for every caption.
  assert.deepEqual(Array.from(occluded.pmiRow(0)), new Array(9).fill(0));
  // p(class) sums to 1; p(hidden a, b = 1) = 0.3 * 0.7 * (0.1 + 0.3).
  close(occluded.classProb.reduce((s, p) => s + p, 0), 1, 1e-15, "sum p(class)");
  close(occluded.classProb[2], 0.3 * 0.7 * 0.4, 1e-15, "p(class)");

  // Ranks, by hand. Revealed (hide = 0, the 4 latents x 9 structures): a row is
  // log p(s_a | z_a) + log p(s_b | z_b) - log p(s); changing z_a adds a multiple of
  // d_a(s) = [s_a = 0] - [s_a = 1], so the rows span {common row, d_a, d_b}: rank 3
  // = 1 + sum (k - 1). exp(PMI) = p(s | z) / p(s), the Kronecker product of two rank-2
  // 2 x 3 tables with its columns scaled: rank 4 = |Z|.
  const revealed = new OcclusionModel([2, 2], prior, table, 0);
  assert.deepEqual(ranks(revealed), { pmi: 3, exp: 4, rows: 4 });
  // Occluded (9 classes): hiding a replaces log p(s_a | z_a) with log of a mixture
  // m(s_a) = sum_a' p(a' | b) p(s_a | a'), whose two mentioned values no longer sum, in log,
  // to log(q^2 eps (1 - eps)): it adds the direction u_a(s) = [s_a mentioned]; hiding b adds
  // u_b; hiding both gives the zero row. Rank 5 = {common, d_a, d_b, u_a, u_b}, above |Z|,
  // while exp(PMI) = P L / p(s) keeps rank 4 (the posterior matrix P is 9 x 4).
  assert.deepEqual(ranks(occluded), { pmi: 5, exp: 4, rows: 9 });
});

Deno.test("occluded world, 3 binary attributes: additive (rank 6) unless correlated", () => {
  const sizes = [2, 2, 2];
  const table = captionTable(sizes, 0.5, 0.15);
  // A factorised prior: the posterior of the hidden attributes is their prior whatever is
  // visible, so PMI(x, s) = sum over visible a of log p(s_a | z_a) / p(s_a): each term vanishes
  // when a is not mentioned and spans k_a = 2 functions of s_a; the rows that hide one
  // attribute separate them. Rank sum k_a = 6 (revealed alone: 1 + sum (k_a - 1) = 4).
  const marg = [[0.3, 0.7], [0.6, 0.4], [0.5, 0.5]];
  const factorised = Array.from(
    { length: 8 },
    (_, z) => marg[0][z >> 2] * marg[1][(z >> 1) & 1] * marg[2][z & 1],
  );
  assert.deepEqual(ranks(new OcclusionModel(sizes, factorised, table, 0.4)), {
    pmi: 6,
    exp: 8,
    rows: 27,
  });
  assert.equal(ranks(new OcclusionModel(sizes, factorised, table, 0)).pmi, 4);
  // Correlated (a three-way coupling): hiding two attributes leaves a mixture over their joint
  // values whose log is not a sum and depends on the visible one: rank above 6, exp(PMI) stays
  // at |Z| = 8.
  const correlated = factorised.map((p, z) => p * (z === 0 || z === 7 ? 6 : z === 3 ? 3 : 1));
  const r = ranks(new OcclusionModel(sizes, correlated, table, 0.4));
  assert.ok(r.pmi > 6 && r.pmi <= 27, `rank ${r.pmi}`);
  assert.equal(r.exp, 8);
});

Deno.test("occluded world at hide 0 and correlation 0 is the revealed world, bit for bit", () => {
  const opts = { mention: stage.params.parse({}).mention, attribute_noise: 0.05 };
  const scene = new SceneModel(opts);
  const world = new OccludedWorld(opts, { hide: 0, correlation: 0, archetypes: 90 });
  assert.deepEqual(world.scene.prior, scene.prior);
  assert.deepEqual(world.scene.logPs, scene.logPs);
  for (const zi of [0, 1, 77, 300, 539]) {
    const row = world.occlusion.pmiRow(world.occlusion.classOf(zi, 0));
    for (let si = 0; si < scene.numCaptionStructures; si++) {
      assert.equal(row[si], scene.pmi(zi, si));
    }
  }
  assert.equal(world.occlusion.possibleClasses().length, 540);
  close(world.occlusion.mutualInformation(), scene.mutualInformation(), 1e-12, "I(X;Y)");
});

Deno.test("occluded world: the knob moves rank(PMI) from 20 + 2 to > 100 at |Z| = 540", () => {
  const opts = { mention: stage.params.parse({}).mention, attribute_noise: 0.05 };
  const pmiSpectrum = (w: OcclusionModel) => {
    const { classes, data } = w.pmiMatrix();
    return { s: spectrum(data, classes.length, w.numStructures), data, rows: classes.length };
  };
  // A factorised prior (the product of the marginal weights): additive, rank sum k_a =
  // 3 + 6 + 6 + 5 = 20 (as in the 3-attribute test above).
  const scene = new SceneModel(opts);
  const marginals = Array.from(
    { length: 540 },
    (_, zi) => scene.latent(zi).reduce((p, v, a) => p * ATTRIBUTES[a].weights[v], 1),
  );
  const fact = pmiSpectrum(new OcclusionModel(scene.sizes, marginals, scene.logPsGivenZ, 0.5));
  assert.equal(fact.rows, 1176);
  assert.equal(fact.s.rank, 20);
  // correlation 0 = the revealed world's prior, two coupled pairs (shape-colour,
  // size-position), each independent of the rest: hiding both attributes of a pair adds one
  // function of their joint mention, the same for every image that hides them: 20 + 2.
  const at = (correlation: number) =>
    new OccludedWorld(opts, { hide: 0.5, correlation, archetypes: 90 });
  const w0 = at(0), w5 = at(0.5), w9 = at(0.9);
  const s0 = pmiSpectrum(w0.occlusion).s, s5 = pmiSpectrum(w5.occlusion).s;
  const p9 = pmiSpectrum(w9.occlusion);
  assert.equal(s0.rank, 22);
  assert.ok(s0.residualRms["32"] < 1e-10, `rank-32 residual at 0: ${s0.residualRms["32"]}`);
  for (const s of [s5, p9.s]) assert.ok(s.rank > 100, `rank ${s.rank}`);
  // The part no 32- or 64-dimensional factorisation can fit grows with the knob.
  for (const d of ["32", "64"]) {
    assert.ok(s5.residualRms[d] > 0.03, `residual ${d} at 0.5: ${s5.residualRms[d]}`);
    assert.ok(p9.s.residualRms[d] > s5.residualRms[d], `residual ${d} grows`);
  }
  // exp(PMI) = sum_z p(z | x) p(s | z) / p(s): rank <= |Z| = 540, whatever the knob.
  const e9 = spectrum(p9.data.map(Math.exp), p9.rows, 1176);
  assert.equal(e9.rank, 540);
  for (const w of [w0, w5, w9]) assert.equal(w.scene.numLatents, 540);
});

Deno.test("occluded world: exact PMI matches the empirical PMI of 1M samples", () => {
  // As the revealed world's test (data_synthetic.test.ts), with the image class (hidden
  // attributes + visible values) in place of the latent: sample z ~ p(z), what the image hides,
  // and a caption; empirical PMI = log(n(c, s) N / (n(c) n(s))) against the exact
  // log sum_z p(z | c) p(s | z) - log p(s), within 4 / sqrt(n(c, s)) + 0.02 nats per cell with
  // n >= 200, mean squared standardised error < 2, and pooled bins for negative PMI.
  const opts = { mention: stage.params.parse({}).mention, attribute_noise: 0.05 };
  const world = new OccludedWorld(opts, { hide: 0.5, correlation: 0.9, archetypes: 90 });
  const occ = world.occlusion;
  const nS = world.scene.numCaptionStructures;
  const N = 1_000_000;
  const rng = new Rng(77);
  const joint = new Map<number, number>();
  const nc = new Float64Array(occ.numClasses);
  const ns = new Float64Array(nS);
  for (let k = 0; k < N; k++) {
    const zi = world.scene.sampleLatent(rng);
    const c = occ.classOf(zi, world.sampleMask(rng));
    const si = world.scene.sampleCaption(rng, zi).index;
    joint.set(c * nS + si, (joint.get(c * nS + si) ?? 0) + 1);
    nc[c]++;
    ns[si]++;
  }
  const rows = new Map<number, Float64Array>();
  const pmiOf = (c: number, si: number) => {
    if (!rows.has(c)) rows.set(c, occ.pmiRow(c));
    return rows.get(c)![si];
  };
  let cells = 0, mixtures = 0, z2 = 0, lo = Infinity, hi = -Infinity;
  for (const [key, n] of joint) {
    if (n < 200) continue;
    const c = Math.floor(key / nS), si = key % nS;
    const empirical = Math.log((n * N) / (nc[c] * ns[si]));
    const exact = pmiOf(c, si);
    assert.ok(
      Math.abs(empirical - exact) <= 4 / Math.sqrt(n) + 0.02,
      `class ${c} caption ${si}: n=${n} empirical ${empirical} exact ${exact}`,
    );
    cells++;
    if (occ.classValues(c).filter((v) => v < 0).length >= 2) mixtures++;
    z2 += (empirical - exact) ** 2 * n;
    lo = Math.min(lo, exact);
    hi = Math.max(hi, exact);
  }
  console.log(`${cells} cells checked, ${mixtures} of classes hiding >= 2 attributes`);
  assert.ok(cells >= 100 && mixtures >= 50, `${cells} cells, ${mixtures} with >= 2 hidden`);
  assert.ok(z2 / cells < 2, `mean squared standardised error ${z2 / cells}`);
  assert.ok(hi > 2 && lo < 0, `checked PMIs only span ${lo}..${hi}`);
  // Pooled bins of exact PMI, for the rare pairs.
  const edges = [-Infinity, -4, -3, -2, -1, 0, 1, 2, Infinity];
  const bins = edges.slice(1).map(() => ({ n: 0, nn: 0, p: 0, pp: 0 }));
  for (let c = 0; c < occ.numClasses; c++) {
    if (!(occ.classProb[c] > 0)) continue;
    pmiOf(c, 0);
    const row = rows.get(c)!;
    for (let si = 0; si < nS; si++) {
      const b = bins[edges.findIndex((e, k) => row[si] >= e && row[si] < edges[k + 1])];
      const pp = occ.classProb[c] * Math.exp(world.scene.logPs[si]);
      b.n += joint.get(c * nS + si) ?? 0;
      b.nn += (nc[c] * ns[si]) / N;
      b.pp += pp;
      b.p += pp * Math.exp(row[si]);
    }
  }
  let negative = 0;
  bins.forEach((b, k) => {
    if (b.n < 200) return;
    const empirical = Math.log(b.n / b.nn), exact = Math.log(b.p / b.pp);
    assert.ok(
      Math.abs(empirical - exact) <= 4 / Math.sqrt(b.n) + 0.02,
      `bin [${edges[k]}, ${edges[k + 1]}): n=${b.n} empirical ${empirical} exact ${exact}`,
    );
    if (exact < -2) negative++;
  });
  assert.ok(negative >= 2, "negative-PMI bins must be checked too");
  // p(class) against frequencies for the frequent classes.
  for (let c = 0; c < occ.numClasses; c++) {
    if (nc[c] < 2000) continue;
    close(Math.log(nc[c] / N), Math.log(occ.classProb[c]), 4 / Math.sqrt(nc[c]) + 0.01, `p(${c})`);
  }
});

Deno.test("occluded images show what they hide and nothing of the hidden values", async () => {
  const r = await SceneRenderer.create({ image_size: 24, jitter: 0.06, pixel_noise: 6 });
  const img = (z: number[], hidden: number) => {
    const out = new Uint8Array(24 * 24 * 3);
    r.renderOccluded(z, hidden, new Rng(5), out);
    return out;
  };
  const bit = (name: keyof typeof ATTR_INDEX) => 1 << ATTR_INDEX[name];
  // z = (size, colour, shape, position). Same visible values, other hidden values, same
  // nuisance: the same bytes.
  const z = [0, 1, 2, 3];
  for (
    const [hidden, other] of [
      [bit("size"), [2, 1, 2, 3]],
      [bit("colour"), [0, 4, 2, 3]],
      [bit("shape"), [0, 1, 5, 3]],
      [bit("position"), [0, 1, 2, 0]],
      [bit("shape") | bit("colour"), [0, 5, 0, 3]],
      [15, [2, 5, 0, 4]],
    ] as const
  ) {
    assert.deepEqual(img([...other], hidden), img(z, hidden), `hidden ${hidden}`);
  }
  // A visible attribute does change the image.
  for (const other of [[2, 1, 2, 3], [0, 4, 2, 3], [0, 1, 5, 3], [0, 1, 2, 0]]) {
    assert.notDeepEqual(img(other, 0), img(z, 0));
  }
  // The markers: a white top row when the size is hidden, a white bottom row for the position.
  const row = (im: Uint8Array, y: number) => im.subarray(y * 72, (y + 1) * 72);
  const white = (px: Uint8Array) => px.every((v) => v === 255);
  assert.ok(white(row(img(z, bit("size")), 0)) && !white(row(img(z, bit("size")), 23)));
  assert.ok(white(row(img(z, bit("position")), 23)) && !white(row(img(z, 0), 0)));
});

Deno.test("exact log p(y) of caption texts matches their frequencies (both worlds)", () => {
  const opts = { mention: stage.params.parse({}).mention, attribute_noise: 0.05 };
  for (
    const scene of [
      new SceneModel(opts),
      new OccludedWorld(opts, { hide: 0.5, correlation: 0.9, archetypes: 90 }).scene,
    ]
  ) {
    const N = 400_000;
    const rng = new Rng(12);
    const counts = new Map<string, number>();
    for (let k = 0; k < N; k++) {
      const text = scene.sampleCaption(rng, scene.sampleLatent(rng)).text;
      counts.set(text, (counts.get(text) ?? 0) + 1);
    }
    let checked = 0;
    for (const [text, n] of counts) {
      if (n < 500) continue;
      const lp = scene.captionLogProb(text)!;
      close(Math.log(n / N), lp, 4 / Math.sqrt(n) + 0.01, `"${text}" (n = ${n})`);
      checked++;
    }
    assert.ok(checked >= 20, `${checked} texts checked`);
    assert.equal(scene.captionLogProb("a red circle or two"), undefined);
  }
});

const small = {
  counts: { train: 60, val: 20, test: 40 },
  captions_per_image: 2,
  grid_images: 30,
  grid_captions: 20,
};

Deno.test("occluded stage: files, grid PMI from what each image shows, determinism", async () => {
  const params = stage.params.parse({ ...small, occlusion: { correlation: 0.5 } });
  const a = await makeContext({ params, seed: 3 });
  const b = await makeContext({ params, seed: 3 });
  try {
    const ra = await stage.run(a);
    await stage.run(b);
    for await (const e of Deno.readDir(a.outDir)) {
      assert.deepEqual(
        await Deno.readFile(join(a.outDir, e.name)),
        await Deno.readFile(join(b.outDir, e.name)),
        `${e.name} differs between two runs with one seed`,
      );
    }
    const ds = await openDataset(a.outDir, { verify: true });
    const gen = ds.meta.extra!.generator as Record<string, Record<string, unknown>>;
    assert.equal(gen.occlusion.correlation, 0.5);
    assert.equal(gen.occlusion.imageClasses, 1176);
    assert.deepEqual(gen.occlusion.archetypeLatents, Array.from(archetypeLatents(540, 90)));
    const world = new OccludedWorld({ mention: params.mention, attribute_noise: 0.05 }, {
      hide: 0.5,
      correlation: 0.5,
      archetypes: 90,
    });
    const doc = JSON.parse(await Deno.readTextFile(join(a.outDir, "pmi.json")));
    assert.equal(doc.world, "occluded");
    const latents = await Deno.readFile(join(a.outDir, "test.latents.u8"));
    const masks = await Deno.readFile(join(a.outDir, "test.occlusion.u8"));
    assert.equal(masks.length, 40);
    assert.ok(masks.some((m) => m !== 0) && masks.every((m) => m < 16));
    const bytes = await Deno.readFile(join(a.outDir, "pmi.f32"));
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < 30; i++) {
      const zi = world.scene.latentIndex(Array.from(latents.subarray(i * 4, i * 4 + 4)));
      const row = world.occlusion.pmiRow(world.occlusion.classOf(zi, masks[i]));
      const shown = ATTRIBUTES.map((at, k) =>
        (masks[i] >> k) & 1 ? null : at.values[latents[i * 4 + k]]
      );
      assert.deepEqual(Object.values(doc.imageVisible[i]), shown);
      for (let j = 0; j < 20; j++) {
        const text = doc.captions[j].text;
        const si = world.scene.structureIndex(world.scene.parse(text)!);
        assert.equal(view.getFloat32((i * 20 + j) * 4, true), Math.fround(row[si]));
        if (i === 0) assert.equal(doc.captionLogProb[j], world.scene.captionLogProb(text));
      }
    }
    // Spectra: in spectra.json and the metrics; exp(PMI) within |Z|, PMI above it.
    const spectra = JSON.parse(await Deno.readTextFile(join(a.outDir, "spectra.json")));
    assert.deepEqual(spectra.exact.pmi.shape, [1176, 1176]);
    assert.deepEqual(spectra.grid.pmi.shape, [30, 20]);
    const m = ra!.metrics as Record<string, number>;
    assert.equal(m.pmi_rank, spectra.exact.pmi.rank);
    assert.ok(m.pmi_rank > 100 && m.exp_pmi_rank === 540, `${m.pmi_rank}, ${m.exp_pmi_rank}`);
    assert.ok(m.grid_pmi_rank <= 20 && m.grid_exp_pmi_rank <= 20);
    close(m.mutual_information, world.occlusion.mutualInformation(), 1e-12, "I(X;Y)");
  } finally {
    await Promise.all([a.cleanup(), b.cleanup()]);
  }
});

Deno.test("revealed stage: no occlusion param by default, no new files, ranks 17 and 540", async () => {
  // The param is optional without a default, so existing experiments' resolved params (and
  // cache keys) do not change.
  assert.equal("occlusion" in stage.params.parse({}), false);
  const ctx = await makeContext({ params: stage.params.parse(small), seed: 3 });
  try {
    const res = await stage.run(ctx);
    const names = [...Deno.readDirSync(ctx.outDir)].map((e) => e.name);
    assert.ok(!names.some((n) => n.includes("occlusion") || n === "spectra.json"), `${names}`);
    const m = res!.metrics as Record<string, number>;
    // 1 + sum (k_a - 1) = 1 + 2 + 5 + 5 + 4 (see the 2-attribute test) and |Z|.
    assert.equal(m.pmi_rank, 17);
    assert.equal(m.exp_pmi_rank, 540);
    const info = res!.info as { spectra: { exact: { pmi: { shape: number[] } } } };
    assert.deepEqual(info.spectra.exact.pmi.shape, [540, 1176]);
  } finally {
    await ctx.cleanup();
  }
});

Deno.test("occlusion params: defaults, and out-of-range values named at the param", () => {
  assert.deepEqual(stage.params.parse({ occlusion: {} }).occlusion, {
    hide: 0.5,
    correlation: 0.9,
    archetypes: 90,
  });
  for (
    const [occlusion, path, message] of [
      [{ correlation: 1 }, "occlusion.correlation", /must be < 1/],
      [{ correlation: -0.1 }, "occlusion.correlation", /must be >= 0/],
      [{ hide: 1 }, "occlusion.hide", /must be < 1: at 1 every image hides/],
      [{ archetypes: 541 }, "occlusion.archetypes", /<= 540/],
      [{ knob: 1 }, "occlusion", /knob/],
    ] as const
  ) {
    const r = stage.params.safeParse({ occlusion });
    assert.equal(r.success, false);
    const issue = r.error!.issues[0];
    assert.equal(issue.path.join("."), path, JSON.stringify(issue));
    assert.match(issue.message + JSON.stringify(issue), message);
  }
  // The model refuses them too when built directly.
  assert.throws(
    () =>
      new OccludedWorld({ mention: stage.params.parse({}).mention, attribute_noise: 0.05 }, {
        hide: 0.5,
        correlation: 1,
        archetypes: 90,
      }),
    /correlation must be in \[0, 1\)/,
  );
  assert.throws(() => archetypeLatents(540, 0), /archetypes must be/);
  assert.throws(() => mixturePrior([1, 1], [0], 1.5), /correlation/);
});

Deno.test("symbolic rendering: cells name the visible values; only the images differ from scene", async () => {
  const base = { ...small, image_size: 16, occlusion: { correlation: 0.5 } };
  const sym = await makeContext({
    params: stage.params.parse({ ...base, render: "symbolic" }),
    seed: 3,
  });
  const scene = await makeContext({ params: stage.params.parse(base), seed: 3 });
  try {
    await stage.run(sym);
    await stage.run(scene);
    const names = [...Deno.readDirSync(sym.outDir)].map((e) => e.name).sort();
    assert.deepEqual(names, [...Deno.readDirSync(scene.outDir)].map((e) => e.name).sort());
    for (const name of names) {
      const same = equalBytes(
        await Deno.readFile(join(sym.outDir, name)),
        await Deno.readFile(join(scene.outDir, name)),
      );
      // Latents, masks, captions, exact PMI and spectra are the world's, not the renderer's.
      const rendered = name.endsWith(".images.u8") || name === "dataset.json";
      assert.equal(same, !rendered, `${name}: ${same ? "same" : "differs"}`);
    }
    const latents = await Deno.readFile(join(sym.outDir, "test.latents.u8"));
    const masks = await Deno.readFile(join(sym.outDir, "test.occlusion.u8"));
    const images = await Deno.readFile(join(sym.outDir, "test.images.u8"));
    const px = 16 * 16 * 3;
    const byClass = new Map<string, Uint8Array>();
    for (let i = 0; i < 40; i++) {
      const img = images.subarray(i * px, (i + 1) * px);
      // Cell a (2 x 2 grid, attribute order) is flat: the value's colour, or grey when hidden.
      ATTRIBUTES.forEach((_, a) => {
        const hidden = (masks[i] >> a) & 1;
        const want = hidden ? HIDDEN_RGB : SYMBOL_RGB[latents[i * 4 + a]];
        for (let y = 0; y < 8; y++) {
          for (let x = 0; x < 8; x++) {
            const o = (((a >> 1) * 8 + y) * 16 + (a & 1) * 8 + x) * 3;
            assert.deepEqual([...img.subarray(o, o + 3)], [...want], `image ${i} cell ${a}`);
          }
        }
      });
      // What an image shows is its class, and nothing else.
      const cls = ATTRIBUTES.map((_, a) => (masks[i] >> a) & 1 ? -1 : latents[i * 4 + a]).join();
      const seen = byClass.get(cls);
      if (seen) assert.ok(equalBytes(seen, img), `two images of class ${cls} differ`);
      byClass.set(cls, img);
    }
    assert.ok(byClass.size > 5);
  } finally {
    await Promise.all([sym.cleanup(), scene.cleanup()]);
  }
});

Deno.test("symbolic rendering needs an even image side (bad input, before any file)", async () => {
  const ctx = await makeContext({
    params: stage.params.parse({ ...small, image_size: 17, render: "symbolic" }),
    seed: 0,
  });
  try {
    await assert.rejects(() => stage.run(ctx), (e: Error) => {
      assert.equal(e.name, "StageInputError");
      assert.match(
        e.message,
        /params\.image_size: render: symbolic needs an even image_size, got 17/,
      );
      return true;
    });
    assert.deepEqual([...Deno.readDirSync(ctx.outDir)], []);
  } finally {
    await ctx.cleanup();
  }
});

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
