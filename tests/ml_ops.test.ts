/**
 * The fused ops (stages/lib/model/ops.ts), the fused KME block log-sum-exp (the kme similarity's
 * training logits, stages/lib/similarity/kme.ts) and
 * the flat AdamW (optim.ts) against the plain formulations they replace, on cpu.
 *
 * Tolerances: LayerNorm's forward is the same op sequence as the moments-based reference, so
 * bit-identical; its gradient is a different (closed-form) expression: |diff| <= 1e-5 * scale.
 * GELU as x * sigmoid(2 z) vs 0.5 x (1 + tanh z): the same function, |diff| <= 2e-6 (values)
 * and 1e-5 (gradients). The KME block LSE vs autodiff through reshape/transpose/LSE: 1e-5
 * relative. AdamW flat vs per parameter: bit-identical parameters and moments (same float32
 * operations per element); the gradient norm may differ in the last bits (summation order).
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../stages/lib/tf/backend.ts";
import { gelu, layerNorm } from "../stages/lib/model/ops.ts";
import { AdamW, clipGlobalNorm } from "../stages/lib/model/optim.ts";
import { keyedRng } from "../stages/lib/random.ts";
import { kme, type KmeParams } from "../stages/lib/similarity/kme.ts";
import { builtinRecord } from "../stages/lib/similarity/registry.ts";
import { logWeights, lseLastAxis } from "../stages/lib/similarity/tf_ops.ts";
import type { PointSet } from "../stages/lib/similarity/similarity.ts";

await initBackend("cpu");

const rng = keyedRng(11);
const randn = (shape: number[], scale = 1) =>
  tf.tensor(
    Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal() * scale),
    shape,
    "float32",
  );

function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string) {
  assert.equal(a.length, b.length, `${what}: lengths`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i]));
    if (!(d <= tol)) assert.fail(`${what}[${i}]: ${a[i]} vs ${b[i]} (tol ${tol})`);
    worst = Math.max(worst, d);
  }
  return worst;
}

function refLayerNorm(x: tf.Tensor2D, g: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  const xn = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5)));
  return tf.add(tf.mul(xn, g), b);
}

function refGelu(x: tf.Tensor): tf.Tensor {
  const c = Math.sqrt(2 / Math.PI);
  const inner = tf.mul(tf.add(x, tf.mul(tf.mul(tf.square(x), x), 0.044715)), c);
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
}

Deno.test("ml/ops: fused LayerNorm equals the moments form (values bit for bit, gradients 1e-5)", () => {
  const x = randn([37, 24], 3) as tf.Tensor2D;
  const g = randn([24]);
  const b = randn([24]);
  const w = randn([37, 24]); // a non-uniform upstream gradient
  const f = (fn: typeof refLayerNorm) => (xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) =>
    tf.sum(tf.mul(fn(xx as tf.Tensor2D, gg, bb), w));
  const y = layerNorm(x, g as tf.Tensor1D, b as tf.Tensor1D).dataSync();
  const yRef = refLayerNorm(x, g, b).dataSync();
  assert.deepEqual(y, yRef);
  const gr = tf.grads(f(layerNorm as typeof refLayerNorm))([x, g, b]);
  const gRef = tf.grads(f(refLayerNorm))([x, g, b]);
  for (let i = 0; i < 3; i++) {
    assertClose(gr[i].dataSync(), gRef[i].dataSync(), 1e-5, `LayerNorm grad ${i}`);
  }
});

Deno.test("ml/ops: GELU as x*sigmoid(2z) equals the tanh form (2e-6; gradients 1e-5)", () => {
  const x = tf.concat([randn([2000], 3), tf.tensor1d([0, -0, 1e-8, -20, 20, 50, -50])]);
  const dv = assertClose(gelu(x).dataSync(), refGelu(x).dataSync(), 2e-6, "gelu");
  const dg = assertClose(
    tf.grad((t: tf.Tensor) => tf.sum(gelu(t)))(x).dataSync(),
    tf.grad((t: tf.Tensor) => tf.sum(refGelu(t)))(x).dataSync(),
    1e-5,
    "gelu grad",
  );
  console.log(`  max rel diff: values ${dv.toExponential(1)}, gradients ${dg.toExponential(1)}`);
});

/** The KME logits as computed before the fused block LSE: autodiff through every op. */
function refKme(x: PointSet, y: PointSet, logSigma2: tf.Scalar): tf.Tensor2D {
  const [b1, m, d] = x.points.shape;
  const [b2, n] = y.points.shape;
  const inv = tf.exp(tf.neg(tf.clipByValue(logSigma2, Math.log(0.01), Math.log(10))));
  const u = tf.reshape(x.points, [b1 * m, d]);
  const v = tf.reshape(y.points, [b2 * n, d]);
  const la = tf.reshape(logWeights(tf, x.weights), [b1 * m, 1]);
  const lb = tf.reshape(logWeights(tf, y.weights), [1, b2 * n]);
  const g = tf.add(tf.add(tf.mul(tf.matMul(u, v, false, true), inv), la), lb);
  const g4 = tf.transpose(tf.reshape(g, [b1, m, b2, n]), [0, 2, 1, 3]);
  return tf.sub(lseLastAxis(tf, tf.reshape(g4, [b1, b2, m * n])), inv) as tf.Tensor2D;
}

Deno.test("ml/ops: fused KME block LSE equals autodiff through the plain form (1e-5), with padding", () => {
  const [b1, m, b2, n, d] = [5, 3, 4, 6, 8];
  const unit = (t: tf.Tensor) => tf.div(t, tf.norm(t, "euclidean", -1, true));
  const px = unit(randn([b1, m, d])) as tf.Tensor3D;
  const py = unit(randn([b2, n, d])) as tf.Tensor3D;
  const wx = randn([b1, m]) as tf.Tensor2D;
  // Caption j has 1 + (j mod n) real points; the rest are padding (-inf).
  const pad = tf.tensor2d(
    Float32Array.from(
      { length: b2 * n },
      (_, i) => (i % n) <= Math.floor(i / n) % n ? 0 : -Infinity,
    ),
    [b2, n],
  );
  const wyRaw = randn([b2, n]);
  const rho = tf.scalar(Math.log(0.05));
  const w = randn([b1, b2]);
  const loss =
    (fn: typeof refKme) =>
    (a: tf.Tensor, bb: tf.Tensor, c: tf.Tensor, e: tf.Tensor, r: tf.Tensor) =>
      tf.sum(tf.mul(
        fn(
          { points: a as tf.Tensor3D, weights: c as tf.Tensor2D },
          { points: bb as tf.Tensor3D, weights: tf.add(e, pad) as tf.Tensor2D },
          r as tf.Scalar,
        ),
        w,
      ));
  // The kme module's logits with its default clamps [0.01, 10] (those of refKme).
  const params = builtinRecord("kme").params as KmeParams;
  assert.deepEqual([params.sigma2_min, params.sigma2_max], [0.01, 10]);
  const fused = (x: PointSet, y: PointSet, r: tf.Scalar) =>
    kme.logits(tf, x, y, { log_sigma2: r }, params, { kind: "eval" });
  const args = [px, py, wx, wyRaw, rho];
  const v = loss(fused)(px, py, wx, wyRaw, rho).dataSync()[0];
  const vRef = loss(refKme)(px, py, wx, wyRaw, rho).dataSync()[0];
  assertClose([v], [vRef], 1e-5, "kme value");
  const g = tf.grads(loss(fused))(args);
  const gRef = tf.grads(loss(refKme))(args);
  for (let i = 0; i < args.length; i++) {
    assertClose(g[i].dataSync(), gRef[i].dataSync(), 1e-5, `kme grad ${i}`);
  }
  // Padded points get exactly zero gradient on their weight logits.
  const gw = g[3].dataSync();
  const padv = pad.dataSync();
  for (let i = 0; i < gw.length; i++) if (padv[i] === -Infinity) assert.equal(gw[i], 0);
});

/** AdamW per parameter, as before the flat optimizer (reference). */
function refAdamStep(
  p: tf.Tensor,
  m: tf.Tensor,
  v: tf.Tensor,
  g: tf.Tensor,
  step: number,
  lr: number,
  decay: boolean,
  c = { beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: 0.1 },
): [tf.Tensor, tf.Tensor, tf.Tensor] {
  const bc1 = 1 - Math.pow(c.beta1, step);
  const bc2 = 1 - Math.pow(c.beta2, step);
  const m1 = tf.add(tf.mul(m, c.beta1), tf.mul(g, 1 - c.beta1));
  const v1 = tf.add(tf.mul(v, c.beta2), tf.mul(tf.square(g), 1 - c.beta2));
  const update = tf.div(tf.div(m1, bc1), tf.add(tf.sqrt(tf.div(v1, bc2)), c.eps));
  let p1 = p;
  if (decay) p1 = tf.sub(p1, tf.mul(p1, lr * c.weightDecay));
  return [tf.sub(p1, tf.mul(update, lr)), m1, v1];
}

Deno.test("ml/ops: flat AdamW equals per-parameter AdamW bit for bit (mixed decay, clipping)", async () => {
  const shapes: [string, number[], boolean][] = [
    ["a.w", [7, 5], true],
    ["a.b", [5], false],
    ["s", [], false],
    ["e", [11, 3], true],
  ];
  const vars = shapes.map(([n, s]) => [n, tf.variable(randn(s), true, `p_${n}`)] as const);
  const opt = new AdamW(
    { beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: 0.1 },
    vars.map(([n, v], i) => [n, { variable: v, decay: shapes[i][2] }]),
  );
  let ref: { p: tf.Tensor; m: tf.Tensor; v: tf.Tensor }[] = shapes.map(([, s], i) => ({
    p: tf.clone(vars[i][1]),
    m: tf.zeros(s),
    v: tf.zeros(s),
  }));
  for (let step = 1; step <= 5; step++) {
    const grads = Object.fromEntries(shapes.map(([n, s]) => [n, randn(s, 3)]));
    const lr = 1e-2 * step;
    // Reference norm: per-parameter sums in a chain of adds (the former clipGlobalNorm).
    let total = tf.scalar(0);
    for (const [n] of shapes) total = tf.add(total, tf.sum(tf.square(grads[n])));
    const refNorm = tf.sqrt(total);
    const flat = opt.flatten(grads);
    const { grad, norm } = clipGlobalNorm(flat, 1);
    assertClose(norm.dataSync(), refNorm.dataSync(), 1e-6, "grad norm");
    opt.applyFlat(grad, lr);
    // The reference update uses the same clip factor, so that it can be compared bit for bit.
    const factor = tf.minimum(tf.div(1, tf.add(norm, 1e-6)), 1);
    ref = shapes.map(([n, , decay], i) => {
      const g = tf.mul(grads[n], factor);
      const [p1, m1, v1] = refAdamStep(ref[i].p, ref[i].m, ref[i].v, g, step, lr, decay);
      return { p: p1, m: m1, v: v1 };
    });
  }
  const moments = await opt.readMoments();
  for (let i = 0; i < shapes.length; i++) {
    const n = shapes[i][0];
    assert.deepEqual(vars[i][1].dataSync(), ref[i].p.dataSync(), `param ${n}`);
    assert.deepEqual(moments.get(n)!.m, ref[i].m.dataSync(), `m ${n}`);
    assert.deepEqual(moments.get(n)!.v, ref[i].v.dataSync(), `v ${n}`);
  }
  // Moments round-trip through readMoments / loadMoments.
  const opt2 = new AdamW(
    opt.config,
    vars.map(([n, v], i) => [n, { variable: v, decay: shapes[i][2] }]),
  );
  opt2.loadMoments((n) => moments.get(n)!);
  assert.deepEqual(opt2.m.dataSync(), opt.m.dataSync());
  assert.deepEqual(opt2.v.dataSync(), opt.v.dataSync());
  opt.dispose();
  opt2.dispose();
});
