/**
 * The retrieval stage on hand-made embeddings: metrics equal a hand computation (with
 * pessimistic ties), KME with one real point (plus a padding point) ranks like CLIP, the 1k
 * fold prefix, the rank files, and the compare hook (paired bootstrap pooled over seeds).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import stage, { RetrievalParams } from "../stages/retrieval/stage.ts";
import { compareRetrieval } from "../stages/retrieval/compare.ts";
import {
  BOOTSTRAP,
  hierarchicalBootstrap,
  observedDifference,
  queryBootstrap,
} from "../stages/lib/stats/intervals.ts";
import { StageInputError } from "../pipeline/stage.ts";
import {
  type HandEmbeddings,
  handle,
  readJson,
  stageContext,
  writeEmbeddings,
} from "./eval_stage_helpers.ts";

// Three images on the unit circle and two captions each (see the comment on EXPECTED).
const IM = [[1, 0], [0, 1], [-1, 0]];
const CAPS: [number, number[]][] = [
  [0, [1, 0]],
  [0, [0, 1]],
  [1, [0, 1]],
  [1, [1, 0]],
  [2, [-1, 0]],
  [2, [0, -1]],
];
/*
 * Scores <u, v> (rows images, columns captions c0..c5):
 *   img0:  1  0  0  1 -1  0
 *   img1:  0  1  1  0  0 -1
 *   img2: -1  0  0 -1  1  0
 * i2t: img0 best own 1, c3 (img1's) also scores 1 -> rank 2 (pessimistic tie); img1 best 1,
 *      c1 scores 1 -> rank 2; img2 -> 1. Ranks [2, 2, 1].
 * t2i: c0 1; c1 own 0, img1 1 and img2 0 >= 0 -> 3; c2 1; c3 own 0, img0 1 -> 2; c4 1;
 *      c5 own 0, img0 0 -> 2. Ranks [1, 3, 1, 2, 1, 2].
 */
const EXPECTED = {
  "i2t_R@1": 100 / 3,
  "i2t_R@5": 100,
  "i2t_R@10": 100,
  "i2t_median_rank": 2,
  "i2t_mean_rank": 5 / 3,
  "t2i_R@1": 50,
  "t2i_R@5": 100,
  "t2i_R@10": 100,
  "t2i_median_rank": 1.5,
  "t2i_mean_rank": 10 / 6,
  "rsum": 100 / 3 + 200 + 50 + 200,
};

function clipEmb(scale = 10): HandEmbeddings {
  return {
    similarity: "clip",
    logit_scale: scale,
    M: 1,
    N: 1,
    dim: 2,
    images: IM.map((p) => ({ points: [p] })),
    captions: CAPS.map(([image, p]) => ({ image, points: [p] })),
  };
}

/** KME with a real point and a padding point (logit -Infinity) that would otherwise win. */
function kmeEmb(): HandEmbeddings {
  return {
    similarity: "kme",
    sigma2: 0.25,
    M: 2,
    N: 2,
    dim: 2,
    images: IM.map((p) => ({ points: [p, [0.6, 0.8]], logits: [0.3, -Infinity] })),
    captions: CAPS.map(([image, p]) => ({
      image,
      points: [[0.6, 0.8], p],
      logits: [-Infinity, -1.2],
    })),
  };
}

async function runRetrieval(emb: HandEmbeddings, params: Partial<RetrievalParams> = {}) {
  const root = await Deno.makeTempDir({ prefix: "eval-retrieval-" });
  await writeEmbeddings(join(root, "emb"), emb);
  const ctx = await stageContext(RetrievalParams.parse(params), { embeddings: join(root, "emb") });
  try {
    const res = await stage.run(ctx);
    const doc = await readJson(join(ctx.outDir, "metrics.json"));
    const i2t = new Int32Array((await Deno.readFile(join(ctx.outDir, "ranks_i2t.i32"))).buffer);
    const t2i = new Int32Array((await Deno.readFile(join(ctx.outDir, "ranks_t2i.i32"))).buffer);
    return { metrics: res!.metrics as Record<string, number>, doc, i2t, t2i };
  } finally {
    await ctx.cleanup();
    await Deno.remove(root, { recursive: true });
  }
}

function assertClose(got: Record<string, number>, want: Record<string, number>) {
  for (const [k, v] of Object.entries(want)) {
    assert.ok(Math.abs(got[k] - v) < 1e-9, `${k}: got ${got[k]}, want ${v}`);
  }
}

Deno.test("retrieval stage: clip metrics equal the hand computation (pessimistic ties)", async () => {
  const r = await runRetrieval(clipEmb());
  assertClose(r.metrics, EXPECTED);
  assert.deepEqual([...r.i2t], [2, 2, 1]);
  assert.deepEqual([...r.t2i], [1, 3, 1, 2, 1, 2]);
  assert.deepEqual(r.doc.metrics, r.metrics);
  assert.equal(r.doc.protocol.name, "retrieval");
  assert.match(r.doc.protocol.tieRule, /pessimistic/);
  assert.match(r.doc.protocol.similarity, /clip logit_scale=10/);
  assert.ok(r.doc.protocol["1k"].skipped, "no 1k protocol for 3 images");
  assert.ok(!Object.keys(r.metrics).some((k) => k.startsWith("1k_")));
});

Deno.test("retrieval stage: kme with one real point per set ranks like clip; padding ignored", async () => {
  const r = await runRetrieval(kmeEmb());
  assertClose(r.metrics, EXPECTED);
  assert.match(r.doc.protocol.similarity, /kme sigma2=0.25/);
});

Deno.test("retrieval stage: 1k protocol as the mean over folds, with the 1k_ prefix", async () => {
  // fold_size 1: three folds of one image and its two captions; every rank is 1.
  const r = await runRetrieval(clipEmb(), { fold_size: 1 });
  assertClose(r.metrics, EXPECTED);
  for (const k of ["i2t_R@1", "t2i_R@1", "i2t_R@10"]) assert.equal(r.metrics[`1k_${k}`], 100);
  assert.equal(r.metrics["1k_i2t_median_rank"], 1);
  assert.equal(r.metrics["1k_rsum"], 600);
  assert.equal(r.doc.protocol["1k"].folds, 3);
  assert.equal(r.doc.folds_1k.length, 3);
});

Deno.test('retrieval stage: duplicate_texts "text" makes a shared text relevant to both images', async () => {
  // c0 (image 0) and c3 (image 1) have the same text "a dog". With rule "text": img0's rank
  // is 1 (c3 now relevant); c3's own score is max(S[1,3], S[0,3]) = 1 -> rank 1.
  const e = clipEmb();
  e.captions[0].text = "a dog";
  e.captions[3].text = "a dog";
  const inst = await runRetrieval(e);
  assertClose(inst.metrics, EXPECTED);
  const r = await runRetrieval(e, { duplicate_texts: "text" });
  assert.deepEqual([...r.i2t], [1, 2, 1]);
  assert.deepEqual([...r.t2i], [1, 3, 1, 1, 1, 2]);
  assert.equal(r.doc.protocol.duplicateTextRule, "text");
  assert.equal(r.doc.protocol.captionInstancesWithSeveralRelevantImages, 2);
});

Deno.test("retrieval stage: an image without captions is a StageInputError", async () => {
  const e = clipEmb();
  e.captions = e.captions.filter((c) => c.image !== 1).map((c) => c);
  await assert.rejects(
    () => runRetrieval(e),
    (err: Error) => err instanceof StageInputError && /image 1 has no caption/.test(err.message),
  );
});

async function writeRanks(dir: string, i2t: number[], t2i: number[], captionImage: number[]) {
  await Deno.mkdir(dir, { recursive: true });
  const w = (name: string, a: number[]) =>
    Deno.writeFile(join(dir, name), new Uint8Array(Int32Array.from(a).buffer));
  await w("ranks_i2t.i32", i2t);
  await w("ranks_t2i.i32", t2i);
  await w("caption_image.i32", captionImage);
}

Deno.test("retrieval compare: per-query differences of B - A for each seed pair", async () => {
  const root = await Deno.makeTempDir({ prefix: "eval-compare-" });
  try {
    const n = 200;
    const capImg = Array.from({ length: 2 * n }, (_, c) => c >> 1);
    // A: hits R@1 on the first half of images; B: on all images. Everything within R@5.
    const a1 = Array.from({ length: n }, (_, i) => (i < n / 2 ? 1 : 3));
    const b1 = new Array(n).fill(1);
    const t2iA = capImg.map((i) => (i % 4 === 0 ? 1 : 7));
    const t2iB = capImg.map((i) => (i % 4 === 0 ? 7 : 1));
    await writeRanks(join(root, "a0"), a1, t2iA, capImg);
    await writeRanks(join(root, "b0"), b1, t2iB, capImg);
    const pair0 = { a: handle(join(root, "a0")), b: handle(join(root, "b0")) };
    const one = await compareRetrieval([pair0]);
    assert.deepEqual(Object.keys(one).sort(), [
      "i2t_R@1",
      "i2t_R@10",
      "i2t_R@5",
      "t2i_R@1",
      "t2i_R@10",
      "t2i_R@5",
    ]);
    // image->text: one unit per image, +100 where only B hits.
    const i2t = one["i2t_R@1"];
    assert.equal(i2t.shared, true);
    assert.equal(i2t.pairs.length, 1);
    assert.equal(i2t.pairs[0].diff.length, n);
    assert.equal(i2t.pairs[0].diff[0], 0);
    assert.equal(i2t.pairs[0].diff[n - 1], 100);
    assert.equal(observedDifference(i2t.pairs), 50);
    const q = queryBootstrap(i2t.pairs, i2t.shared);
    assert.ok(q.lo > 35 && q.hi < 65 && q.lo < 50, `${q.lo} ${q.hi}`);
    assert.deepEqual(queryBootstrap(one["i2t_R@5"].pairs, true), { delta: 0, lo: 0, hi: 0 });
    // text->image: one unit per image with its 2 captions; A hits 1/4 of captions, B 3/4.
    const t2i = one["t2i_R@1"].pairs[0];
    assert.equal(t2i.diff.length, n);
    assert.ok(t2i.size.every((x) => x === 2));
    assert.equal(t2i.diff[0], -200);
    assert.equal(t2i.diff[1], 200);
    assert.equal(observedDifference([t2i]), 50);
    assert.equal(observedDifference(one["t2i_R@10"].pairs), 0);
    assert.equal(BOOTSTRAP.iterations, 1000);

    // A second seed pair where B is no better: the pooled delta is the mean, +25 for i2t R@1;
    // over seeds (2 pairs, one gaining 50, one 0) the interval is much wider than over queries.
    await writeRanks(join(root, "a1"), a1, t2iA, capImg);
    await writeRanks(join(root, "b1"), a1, t2iA, capImg);
    const pair1 = { a: handle(join(root, "a1")), b: handle(join(root, "b1")) };
    const two = await compareRetrieval([pair0, pair1]);
    assert.equal(two["i2t_R@1"].shared, true);
    assert.equal(observedDifference(two["i2t_R@1"].pairs), 25);
    assert.equal(observedDifference(two["t2i_R@1"].pairs), 25);
    const pooled = queryBootstrap(two["i2t_R@1"].pairs, true);
    assert.ok(pooled.lo > 15 && pooled.hi < 35, `${pooled.lo} ${pooled.hi}`);
    const seeds = hierarchicalBootstrap(two["i2t_R@1"].pairs, true);
    assert.ok(seeds.lo < 5 && seeds.hi > 45, `${seeds.lo} ${seeds.hi}`);
    // Missing rank files on any pair (another stage's outputs): no per-query results.
    assert.deepEqual(await compareRetrieval([{ a: handle(root), b: handle(root) }]), {});
    assert.deepEqual(await compareRetrieval([pair0, { a: handle(root), b: handle(root) }]), {});
    // Pairs ranked on different queries: each pair keeps its own units (not shared).
    await writeRanks(join(root, "a2"), a1.slice(0, 100), t2iA.slice(0, 200), capImg.slice(0, 200));
    await writeRanks(join(root, "b2"), b1.slice(0, 100), t2iB.slice(0, 200), capImg.slice(0, 200));
    const mixed = await compareRetrieval([
      pair0,
      { a: handle(join(root, "a2")), b: handle(join(root, "b2")) },
    ]);
    assert.equal(mixed["i2t_R@1"].shared, false);
    assert.equal(mixed["i2t_R@1"].pairs[1].diff.length, 100);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
