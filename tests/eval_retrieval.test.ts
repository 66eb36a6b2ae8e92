import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type BlockScorer,
  cocoRetrieval,
  directionMetrics,
  evaluateRetrieval,
  matrixScorer,
  retrievalMetricNames,
} from "../stages/lib/eval/retrieval/mod.ts";

/** Direct definition (O(nI * nC) per query): the reference the streaming code must match. */
function naiveRanks(
  S: Float32Array,
  nI: number,
  captionImage: Int32Array,
  captionText?: Int32Array,
): { i2t: number[]; t2i: number[] } {
  const nC = captionImage.length;
  const relevant = (i: number, c: number) => {
    if (!captionText) return captionImage[c] === i;
    for (let c2 = 0; c2 < nC; c2++) {
      if (captionImage[c2] === i && captionText[c2] === captionText[c]) return true;
    }
    return false;
  };
  const i2t: number[] = [];
  for (let i = 0; i < nI; i++) {
    let best = -Infinity;
    for (let c = 0; c < nC; c++) if (relevant(i, c)) best = Math.max(best, S[i * nC + c]);
    let rank = 1;
    for (let c = 0; c < nC; c++) if (!relevant(i, c) && S[i * nC + c] >= best) rank++;
    i2t.push(rank);
  }
  const t2i: number[] = [];
  for (let c = 0; c < nC; c++) {
    let own = -Infinity;
    for (let i = 0; i < nI; i++) if (relevant(i, c)) own = Math.max(own, S[i * nC + c]);
    let rank = 1;
    for (let i = 0; i < nI; i++) if (!relevant(i, c) && S[i * nC + c] >= own) rank++;
    t2i.push(rank);
  }
  return { i2t, t2i };
}

const f32 = (rows: number[][]) => Float32Array.from(rows.flat());
const i32 = (xs: number[]) => Int32Array.from(xs);

Deno.test("retrieval: hand-computed ranks with ties (pessimistic)", async () => {
  const S = f32([
    [0.9, 0.1, 0.9, 0.3, 0.2],
    [0.5, 0.6, 0.4, 0.7, 0.1],
    [0.2, 0.2, 0.1, 0.2, 0.8],
  ]);
  const captionImage = i32([0, 0, 1, 2, 2]);
  const r = await evaluateRetrieval(S, captionImage, { ks: [1, 2, 5] });
  assert.deepEqual([...r.ranks.imageToText], [2, 4, 1]);
  assert.deepEqual([...r.ranks.textToImage], [1, 3, 2, 3, 1]);
  assert.equal(r.imageToText.recall[1], 100 / 3);
  assert.equal(r.imageToText.recall[2], 200 / 3);
  assert.equal(r.imageToText.recall[5], 100);
  assert.equal(r.textToImage.recall[1], 40);
  assert.equal(r.textToImage.recall[2], 60);
  assert.equal(r.imageToText.medianRank, 2);
  assert.equal(r.textToImage.medianRank, 2);
  assert.equal(r.imageToText.meanRank, 7 / 3);
  assert.equal(r.textToImage.meanRank, 2);
  assert.equal(r.rsum, 100 / 3 + 200 / 3 + 100 + 40 + 60 + 100);
  assert.equal(r.protocol.name, "retrieval");
  assert.equal(r.protocol.duplicateTextRule, "instance");
  // The names the retrieval stage records.
  const flat = retrievalMetricNames(r);
  assert.equal(flat["t2i_R@2"], 60);
  assert.equal(flat["i2t_median_rank"], 2);
  assert.equal(flat["t2i_mean_rank"], 2);
  assert.equal(retrievalMetricNames(r, "1k_")["1k_rsum"], r.rsum);
});

Deno.test("retrieval: images with 5, 6 and 7 captions; hit if ANY caption is in the top K", async () => {
  const z = (n: number) => new Array(n).fill(0);
  const S = f32([
    [3, 3, 3, 3, 3, ...z(13)],
    [6, 0, 0, 0, 0, 1, 1, 1, 1, 1, 5, 5, ...z(6)],
    [0, 0, 0, 2, 0, ...z(6), ...z(6), 2],
  ]);
  const captionImage = i32([...z(5), ...z(6).map(() => 1), ...z(7).map(() => 2)]);
  const r = await evaluateRetrieval(S, captionImage);
  assert.deepEqual([...r.ranks.imageToText], [1, 3, 2]);
  assert.deepEqual(
    [...r.ranks.textToImage],
    [2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 1],
  );
  const cpi = (r.protocol.counts as { captionsPerImage: { histogram: Record<string, number> } })
    .captionsPerImage;
  assert.deepEqual(cpi.histogram, { "5": 1, "6": 1, "7": 1 });
  assert.equal(r.imageToText.recall[1], 100 / 3);
  assert.equal(r.imageToText.recall[5], 100);
  assert.equal(r.textToImage.recall[1], 1100 / 18);
});

Deno.test("retrieval: a caption text shared by two images, both rules", async () => {
  // img0: "a dog" (c0), "grass" (c1); img1: "a dog" (c2), "a cat" (c3); img2: "a bird" (c4).
  // Identical texts score identically against every image (columns c0 and c2 are equal).
  const S = f32([
    [0.8, 0.5, 0.8, 0.1, 0.4],
    [0.7, 0.2, 0.7, 0.6, 0.0],
    [0.9, 0.0, 0.9, 0.0, 0.3],
  ]);
  const captionImage = i32([0, 0, 1, 1, 2]);
  const captionText = i32([0, 1, 0, 2, 3]);
  // Rule "instance": the duplicate attached to the other image is a competitor (ties ahead).
  const inst = await evaluateRetrieval(S, captionImage);
  assert.deepEqual([...inst.ranks.imageToText], [2, 2, 3]);
  assert.deepEqual([...inst.ranks.textToImage], [2, 1, 3, 1, 2]);
  // Rule "text" (default once captionText is given): "a dog" is relevant to img0 and img1.
  const txt = await evaluateRetrieval(S, captionImage, { captionText });
  assert.equal(txt.protocol.duplicateTextRule, "text");
  assert.equal(txt.protocol.captionInstancesWithSeveralRelevantImages, 2);
  assert.deepEqual([...txt.ranks.imageToText], [1, 1, 3]);
  assert.deepEqual([...txt.ranks.textToImage], [2, 1, 2, 1, 2]);
  // Explicit "instance" with captionText given equals the default without it.
  const inst2 = await evaluateRetrieval(S, captionImage, {
    captionText,
    duplicateTextRule: "instance",
  });
  assert.deepEqual(inst2.ranks, inst.ranks);
  // The naive reference agrees for both rules.
  assert.deepEqual(naiveRanks(S, 3, captionImage, captionText), {
    i2t: [...txt.ranks.imageToText],
    t2i: [...txt.ranks.textToImage],
  });
});

Deno.test("retrieval: chunked (tiny blocks, async callback, no scorePairs) equals full matrix", async () => {
  const nI = 7, captionImage = i32([0, 0, 1, 1, 1, 2, 3, 3, 4, 5, 5, 5, 5, 6, 2]);
  const nC = captionImage.length;
  const S = new Float32Array(nI * nC).map((_, k) => ((k * 7919) % 13) / 4); // many ties
  const full = await evaluateRetrieval(S, captionImage);
  const m = matrixScorer(S, nI, nC);
  for (const [bi, bc] of [[1, 1], [2, 3], [3, 16], [7, 4]]) {
    const cb = (i0: number, ni: number, c0: number, nc: number) =>
      Promise.resolve(m.scoreBlock(i0, ni, c0, nc) as Float32Array);
    const r = await evaluateRetrieval(cb, captionImage, {
      nImages: nI,
      imageBlock: bi,
      captionBlock: bc,
      concurrency: 3,
    });
    assert.deepEqual(r.ranks, full.ranks);
    assert.deepEqual(r.imageToText, full.imageToText);
  }
  const naive = naiveRanks(S, nI, captionImage);
  assert.deepEqual([...full.ranks.imageToText], naive.i2t);
  assert.deepEqual([...full.ranks.textToImage], naive.t2i);
});

Deno.test("retrieval: property: chunked == unchunked == naive definition", async () => {
  const arb = fc.record({
    perImage: fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 9 }),
    values: fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 64, maxLength: 64 }),
    bi: fc.integer({ min: 1, max: 10 }),
    bc: fc.integer({ min: 1, max: 70 }),
    texts: fc.integer({ min: 2, max: 60 }),
    shuffleSeed: fc.integer({ min: 0, max: 1000 }),
  });
  await fc.assert(
    fc.asyncProperty(arb, async ({ perImage, values, bi, bc, texts, shuffleSeed }) => {
      const nI = perImage.length;
      const owners: number[] = [];
      perImage.forEach((k, i) => owners.push(...new Array(k).fill(i)));
      // Captions in a scrambled (non-grouped) order for the 5k path.
      for (let j = owners.length - 1; j > 0; j--) {
        const t = (shuffleSeed * 31 + j * 17) % (j + 1);
        [owners[j], owners[t]] = [owners[t], owners[j]];
      }
      const captionImage = Int32Array.from(owners);
      const nC = captionImage.length;
      const S = new Float32Array(nI * nC).map((_, k) => values[(k * 13 + shuffleSeed) % 64] / 2);
      const captionText = new Int32Array(nC).map((_, c) => (c * 7 + shuffleSeed) % texts);
      for (const text of [undefined, captionText]) {
        const full = await evaluateRetrieval(S, captionImage, { captionText: text });
        const m = matrixScorer(S, nI, nC);
        const chunked = await evaluateRetrieval(
          { nImages: nI, nCaptions: nC, scoreBlock: m.scoreBlock },
          captionImage,
          { captionText: text, imageBlock: bi, captionBlock: bc },
        );
        assert.deepEqual(chunked.ranks, full.ranks);
        const naive = naiveRanks(S, nI, captionImage, text);
        assert.deepEqual([...full.ranks.imageToText], naive.i2t);
        assert.deepEqual([...full.ranks.textToImage], naive.t2i);
      }
    }),
    { numRuns: 150, seed: 42 },
  );
});

Deno.test("retrieval: 1k folds (5 folds of consecutive images) = mean of per-fold evaluations", async () => {
  // 10 images x 3 captions, fold size 2 -> 5 folds; scores with ties.
  const nI = 10;
  const captionImage = new Int32Array(30).map((_, c) => Math.floor(c / 3));
  const S = new Float32Array(nI * 30).map((_, k) => ((k * 2654435761) >>> 0) % 11);
  const res = await cocoRetrieval(S, captionImage, { foldSize: 2, imageBlock: 3, captionBlock: 7 });
  const full = await evaluateRetrieval(S, captionImage);
  assert.deepEqual(res["5k"].ranks, full.ranks);
  const k1 = res["1k"]!;
  assert.equal(k1.folds.length, 5);
  let r1 = 0, medr = 0, rsum = 0;
  for (let f = 0; f < 5; f++) {
    const sub = new Float32Array(2 * 6);
    for (let i = 0; i < 2; i++) {
      for (let c = 0; c < 6; c++) sub[i * 6 + c] = S[(2 * f + i) * 30 + 6 * f + c];
    }
    const r = await evaluateRetrieval(sub, Int32Array.from([0, 0, 0, 1, 1, 1]));
    assert.deepEqual(k1.folds[f].ranks, r.ranks);
    r1 += r.imageToText.recall[1];
    medr += r.textToImage.medianRank;
    rsum += r.rsum;
  }
  assert.equal(k1.imageToText.recall[1], r1 / 5);
  assert.equal(k1.textToImage.medianRank, medr / 5);
  assert.equal(k1.rsum, rsum / 5);
  assert.equal(k1.protocol.folds, 5);
});

Deno.test("retrieval: property: each 1k-style fold equals an independent evaluation of its sub-matrix", async () => {
  const arb = fc.record({
    folds: fc.integer({ min: 2, max: 4 }),
    foldSize: fc.integer({ min: 1, max: 4 }),
    perImage: fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 16, maxLength: 16 }),
    values: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 97, maxLength: 97 }),
    texts: fc.integer({ min: 2, max: 30 }),
    useText: fc.boolean(),
  });
  await fc.assert(
    fc.asyncProperty(arb, async ({ folds, foldSize, perImage, values, texts, useText }) => {
      const nI = folds * foldSize;
      const owners: number[] = [];
      for (let i = 0; i < nI; i++) owners.push(...new Array(perImage[i]).fill(i));
      const captionImage = Int32Array.from(owners);
      const nC = captionImage.length;
      const S = new Float32Array(nI * nC).map((_, k) => values[k % 97]);
      const captionText = useText ? new Int32Array(nC).map((_, c) => (c * 5) % texts) : undefined;
      const res = await cocoRetrieval(S, captionImage, {
        foldSize,
        captionText,
        imageBlock: 3,
        captionBlock: 5,
      });
      const k1 = res["1k"]!;
      for (let f = 0; f < folds; f++) {
        const i0 = f * foldSize;
        const caps = [...captionImage.keys()].filter((c) =>
          captionImage[c] >= i0 && captionImage[c] < i0 + foldSize
        );
        const sub = new Float32Array(foldSize * caps.length);
        for (let i = 0; i < foldSize; i++) {
          caps.forEach((c, j) => (sub[i * caps.length + j] = S[(i0 + i) * nC + c]));
        }
        const direct = await evaluateRetrieval(
          sub,
          Int32Array.from(caps, (c) => captionImage[c] - i0),
          {
            captionText: captionText ? Int32Array.from(caps, (c) => captionText[c]) : undefined,
          },
        );
        assert.deepEqual(k1.folds[f].ranks, direct.ranks);
      }
    }),
    { numRuns: 100, seed: 7 },
  );
});

Deno.test("retrieval: 5,000 images -> default 1k protocol has 5 folds of 1,000", async () => {
  const nI = 5000;
  const captionImage = new Int32Array(nI).map((_, c) => c); // one caption each keeps it light
  const hash = (i: number, c: number) =>
    ((Math.imul(i, 73856093) ^ Math.imul(c, 19349663)) >>> 0) % 1000;
  const scorer: BlockScorer = {
    nImages: nI,
    nCaptions: nI,
    scoreBlock(i0, ni, c0, nc) {
      const out = new Float32Array(ni * nc);
      for (let r = 0; r < ni; r++) {
        for (let c = 0; c < nc; c++) {
          out[r * nc + c] = i0 + r === c0 + c ? 990 : hash(i0 + r, c0 + c);
        }
      }
      return out;
    },
  };
  const res = await cocoRetrieval(scorer, captionImage, { imageBlock: 700, captionBlock: 1500 });
  const k1 = res["1k"]!;
  assert.equal(k1.folds.length, 5);
  assert.deepEqual(k1.folds[3].protocol.fold, {
    index: 3,
    images: [3000, 4000],
    captions: [3000, 4000],
  });
  // Fold 2 checked against a direct evaluation of its 1000 x 1000 sub-matrix.
  const sub = new Float32Array(1000 * 1000);
  for (let i = 0; i < 1000; i++) {
    for (let c = 0; c < 1000; c++) sub[i * 1000 + c] = i === c ? 990 : hash(2000 + i, 2000 + c);
  }
  const direct = await evaluateRetrieval(sub, new Int32Array(1000).map((_, c) => c));
  assert.deepEqual(k1.folds[2].ranks, direct.ranks);
  // 5k ranks are never better than the 1k ranks of the same query (more competitors).
  for (let q = 0; q < nI; q++) {
    const f = Math.floor(q / 1000);
    assert.ok(res["5k"].ranks.imageToText[q] >= k1.folds[f].ranks.imageToText[q - 1000 * f]);
  }
  assert.ok(res["5k"].imageToText.recall[1] <= k1.imageToText.recall[1]);
});

Deno.test("retrieval: 1k skipped when not a multiple, and non-contiguous fold captions rejected", async () => {
  const S = new Float32Array(3 * 3).map((_, k) => k);
  const r = await cocoRetrieval(S, i32([0, 1, 2]));
  assert.equal(r["1k"], null);
  assert.match(r.protocol1kSkipped!, /not a multiple/);
  await assert.rejects(
    cocoRetrieval(new Float32Array(4 * 4), i32([0, 2, 1, 3]), { foldSize: 2 }),
    /contiguous/,
  );
});

Deno.test("retrieval: input validation (NaN, image without caption, bad index)", async () => {
  await assert.rejects(evaluateRetrieval(f32([[0, NaN], [1, 1]]), i32([0, 1])), /NaN/);
  await assert.rejects(evaluateRetrieval(f32([[NaN, 0], [1, 1]]), i32([0, 1])), /NaN/);
  await assert.rejects(
    evaluateRetrieval(new Float32Array(3 * 2), i32([0, 2]), { nImages: 3 }),
    /image 1 has no caption/,
  );
  await assert.rejects(evaluateRetrieval(new Float32Array(4), i32([0, 5])), /outside/);
});

Deno.test("directionMetrics: numpy-style median for even counts", () => {
  const m = directionMetrics(i32([1, 2, 3, 10]));
  assert.equal(m.medianRank, 2.5);
  assert.equal(m.meanRank, 4);
  assert.equal(m.recall[1], 25);
  assert.equal(m.recall[10], 100);
});
