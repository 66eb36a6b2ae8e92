/** stages/lib/spectrum.ts: singular values against hand-computed cases and invariants; ranks. */
import assert from "node:assert/strict";
import {
  bidiagonalSingularValues,
  energyCount,
  numericalRank,
  singularValues,
  spectrum,
} from "../stages/lib/spectrum.ts";
import { Rng } from "../stages/lib/random.ts";

const close = (a: number, b: number, tol: number, what = "") =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

/** A random orthogonal n x n matrix: a product of n Householder reflections. */
function orthogonal(n: number, rng: Rng): Float64Array {
  const q = new Float64Array(n * n);
  for (let i = 0; i < n; i++) q[i * n + i] = 1;
  for (let k = 0; k < n; k++) {
    const v = Float64Array.from({ length: n }, () => rng.normal());
    const vv = v.reduce((s, x) => s + x * x, 0);
    // q <- (I - 2 v v^T / vv) q
    for (let j = 0; j < n; j++) {
      let dot = 0;
      for (let i = 0; i < n; i++) dot += v[i] * q[i * n + j];
      for (let i = 0; i < n; i++) q[i * n + j] -= (2 * v[i] * dot) / vv;
    }
  }
  return q;
}

function matmul(a: Float64Array, b: Float64Array, m: number, k: number, n: number) {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let t = 0; t < k; t++) {
      const x = a[i * k + t];
      for (let j = 0; j < n; j++) c[i * n + j] += x * b[t * n + j];
    }
  }
  return c;
}

Deno.test("singular values: hand-computed 2x2, diagonal and rank-1 matrices", () => {
  // [[3, 0], [4, 5]]: A^T A = [[25, 20], [20, 25]], eigenvalues 45 and 5.
  const a = singularValues([3, 0, 4, 5], 2, 2);
  close(a[0], Math.sqrt(45), 1e-14, "sigma1");
  close(a[1], Math.sqrt(5), 1e-14, "sigma2");
  // A permuted, signed diagonal: the absolute values, sorted.
  const diag = singularValues([0, 0, -2, 7, 0, 0, 0, 0.5, 0], 3, 3);
  [7, 2, 0.5].forEach((x, i) => close(diag[i], x, 1e-15 * 7, `diagonal ${i}`));
  // u v^T (3 x 4): one singular value |u| |v| = sqrt(14) sqrt(30), the rest 0.
  const u = [1, 2, 3];
  const v = [1, -2, 3, -4];
  const r1 = singularValues(u.flatMap((x) => v.map((y) => x * y)), 3, 4);
  assert.equal(r1.length, 3);
  close(r1[0], Math.sqrt(14 * 30), 1e-13, "rank-1 sigma1");
  assert.ok(r1[1] < 1e-13 && r1[2] < 1e-13, `rest ${r1[1]}, ${r1[2]}`);
  assert.equal(numericalRank(r1), 1);
  // Bidiagonal directly: [[1, 1], [0, 1]] has sigma = (sqrt(5) +- 1) / 2.
  const b = bidiagonalSingularValues([1, 1], [1]);
  close(b[0], (Math.sqrt(5) + 1) / 2, 1e-15, "golden");
  close(b[1], (Math.sqrt(5) - 1) / 2, 1e-15, "golden - 1");
  assert.deepEqual(Array.from(singularValues([], 0, 3)), []);
});

Deno.test("singular values: Q1 diag(sigma) Q2 gives sigma back, tall and wide", () => {
  const rng = new Rng(4);
  const m = 37, n = 23;
  // Spread over 12 orders of magnitude (none at the rank tolerance), a zero, a repeated value.
  const sigma = Array.from({ length: n }, (_, i) => (i === 5 ? 0 : 10 ** (2.5 - (i % 13))));
  sigma[7] = sigma[8];
  const d = new Float64Array(m * n);
  sigma.forEach((s, i) => (d[i * n + i] = s));
  const a = matmul(matmul(orthogonal(m, rng), d, m, m, n), orthogonal(n, rng), m, n, n);
  const want = [...sigma].sort((x, y) => y - x);
  const tall = singularValues(a, m, n);
  const at = new Float64Array(n * m);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) at[j * m + i] = a[i * n + j];
  const wide = singularValues(at, n, m);
  for (let i = 0; i < n; i++) {
    close(tall[i], want[i], 1e-12 * want[0], `tall sigma ${i}`);
    close(wide[i], want[i], 1e-12 * want[0], `wide sigma ${i}`);
  }
  // The rank at 1e-6 relative counts the values above 10^2.5 * 1e-6.
  const rank = want.filter((s) => s > 1e-6 * want[0]).length;
  assert.equal(numericalRank(tall), rank);
  // sum sigma^2 = ||A||_F^2.
  const fro = a.reduce((s, x) => s + x * x, 0);
  close(tall.reduce((s, x) => s + x * x, 0), fro, 1e-12 * fro, "Frobenius");
});

Deno.test("singular values: a random rank-5 product has exactly 5 above the tolerance", () => {
  const rng = new Rng(11);
  const m = 60, n = 45, k = 5;
  const u = Float64Array.from({ length: m * k }, () => rng.normal());
  const v = Float64Array.from({ length: k * n }, () => rng.normal());
  const s = spectrum(matmul(u, v, m, k, n), m, n);
  assert.equal(s.rank, 5);
  assert.deepEqual(s.shape, [60, 45]);
  assert.ok(s.singularValues[5] < 1e-12 * s.singularValues[0]);
  assert.ok(s.residualRms["8"] < 1e-12 && s.residualRms["4"] > 1e-3);
  assert.equal(s.rankAt["1e-6"], 5);
});

Deno.test("energy count, numerical rank and residuals on hand-made spectra", () => {
  // Squares 16, 9, 4, 1 (total 30): 99% of 30 = 29.7 needs all four; 90% (27) needs three.
  assert.equal(energyCount([4, 3, 2, 1]), 4);
  assert.equal(energyCount([4, 3, 2, 1], 0.9), 3);
  assert.equal(energyCount([5, 0, 0]), 1);
  assert.equal(energyCount([0, 0]), 0);
  assert.equal(numericalRank([1, 1.001e-6, 1e-6]), 2); // strictly above rtol * sigma_1
  assert.equal(numericalRank([1, 1e-3], 1e-2), 1);
  assert.equal(numericalRank([]), 0);
  // diag(4, 3, 2, 1) as a 4 x 4 matrix: residual after rank 2 = sqrt((4 + 1) / 16).
  const a = new Float64Array(16);
  [4, 3, 2, 1].forEach((x, i) => (a[i * 4 + i] = x));
  const s = spectrum(a, 4, 4);
  close(s.residualRms["2"], Math.sqrt(5 / 16), 1e-15, "residual 2");
  close(s.residualRms["1"], Math.sqrt(14 / 16), 1e-15, "residual 1");
  assert.equal(s.residualRms["4"], 0);
  close(s.rms, Math.sqrt(30 / 16), 1e-15, "rms");
  assert.equal(s.energy99, 4);
  assert.throws(() => singularValues([1, NaN], 1, 2), /not finite/);
  assert.throws(() => singularValues([1, 2, 3], 2, 2), /expected 2 x 2/);
});
