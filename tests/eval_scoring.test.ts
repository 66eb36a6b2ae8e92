import assert from "node:assert/strict";
import {
  createParallelScorer,
  KernelScorer,
  type KernelWorkerSpec,
  PooledScorer,
} from "../stages/lib/eval/scoring.ts";
import { kernelScorer } from "../stages/lib/eval/similarity_scoring.ts";
import { loadSimilarity } from "../stages/lib/similarity/registry.ts";
import { evaluateRetrieval } from "../stages/lib/eval/retrieval/mod.ts";
import { kmeRecord, kmeScorer, loadKme, randomSets } from "./helpers/point_sets.ts";
import { kmeScoreReference } from "./helpers/kme_reference.ts";
import { findOpenBlas } from "../stages/lib/eval/openblas.ts";

// "blas" needs OpenBLAS: .ci/run installs it, so on CI its absence fails these tests;
// elsewhere they test the other engines and say so.
const BLAS = findOpenBlas() !== undefined || Deno.env.get("CI") !== undefined;
const BACKENDS = BLAS ? ["wasm", "blas", "js"] as const : ["wasm", "js"] as const;
if (!BLAS) console.log("eval_scoring: OpenBLAS not installed, the blas engine is not tested");

Deno.test("KME scorer equals the naive double-sum reference (padding, odd shapes)", async () => {
  for (const [M, N, d, padI, padC] of [[5, 11, 13, 1, 3], [16, 16, 64, 0, 0], [3, 9, 7, 0, 4]]) {
    const A = randomSets(6, M, d, 1 + M, padI), B = randomSets(9, N, d, 2 + N, padC);
    for (const sigma2 of [0.5, 0.1]) {
      for (const backend of BACKENDS) {
        const s = await kmeScorer(A, B, sigma2, backend);
        const blk = s.scoreBlock(0, 6, 0, 9);
        for (let i = 0; i < 6; i++) {
          for (let c = 0; c < 9; c++) {
            const ref = kmeScoreReference(A, i, B, c, sigma2);
            const got = blk[i * 9 + c];
            assert.ok(
              Math.abs(got - ref) <= 2e-6 * Math.max(1, Math.abs(ref)),
              `${backend} M=${M} N=${N} d=${d} s2=${sigma2} (${i},${c}): ${got} vs ${ref}`,
            );
          }
        }
      }
    }
  }
});

Deno.test("KME scorer: chunked blocks and scattered pairs are bit-identical to one full block", async () => {
  const A = randomSets(13, 6, 10, 3, 2), B = randomSets(21, 10, 10, 4, 3);
  for (const backend of BACKENDS) {
    const s = await kmeScorer(A, B, 0.2, backend);
    const full = s.scoreBlock(0, 13, 0, 21);
    for (const [bi, bc] of [[1, 1], [4, 5], [13, 2], [5, 21]]) {
      for (let i0 = 0; i0 < 13; i0 += bi) {
        for (let c0 = 0; c0 < 21; c0 += bc) {
          const ni = Math.min(bi, 13 - i0), nc = Math.min(bc, 21 - c0);
          const blk = s.scoreBlock(i0, ni, c0, nc);
          for (let r = 0; r < ni; r++) {
            for (let c = 0; c < nc; c++) {
              assert.equal(blk[r * nc + c], full[(i0 + r) * 21 + c0 + c]);
            }
          }
        }
      }
    }
    const imgs = Int32Array.from([12, 0, 5, 5, 7]), caps = Int32Array.from([20, 0, 3, 4, 19]);
    const pairs = s.scorePairs(imgs, caps);
    for (let p = 0; p < 5; p++) assert.equal(pairs[p], full[imgs[p] * 21 + caps[p]]);
  }
});

Deno.test("KME with one point per input equals CLIP (scale 1/sigma2) up to the constant -1/sigma2", async () => {
  const d = 24;
  const A = randomSets(7, 1, d, 5), B = randomSets(11, 1, d, 6);
  for (const sigma2 of [1, 0.07, 0.02]) {
    const clip = new PooledScorer({
      images: A.data,
      captions: B.data,
      dim: d,
      scale: 1 / sigma2,
    })
      .scoreBlock(0, 7, 0, 11);
    for (const backend of BACKENDS) {
      const kme = (await kmeScorer(A, B, sigma2, backend)).scoreBlock(0, 7, 0, 11);
      for (let k = 0; k < 77; k++) {
        const expected = clip[k] - 1 / sigma2;
        assert.ok(
          Math.abs(kme[k] - expected) <= 2e-6 * Math.max(1, Math.abs(expected)),
          `${backend} sigma2=${sigma2}: ${kme[k]} vs ${expected}`,
        );
      }
    }
  }
});

// The kernel engines' `finish` hook (a kernel similarity's pair score from the pair's
// log-sum-exp) on another finish than KME's: scale * exp(KME score) = scale * sum_ij alpha_i
// beta_j k(u_i, v_j), the kernel mean embedding inner product linearly scaled (the former
// "wpse" variant of the KME scorer).
Deno.test("kernel scorer with a custom finish: scale * exp(KME score) (kernel mean embedding inner product)", () => {
  const A = randomSets(4, 5, 9, 21, 1), B = randomSets(6, 7, 9, 22, 2);
  const sigma2 = 0.3, scale = 12, inv = 1 / sigma2;
  for (const backend of BACKENDS) {
    const w = new KernelScorer({
      images: A,
      captions: B,
      score: { invSigma2: inv, finish: (lse) => scale * Math.exp(lse - inv) },
      backend,
      similarity: `kme-exp sigma2=${sigma2} scale=${scale}`,
    });
    const blk = w.scoreBlock(0, 4, 0, 6);
    for (let i = 0; i < 4; i++) {
      for (let c = 0; c < 6; c++) {
        const ref = scale * Math.exp(kmeScoreReference(A, i, B, c, sigma2));
        assert.ok(
          Math.abs(blk[i * 6 + c] - ref) <= 2e-6 * ref,
          `${backend}: ${blk[i * 6 + c]} vs ${ref}`,
        );
      }
    }
    assert.deepEqual(
      w.scorePairs(Int32Array.from([3]), Int32Array.from([5])),
      blk.subarray(23, 24),
    );
    assert.match(w.description, /^kme-exp sigma2=0\.3 scale=12 backend=/);
  }
});

Deno.test("KME LSE form stays finite where the direct double sum underflows", async () => {
  const A = randomSets(3, 4, 16, 7), B = randomSets(4, 5, 16, 8);
  const sigma2 = 0.0005; // exponents (dot - 1) / sigma2 reach -1000: below f64 range
  const wasm = (await kmeScorer(A, B, sigma2)).scoreBlock(0, 3, 0, 4);
  const js = (await kmeScorer(A, B, sigma2, "js")).scoreBlock(0, 3, 0, 4);
  let underflows = 0;
  for (let k = 0; k < 12; k++) {
    assert.ok(Number.isFinite(wasm[k]));
    assert.ok(Math.abs(wasm[k] - js[k]) <= 1e-5 * Math.abs(js[k]), `${wasm[k]} vs ${js[k]}`);
    if (kmeScoreReference(A, Math.floor(k / 4), B, k % 4, sigma2) === -Infinity) underflows++;
  }
  assert.ok(underflows > 0, "the direct form was expected to underflow somewhere");
});

Deno.test("KME scorer input validation", async () => {
  const A = randomSets(2, 3, 4, 9), B = randomSets(2, 3, 4, 10);
  B.logits.fill(-Infinity, 3, 6);
  const kme = await loadKme(0.1);
  assert.throws(() => kernelScorer(kme, A, B), /set 1 has no finite weight logit/);
  assert.throws(() => kernelScorer(kme, A, randomSets(2, 3, 5, 1)), /dims differ/);
  const ok = kernelScorer(kme, A, randomSets(2, 3, 4, 1));
  assert.throws(() => ok.scoreBlock(1, 2, 0, 1), /outside/);
});

Deno.test("retrieval through the chunked KME scorer equals retrieval on its full matrix", async () => {
  const nI = 9;
  const captionImage = Int32Array.from([0, 0, 1, 1, 1, 2, 3, 4, 4, 5, 6, 6, 7, 8, 8, 8, 8]);
  const A = randomSets(nI, 4, 8, 11), B = randomSets(captionImage.length, 5, 8, 12, 1);
  const s = await kmeScorer(A, B, 0.3);
  const full = s.scoreBlock(0, nI, 0, captionImage.length);
  const a = await evaluateRetrieval(full, captionImage);
  const b = await evaluateRetrieval(s, captionImage, { imageBlock: 2, captionBlock: 5 });
  assert.deepEqual(b.ranks, a.ranks);
  assert.deepEqual(b.textToImage, a.textToImage);
});

Deno.test("parallel (Web Worker) scorer equals the in-thread scorer bit for bit", async () => {
  const A = randomSets(10, 5, 12, 13, 1), B = randomSets(17, 7, 12, 14, 2);
  const spec: KernelWorkerSpec = { images: A, captions: B, similarity: kmeRecord(0.15) };
  const local = kernelScorer(await loadSimilarity(spec.similarity), A, B);
  const par = await createParallelScorer(spec, { workers: 2 });
  try {
    assert.equal(par.nImages, 10);
    assert.equal(par.nCaptions, 17);
    assert.equal(par.description, `${local.description} workers=2`);
    const [x, y] = await Promise.all([par.scoreBlock(0, 10, 0, 17), par.scoreBlock(3, 4, 5, 6)]);
    assert.deepEqual(x, local.scoreBlock(0, 10, 0, 17));
    assert.deepEqual(y, local.scoreBlock(3, 4, 5, 6));
    const captionImage = Int32Array.from(
      { length: 17 },
      (_, c) => Math.min(9, Math.floor(c / 1.7)),
    );
    const r1 = await evaluateRetrieval(par, captionImage, { imageBlock: 3, captionBlock: 4 });
    const r2 = await evaluateRetrieval(local, captionImage);
    assert.deepEqual(r1.ranks, r2.ranks);
    await assert.rejects(par.scoreBlock(0, 11, 0, 1), /outside/);
  } finally {
    par.close();
  }
});

Deno.test("CLIP (pooled) scorer: scale * dot, pair-deterministic", () => {
  const u = Float32Array.from([1, 0, 0, 1, 0.6, 0.8]);
  const v = Float32Array.from([0, 1, 0.6, 0.8]);
  const s = new PooledScorer({ images: u, captions: v, dim: 2, scale: 10 });
  const blk = s.scoreBlock(0, 3, 0, 2);
  const expected = [0, 6, 10, 8, 8, 10];
  for (let k = 0; k < 6; k++) assert.ok(Math.abs(blk[k] - expected[k]) < 1e-5);
  assert.deepEqual(s.scorePairs(Int32Array.from([2]), Int32Array.from([1])), blk.subarray(5, 6));
});
