import assert from "node:assert/strict";
import { averageRanks, pearson, pmiFidelity, spearman } from "../stages/lib/eval/pmi.ts";

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
