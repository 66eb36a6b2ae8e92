import assert from "node:assert/strict";
import {
  averageRanks,
  conditionalFidelity,
  pearson,
  pmiFidelity,
  restrictedFidelity,
  softmaxKl,
  spearman,
  weightedFidelity,
} from "../stages/lib/eval/pmi.ts";
import { Rng } from "../stages/lib/random.ts";

const close = (a: number, b: number, tol = 1e-12) =>
  assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

Deno.test("PMI fidelity: s = PMI + constant is perfect after the shift", () => {
  const pmi = [0.3, -1.2, 2.5, 0, 0.7];
  const s = pmi.map((v) => v - 3);
  const r = pmiFidelity(s, pmi, { pairs: "all (x, y) with p(x, y) > 0" });
  close(r.pearson, 1);
  close(r.spearman, 1);
  close(r.rmse, 0, 1e-12);
  close(r.shift, 3);
  assert.equal(r.protocol.name, "pmi-fidelity");
});

Deno.test("PMI fidelity: hand-computed values", () => {
  // s - pmi = [0, -1, 1, 0]: shift 0, rmse sqrt(2/4); deviations give r = 4/5.
  const r = pmiFidelity([1, 2, 3, 4], [1, 3, 2, 4]);
  close(r.pearson, 0.8);
  close(r.spearman, 0.8);
  close(r.rmse, Math.SQRT1_2);
  close(r.shift, 0);
  // A monotone but non-linear relation: Spearman 1, Pearson below 1.
  const x = [1, 2, 3, 4, 5];
  const m = pmiFidelity(x.map(Math.exp), x);
  close(m.spearman, 1);
  assert.ok(m.pearson < 0.95);
});

Deno.test("Spearman with ties uses average ranks (scipy rankdata 'average')", () => {
  assert.deepEqual([...averageRanks([10, 20, 20, 5])], [2, 3.5, 3.5, 1]);
  assert.deepEqual([...averageRanks([7, 7, 7])], [2, 2, 2]);
  // ranks x = [1, 2.5, 2.5, 4] vs y = [1, 2, 3, 4]: 4.5 / sqrt(4.5 * 5)
  close(spearman([1, 2, 2, 3], [1, 2, 3, 4]), 4.5 / Math.sqrt(22.5));
  assert.ok(Number.isNaN(pearson([1, 1, 1], [1, 2, 3])));
});

Deno.test("PMI fidelity rejects non-finite values", () => {
  assert.throws(() => pmiFidelity([0, 1], [-Infinity, 1]), /non-finite/);
  assert.throws(() => pmiFidelity([0, 1], [0]), /lengths differ/);
});

Deno.test("weighted fidelity: hand-computed cases; integer weights = repeated pairs", () => {
  const s = [1, 2, 3, 4];
  const t = [1, 3, 2, 4];
  // Equal weights: pmiFidelity's Pearson and RMSE.
  const eq = weightedFidelity(s, t, [3, 3, 3, 3]);
  close(eq.pearson, 0.8);
  close(eq.rmse, Math.SQRT1_2);
  close(eq.shift, 0);
  // Only pairs 0 and 1 count: (1, 1) and (2, 3); shift = mean(t - s) = 0.5, residuals
  // (1 + 0.5 - 1, 2 + 0.5 - 3) = (0.5, -0.5): rmse 0.5; two points: r = 1.
  const two = weightedFidelity(s, t, [1, 1, 0, 0]);
  close(two.pearson, 1);
  close(two.shift, 0.5);
  close(two.rmse, 0.5);
  // Weight 2 on the first pair = the first pair twice, unweighted.
  const w = weightedFidelity(s, t, [2, 1, 1, 3]);
  const rep = pmiFidelity([1, 1, 2, 3, 4, 4, 4], [1, 1, 3, 2, 4, 4, 4]);
  close(w.pearson, rep.pearson);
  close(w.rmse, rep.rmse);
  close(w.shift, rep.shift);
  assert.ok(Number.isNaN(weightedFidelity(s, t, [0, 0, 0, 0]).pearson));
  assert.throws(() => weightedFidelity(s, t, [1, -1, 1, 1]), /bad value/);
  assert.throws(() => weightedFidelity(s, t, [1, 1]), /lengths differ/);
});

Deno.test("restricted fidelity: only pairs with PMI > -3, by hand", () => {
  // Kept: (s, t) = (0, -2), (1, 0), (3, 1); (9, -5) and (4, -3) are not (-3 is not > -3).
  // Deviations s: (-4, -1, 5) / 3, t: (-5, 1, 4) / 3 -> r = 39 / 42 = 13 / 14;
  // shift = mean(t - s) = -5/3, residuals (1, -2, 1) / 3 -> rmse = sqrt(6 / 27) = sqrt(2) / 3.
  const r = restrictedFidelity([9, 0, 1, 4, 3], [-5, -2, 0, -3, 1]);
  assert.equal(r.n, 3);
  close(r.pearson, 13 / 14);
  close(r.shift, -5 / 3);
  close(r.rmse, Math.SQRT2 / 3);
  // Unrestricted, the excluded pairs would weigh in.
  assert.ok(pmiFidelity([9, 0, 1, 4, 3], [-5, -2, 0, -3, 1]).pearson < 0);
  assert.equal(restrictedFidelity([1], [-4]).n, 0);
});

Deno.test("softmax KL: hand-computed values", () => {
  // p = (0.75, 0.25), q = (0.5, 0.5): 0.75 log 1.5 + 0.25 log 0.5.
  close(
    softmaxKl(Float64Array.of(Math.log(3), 0), Float64Array.of(7, 7)),
    0.75 * Math.log(1.5) + 0.25 * Math.log(0.5),
  );
  close(softmaxKl(Float64Array.of(1, 2, 3), Float64Array.of(11, 12, 13)), 0);
});

Deno.test("conditional fidelity: hand-computed KLs, 0 for s = PMI + c, > 0 when perturbed", () => {
  // One image, two texts with p(y) = (0.25, 0.75) and PMI = (log 2, log 2/3): p(y | x) =
  // (0.5, 0.5). A constant score gives q(y | x) = p(y): KL = 0.5 log 2 + 0.5 log(2/3).
  const one = conditionalFidelity({
    rows: 1,
    cols: 2,
    pmi: [Math.log(2), Math.log(2 / 3)],
    score: [0, 0],
    text: Int32Array.of(0, 1),
    logPy: [Math.log(0.25), Math.log(0.75)],
  });
  close(one.imageToText, 0.5 * Math.log(2) + 0.5 * Math.log(2 / 3));
  // text->image over one image: both conditionals are the point mass, KL 0.
  close(one.textToImage, 0);
  // Two images, one caption: PMI = (log 3, 0) gives p(x | y) = (0.75, 0.25); a constant score
  // q = (0.5, 0.5). image->text over one text: 0.
  const col = conditionalFidelity({
    rows: 2,
    cols: 1,
    pmi: [Math.log(3), 0],
    score: [5, 5],
    text: Int32Array.of(0),
    logPy: [Math.log(0.1)],
  });
  close(col.textToImage, 0.75 * Math.log(1.5) + 0.25 * Math.log(0.5));
  close(col.imageToText, 0);

  // A random 12 x 9 grid whose columns 7, 8 repeat the texts of columns 0, 3.
  const rng = new Rng(3);
  const R = 12, C = 9, U = 7;
  const text = Int32Array.of(0, 1, 2, 3, 4, 5, 6, 0, 3);
  const base = Float64Array.from({ length: R * U }, () => rng.normal() * 2);
  const pmi = Float64Array.from(
    { length: R * C },
    (_, k) => base[Math.floor(k / C) * U + text[k % C]],
  );
  const logPy = Float64Array.from({ length: U }, () => Math.log(0.01 + rng.float()));
  const kl = (score: ArrayLike<number>) =>
    conditionalFidelity({ rows: R, cols: C, pmi, score, text, logPy });
  const exact = kl(pmi.map((v) => v - 4.2));
  assert.ok(exact.imageToText < 1e-12 && exact.textToImage < 1e-12, JSON.stringify(exact));
  // s = PMI + c(x): image->text still 0 (renormalised per image), text->image not.
  const perRow = kl(pmi.map((v, k) => v + Math.floor(k / C)));
  assert.ok(perRow.imageToText < 1e-12, `${perRow.imageToText}`);
  assert.ok(perRow.textToImage > 0.01, `${perRow.textToImage}`);
  // Noise per (image, text): duplicate columns keep equal scores, as in the pmi stage.
  const noise = Float64Array.from({ length: R * U }, () => rng.normal() * 0.5);
  const noisy = kl(pmi.map((v, k) => v + noise[Math.floor(k / C) * U + text[k % C]]));
  assert.ok(noisy.imageToText > 0.01 && noisy.textToImage > 0.01, JSON.stringify(noisy));
  // Per-query values average to the means; the duplicate columns give equal text->image KLs.
  close(noisy.perImage.reduce((a, b) => a + b, 0) / R, noisy.imageToText);
  close(noisy.perCaption[7], noisy.perCaption[0]);
  assert.throws(
    () => conditionalFidelity({ rows: R, cols: C, pmi, score: pmi, text, logPy: [0] }),
    /column 1: text 1/,
  );
});
