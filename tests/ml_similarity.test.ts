/**
 * Similarity math (stages/lib/model/similarity.ts) on the cpu backend:
 * Proposition 2 (KME with one point == CLIP up to a constant), LSE form == direct double sum,
 * gradients == central finite differences, padding handling.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../stages/lib/tf/backend.ts";
import {
  clipLogits,
  infoNce,
  kmeLogits,
  logWeights,
  type PointSet,
  wpseLogits,
} from "../stages/lib/model/similarity.ts";
import { keyedRng, type Rng } from "../stages/lib/random.ts";

await initBackend("cpu");

function randn(rng: Rng, n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal() * scale);
}

/** Unit rows of a [rows, d] matrix (float64 normalisation, stored as float32). */
function unitRows(x: Float32Array, d: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / d; r++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += x[r * d + k] ** 2;
    const inv = 1 / Math.sqrt(s);
    for (let k = 0; k < d; k++) out[r * d + k] = x[r * d + k] * inv;
  }
  return out;
}

function pointSet(
  points: Float32Array,
  weights: Float32Array,
  b: number,
  m: number,
  d: number,
): PointSet {
  return {
    points: tf.tensor3d(points, [b, m, d]),
    weights: tf.tensor2d(weights, [b, m]),
  };
}

/** Direct form: log sum_ij alpha_i beta_j exp((<u_i, v_j> - 1) / s2), in float64. */
function kmeDirect(
  u: Float32Array,
  a: Float32Array,
  v: Float32Array,
  b: Float32Array,
  m: number,
  n: number,
  d: number,
  s2: number,
): number {
  const soft = (w: Float32Array) => {
    const mx = Math.max(...w);
    const e = Array.from(w, (x) => Math.exp(x - mx));
    const z = e.reduce((p, q) => p + q, 0);
    return e.map((x) => x / z);
  };
  const al = soft(a);
  const be = soft(b);
  let s = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += u[i * d + k] * v[j * d + k];
      s += al[i] * be[j] * Math.exp((dot - 1) / s2);
    }
  }
  return Math.log(s);
}

Deno.test("ml/similarity: KME with one point per input equals CLIP logits up to a constant (Prop. 2)", async () => {
  const rng = keyedRng(1);
  const [b, d, s2] = [6, 8, 0.05];
  const u = unitRows(randn(rng, b * d), d);
  const v = unitRows(randn(rng, b * d), d);
  const x = pointSet(u, randn(rng, b), b, 1, d); // weights are irrelevant with one point
  const y = pointSet(v, randn(rng, b), b, 1, d);
  const rho = tf.scalar(Math.log(s2));
  const kme = await kmeLogits(x, y, rho).data();
  // CLIP with logit scale exp(t) = 1 / sigma^2.
  const clip = await clipLogits(x, y, tf.scalar(Math.log(1 / s2))).data();
  const shift = kme[0] - clip[0];
  assert.ok(Math.abs(shift + 1 / s2) < 1e-3, `constant is -1/sigma^2, got ${shift}`);
  for (let i = 0; i < kme.length; i++) {
    assert.ok(Math.abs(kme[i] - clip[i] - shift) < 1e-4, `entry ${i}: ${kme[i]} vs ${clip[i]}`);
  }
  // ...so the InfoNCE losses coincide (softmax is shift-invariant).
  const lk = (await infoNce(kmeLogits(x, y, rho)).data())[0];
  const lc = (await infoNce(clipLogits(x, y, tf.scalar(Math.log(1 / s2)))).data())[0];
  assert.ok(Math.abs(lk - lc) < 1e-5, `losses ${lk} vs ${lc}`);
  tf.dispose([x.points, x.weights, y.points, y.weights, rho]);
});

Deno.test("ml/similarity: LSE form equals the direct double sum, with padding", async () => {
  const rng = keyedRng(2);
  const [b1, b2, m, n, d] = [3, 4, 5, 3, 6];
  for (const s2 of [0.05, 0.3, 2]) {
    const u = unitRows(randn(rng, b1 * m * d), d);
    const v = unitRows(randn(rng, b2 * n * d), d);
    const a = randn(rng, b1 * m);
    const bw = randn(rng, b2 * n);
    // Pad: the last point of text 0 and the last two of text 2 have weight -inf.
    bw[0 * n + n - 1] = -Infinity;
    bw[2 * n + n - 1] = -Infinity;
    bw[2 * n + n - 2] = -Infinity;
    const x = pointSet(u, a, b1, m, d);
    const y = pointSet(v, bw, b2, n, d);
    const got = await kmeLogits(x, y, tf.scalar(Math.log(s2))).data();
    for (let i = 0; i < b1; i++) {
      for (let j = 0; j < b2; j++) {
        const real = bw.slice(j * n, (j + 1) * n);
        const keep = [...real.keys()].filter((k) => real[k] !== -Infinity);
        const want = kmeDirect(
          u.slice(i * m * d, (i + 1) * m * d),
          a.slice(i * m, (i + 1) * m),
          Float32Array.from(
            keep.flatMap((k) => [...v.slice((j * n + k) * d, (j * n + k + 1) * d)]),
          ),
          Float32Array.from(keep.map((k) => real[k])),
          m,
          keep.length,
          d,
          s2,
        );
        const g = got[i * b2 + j];
        assert.ok(Number.isFinite(g), `pair (${i},${j}) is ${g}`);
        assert.ok(
          Math.abs(g - want) <= 2e-5 * Math.max(1, Math.abs(want)),
          `sigma2 ${s2} pair (${i},${j}): LSE ${g} vs direct ${want}`,
        );
      }
    }
    // WPSE is scale * exp(KME logit).
    const w = await wpseLogits(x, y, tf.scalar(Math.log(10)), tf.scalar(Math.log(s2))).data();
    for (let k = 0; k < w.length; k++) {
      assert.ok(Math.abs(w[k] - 10 * Math.exp(got[k])) <= 1e-5 * Math.max(1, w[k]));
    }
    tf.dispose([x.points, x.weights, y.points, y.weights]);
  }
});

Deno.test("ml/similarity: log weights of padded points are -inf and their gradient is 0", async () => {
  const w = tf.tensor2d([[0.5, -1, -Infinity], [2, -Infinity, -Infinity]]);
  const lw = await logWeights(w).data();
  assert.equal(lw[2], -Infinity);
  assert.equal(lw[4], -Infinity);
  assert.ok(Math.abs(lw[3]) < 1e-7, "a single real point has weight 1");
  const g = await tf.grad((x: tf.Tensor) =>
    tf.sum(tf.mul(tf.exp(logWeights(x as tf.Tensor2D)), tf.tensor2d([[1, 2, 3], [4, 5, 6]])))
  )(w).data();
  for (const k of [2, 4, 5]) assert.equal(g[k], 0, `padded gradient ${k}`);
  for (const x of g) assert.ok(Number.isFinite(x));
  w.dispose();
});

/**
 * Central finite differences of f along random directions vs the analytic directional
 * derivative <grad f, D>, for every input separately (float32 on cpu).
 */
async function checkGradients(
  name: string,
  f: (xs: tf.Tensor[]) => tf.Scalar,
  inputs: tf.Tensor[],
  rng: Rng,
  eps = 1e-2,
  tol = 2e-2,
) {
  const grads = tf.grads((...xs: tf.Tensor[]) => f(xs))(inputs);
  for (let k = 0; k < inputs.length; k++) {
    for (let trial = 0; trial < 2; trial++) {
      const dir = tf.tensor(randn(rng, inputs[k].size), inputs[k].shape);
      const shifted = (sgn: number) => {
        const xs = inputs.map((x, i) => (i === k ? tf.add(x, tf.mul(dir, sgn * eps)) : x));
        return f(xs);
      };
      const fp = (await shifted(1).data())[0];
      const fm = (await shifted(-1).data())[0];
      const fd = (fp - fm) / (2 * eps);
      const an = (await tf.sum(tf.mul(grads[k], dir)).data())[0];
      assert.ok(
        Math.abs(fd - an) <= tol * Math.max(1, Math.abs(an)),
        `${name}: input ${k} trial ${trial}: finite difference ${fd} vs analytic ${an}`,
      );
      dir.dispose();
    }
  }
  tf.dispose(grads);
}

Deno.test("ml/similarity: gradients of KME and CLIP logits and InfoNCE match finite differences", async () => {
  const rng = keyedRng(3);
  const [b, m, n, d] = [4, 3, 2, 5];
  // Unnormalised points: the functions do not require unit rows, and the check is cleaner.
  const u = tf.tensor3d(randn(rng, b * m * d, 0.5), [b, m, d]);
  const a = tf.tensor2d(randn(rng, b * m), [b, m]);
  const v = tf.tensor3d(randn(rng, b * n * d, 0.5), [b, n, d]);
  const wv = randn(rng, b * n);
  wv[1] = -Infinity; // one padded text point
  const bw = tf.tensor2d(wv, [b, n]);
  const rho = tf.scalar(Math.log(0.5));
  const t = tf.scalar(Math.log(3));
  const r = tf.tensor2d(randn(rng, b * b), [b, b]); // random linear functional of the logits

  // KME: all of points, weights (the padded entry's direction is masked by zeroing it in D
  // would be needed; -inf + eps*D stays -inf so the difference is exact anyway) and rho.
  await checkGradients(
    "kme logits",
    ([u1, a1, v1, rho1]) =>
      tf.sum(tf.mul(
        kmeLogits({ points: u1 as tf.Tensor3D, weights: a1 as tf.Tensor2D }, {
          points: v1 as tf.Tensor3D,
          weights: bw,
        }, rho1 as tf.Scalar),
        r,
      )),
    [u, a, v, rho],
    rng,
  );
  await checkGradients(
    "kme infoNCE",
    ([u1, v1, rho1]) =>
      infoNce(kmeLogits({ points: u1 as tf.Tensor3D, weights: a }, {
        points: v1 as tf.Tensor3D,
        weights: bw,
      }, rho1 as tf.Scalar)),
    [u, v, rho],
    rng,
  );
  const uc = tf.tensor2d(randn(rng, b * d, 0.5), [b, d]);
  const vc = tf.tensor2d(randn(rng, b * d, 0.5), [b, d]);
  await checkGradients(
    "clip logits",
    ([u1, v1, t1]) =>
      tf.sum(tf.mul(clipLogits(u1 as tf.Tensor2D, v1 as tf.Tensor2D, t1 as tf.Scalar), r)),
    [uc, vc, t],
    rng,
  );
  await checkGradients(
    "clip infoNCE",
    ([u1, v1, t1]) => infoNce(clipLogits(u1 as tf.Tensor2D, v1 as tf.Tensor2D, t1 as tf.Scalar)),
    [uc, vc, t],
    rng,
  );
  // The padded weight logit gets exactly zero gradient, others are finite.
  const ga = await tf.grad((w: tf.Tensor) =>
    tf.sum(
      tf.mul(
        kmeLogits({ points: u, weights: a }, { points: v, weights: w as tf.Tensor2D }, rho),
        r,
      ),
    )
  )(bw).data();
  assert.equal(ga[1], 0);
  for (const g of ga) assert.ok(Number.isFinite(g));
  tf.dispose([u, a, v, bw, rho, t, r, uc, vc]);
});

Deno.test("ml/similarity: clamps: exp(t) <= maxScale, sigma^2 within [min, max]", async () => {
  const u = tf.tensor2d([[1, 0]]);
  const s = (await clipLogits(u, u, tf.scalar(Math.log(1000)), 100).data())[0];
  assert.ok(Math.abs(s - 100) < 1e-3, `clamped scale ${s}`);
  const x = { points: tf.tensor3d([[[1, 0]]]), weights: tf.tensor2d([[0]]) };
  const y = { points: tf.tensor3d([[[0, 1]]]), weights: tf.tensor2d([[0]]) };
  // <u,v> = 0: logit = -1/sigma^2, with sigma^2 clamped to 0.01 -> -100.
  const k = (await kmeLogits(x, y, tf.scalar(Math.log(1e-4)), 0.01, 10).data())[0];
  assert.ok(Math.abs(k + 100) < 1e-2, `clamped kme ${k}`);
  tf.dispose([u, x.points, x.weights, y.points, y.weights]);
});
