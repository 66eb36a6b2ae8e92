/**
 * The similarity modules (stages/lib/similarity/) on the cpu backend: for every built-in (and
 * its presets) the evaluation scorer equals the training logits and the gradients equal central
 * finite differences; Proposition 2 (KME with one point == CLIP up to a constant); KME's LSE
 * form == the direct double sum; the clamps; and WPSE == sony/wpse's own code on a hand-built
 * case (tests/fixtures/wpse/, made by running sony's losses.py).
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../stages/lib/tf/backend.ts";
import { infoNce } from "../stages/lib/model/loss.ts";
import { builtinRecord, fileSha256, loadSimilarity } from "../stages/lib/similarity/registry.ts";
import type {
  PointSet,
  PointSets,
  ScalarTensors,
  Similarity,
} from "../stages/lib/similarity/similarity.ts";
import { clip } from "../stages/lib/similarity/clip.ts";
import { kme } from "../stages/lib/similarity/kme.ts";
import {
  embedSets,
  type Frequencies,
  logitsWith,
  WpseParams,
} from "../stages/lib/similarity/wpse.ts";
import { scorerFor } from "../stages/lib/eval/similarity_scoring.ts";
import { keyedRng, type Rng } from "../stages/lib/random.ts";

await initBackend("cpu");

function randn(rng: Rng, n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal() * scale);
}

/** Unit rows of a [rows, d] matrix (float64 normalisation, stored as float32). */
function unitRows(x: ArrayLike<number>, d: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / d; r++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += x[r * d + k] ** 2;
    const inv = 1 / Math.sqrt(s);
    for (let k = 0; k < d; k++) out[r * d + k] = x[r * d + k] * inv;
  }
  return out;
}

/** n random point sets of m unit points in R^d; `pad` sets lose their last point. */
function randomSets(rng: Rng, n: number, m: number, d: number, pad = 0): PointSets {
  const data = unitRows(randn(rng, n * m * d), d);
  const logits = randn(rng, n * m);
  for (let i = 0; i < Math.min(pad, n); i++) if (m > 1) logits[i * m + m - 1] = -Infinity;
  return { n, points: m, dim: d, data, logits };
}

function tensors(s: PointSets): PointSet {
  return {
    points: tf.tensor3d(s.data, [s.n, s.points, s.dim]),
    weights: tf.tensor2d(s.logits, [s.n, s.points]),
  };
}

/** The similarity's scalars at their initial values, as tensors and raw numbers. */
function initialScalars(sim: Similarity<unknown>, p: Record<string, unknown>) {
  const raw: Record<string, number> = {};
  const t: ScalarTensors = {};
  for (const s of sim.scalars(p)) {
    raw[s.name] = s.init;
    t[s.name] = tf.scalar(s.init);
  }
  return { raw, t, values: sim.values(raw, p) };
}

for (const name of ["clip", "clip_weighted", "kme", "kme_one_point", "wpse"]) {
  Deno.test(`ml/similarity: ${name}: the evaluation scorer equals the training logits`, async () => {
    const record = builtinRecord(name, name === "wpse" ? { rff_features: 64 } : {});
    const loaded = await loadSimilarity(record);
    const sim = loaded.sim;
    const head = sim.head(record.params);
    const rng = keyedRng(11, name.length);
    const [b1, b2, d] = [5, 7, 6];
    const [m, n] = head.points === "mean" ? [1, 1] : [4, 3];
    const x = randomSets(rng, b1, m, d, 2);
    const y = randomSets(rng, b2, n, d, 3);
    if (head.points === "mean") {
      x.logits.fill(0);
      y.logits.fill(0);
    }
    const { t, values } = initialScalars(sim, record.params);
    const xs = tensors(x), ys = tensors(y);
    const train = await sim.logits(tf, xs, ys, t, record.params, { kind: "eval" }).data();
    const scorer = await scorerFor({ ...loaded, values }, x, y, { backend: "wasm" });
    const evalScores = await scorer.scoreBlock(0, b1, 0, b2);
    scorer.close();
    for (let k = 0; k < b1 * b2; k++) {
      const tol = 2e-4 * Math.max(1, Math.abs(train[k]));
      assert.ok(
        Math.abs(train[k] - evalScores[k]) <= tol,
        `${name} pair ${k}: training ${train[k]}, evaluation ${evalScores[k]}`,
      );
    }
    tf.dispose([xs.points, xs.weights, ys.points, ys.weights, ...Object.values(t)]);
  });
}

/**
 * Checks d f / d inputs against central differences along random directions (f64-ish on
 * cpu with float32 storage: tolerances are loose relative to float32 noise).
 */
async function checkGradients(
  name: string,
  f: (xs: tf.Tensor[]) => tf.Scalar,
  inputs: tf.Tensor[],
  rng: Rng,
  eps = 1e-2,
  tol = 3e-2,
): Promise<void> {
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

for (const name of ["clip", "clip_weighted", "kme", "kme_one_point", "wpse"]) {
  Deno.test(`ml/similarity: ${name}: gradients of logits and InfoNCE match finite differences`, async () => {
    const record = builtinRecord(name, name === "wpse" ? { rff_features: 32 } : {});
    const sim = (await loadSimilarity(record)).sim;
    const p = record.params;
    const rng = keyedRng(5, name.length);
    const b = 4, d = 5;
    const [m, n] = sim.head(p).points === "mean" ? [1, 1] : [3, 2];
    // Points off the sphere: the functions do not need unit rows, and the check is cleaner.
    const u = tf.tensor3d(randn(rng, b * m * d, 0.5), [b, m, d]);
    const a = tf.tensor2d(m === 1 ? new Float32Array(b) : randn(rng, b * m), [b, m]);
    const v = tf.tensor3d(randn(rng, b * n * d, 0.5), [b, n, d]);
    const wv = n === 1 ? new Float32Array(b * n) : randn(rng, b * n);
    if (n > 1) wv[1] = -Infinity; // one padded caption point
    const bw = tf.tensor2d(wv, [b, n]);
    const specs = sim.scalars(p);
    const s0 = specs.map((s) => tf.scalar(s.init * 0.9));
    const r = tf.tensor2d(randn(rng, b * b), [b, b]); // a random linear functional of the logits
    // One-point heads' scores are constants (0): not differentiated (CLIP does not read them).
    const one = m === 1;
    const logits = (xs: tf.Tensor[]) => {
      const [u1, a1, v1, ...sc] = one ? [xs[0], a, ...xs.slice(1)] : xs;
      const st: ScalarTensors = {};
      specs.forEach((s, i) => st[s.name] = sc[i] as tf.Scalar);
      return sim.logits(
        tf,
        { points: u1 as tf.Tensor3D, weights: a1 as tf.Tensor2D },
        { points: v1 as tf.Tensor3D, weights: bw },
        st,
        p,
        { kind: "eval" },
      );
    };
    const inputs = one ? [u, v, ...s0] : [u, a, v, ...s0];
    await checkGradients(`${name} logits`, (xs) => tf.sum(tf.mul(logits(xs), r)), inputs, rng);
    await checkGradients(`${name} InfoNCE`, (xs) => infoNce(logits(xs)), inputs, rng);
    if (n > 1) {
      // The padded caption point gets exactly zero gradient; the others finite ones.
      const st: ScalarTensors = {};
      specs.forEach((s, i) => st[s.name] = s0[i]);
      const g = await tf.grad((w: tf.Tensor) =>
        tf.sum(tf.mul(
          sim.logits(
            tf,
            { points: u, weights: a },
            {
              points: v,
              weights: w as tf.Tensor2D,
            },
            st,
            p,
            { kind: "eval" },
          ),
          r,
        ))
      )(bw).data();
      assert.equal(g[1], 0, `${name}: gradient at the padded point`);
      for (const x of g) assert.ok(Number.isFinite(x), `${name}: gradient ${x}`);
    }
    tf.dispose([u, a, v, bw, r, ...s0]);
  });
}

/** Direct form: log sum_ij alpha_i beta_j exp((<u_i, v_j> - 1) / s2), in float64. */
function kmeDirect(x: PointSets, i: number, y: PointSets, j: number, s2: number): number {
  const soft = (w: Float32Array, o: number, k: number) => {
    const row = Array.from(w.subarray(o, o + k));
    const mx = Math.max(...row);
    const e = row.map((q) => Math.exp(q - mx));
    const z = e.reduce((p, q) => p + q, 0);
    return e.map((q) => q / z);
  };
  const al = soft(x.logits, i * x.points, x.points), be = soft(y.logits, j * y.points, y.points);
  const d = x.dim;
  let s = 0;
  for (let a = 0; a < x.points; a++) {
    for (let b = 0; b < y.points; b++) {
      let dot = 0;
      for (let k = 0; k < d; k++) {
        dot += x.data[(i * x.points + a) * d + k] * y.data[(j * y.points + b) * d + k];
      }
      s += al[a] * be[b] * Math.exp((dot - 1) / s2);
    }
  }
  return Math.log(s);
}

Deno.test("ml/similarity: KME's LSE form equals the direct double sum, padding included", async () => {
  const rng = keyedRng(7);
  const x = randomSets(rng, 3, 4, 5, 2), y = randomSets(rng, 4, 3, 5, 1);
  const p = builtinRecord("kme").params;
  for (const s2 of [0.5, 0.1, 0.05]) {
    const t = { log_sigma2: tf.scalar(Math.log(s2)) };
    const xs = tensors(x), ys = tensors(y);
    const got = await kme.logits(tf, xs, ys, t, p as never, { kind: "eval" }).data();
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 4; j++) {
        const want = kmeDirect(x, i, y, j, s2);
        assert.ok(Math.abs(got[i * 4 + j] - want) < 1e-4 * Math.max(1, Math.abs(want)));
      }
    }
    tf.dispose([xs.points, xs.weights, ys.points, ys.weights, t.log_sigma2]);
  }
});

Deno.test("ml/similarity: KME with one point per input is CLIP up to a constant (Prop. 2)", async () => {
  const rng = keyedRng(9);
  const x = randomSets(rng, 5, 1, 8), y = randomSets(rng, 5, 1, 8);
  x.logits.fill(0);
  y.logits.fill(0);
  const s2 = 0.2;
  const xs = tensors(x), ys = tensors(y);
  const pk = builtinRecord("kme_one_point").params, pc = builtinRecord("clip").params;
  const k = kme.logits(tf, xs, ys, { log_sigma2: tf.scalar(Math.log(s2)) }, pk as never, {
    kind: "eval",
  });
  const c = clip.logits(tf, xs, ys, { logit_scale: tf.scalar(Math.log(1 / s2)) }, pc as never, {
    kind: "eval",
  });
  const kd = await k.data(), cd = await c.data();
  for (let q = 0; q < kd.length; q++) assert.ok(Math.abs(kd[q] - (cd[q] - 1 / s2)) < 1e-4);
  const lk = (await infoNce(k).data())[0], lc = (await infoNce(c).data())[0];
  assert.ok(Math.abs(lk - lc) < 1e-5, `InfoNCE ${lk} vs ${lc}`);
  tf.dispose([xs.points, xs.weights, ys.points, ys.weights, k, c]);
});

Deno.test("ml/similarity: clamps: CLIP's exp(t) <= max, KME's sigma^2 within [min, max], WPSE's scale", async () => {
  const one = (v: number[]) => ({ points: tf.tensor3d([[v]]), weights: tf.tensor2d([[0]]) });
  const u = one([1, 0]), w = one([0, 1]);
  const pc = builtinRecord("clip").params as never;
  const s = (await clip.logits(tf, u, u, { logit_scale: tf.scalar(Math.log(1000)) }, pc, {
    kind: "eval",
  }).data())[0];
  assert.ok(Math.abs(s - 100) < 1e-3, `clamped scale ${s}`);
  assert.equal(clip.values({ logit_scale: Math.log(1000) }, pc).logit_scale, 100);
  // <u, v> = 0: logit = -1/sigma^2, with sigma^2 clamped to 0.01 -> -100.
  const pk = builtinRecord("kme_one_point").params as never;
  const k = (await kme.logits(tf, u, w, { log_sigma2: tf.scalar(Math.log(1e-4)) }, pk, {
    kind: "eval",
  }).data())[0];
  assert.ok(Math.abs(k + 100) < 1e-2, `clamped kme ${k}`);
  const wp = await loadSimilarity(builtinRecord("wpse"));
  assert.deepEqual(wp.sim.values({ logit_scale: 500 }, wp.params), { logit_scale: 100 });
  assert.deepEqual(wp.sim.values({ logit_scale: 0.1 }, wp.params), { logit_scale: 1 });
  const [spec] = wp.sim.scalars(wp.params);
  assert.ok(Math.abs(spec.init - 1 / 0.07) < 1e-9 && spec.min === 1 && spec.max === 100);
});

// ---- WPSE against sony/wpse ------------------------------------------------------------------

interface Fixture {
  case: { B: number; M: number; N: number; d: number; D: number; logit_scale: number };
  inputs: {
    image_tokens: number[][][];
    image_scores: number[][];
    text_tokens: number[][][];
    text_scores: number[][];
    rff_w: number[][];
    rff_b: number[];
  };
  expected: { feat_image: number[][]; feat_text: number[][]; logits: number[][] };
  case_1024: {
    D: number;
    inputs: { rff_w: number[][]; rff_b: number[] };
    expected: { feat_image: number[][]; feat_text: number[][]; logits: number[][] };
  };
}

const FIX: Fixture = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/wpse/reference.json", import.meta.url)),
);

/** sony normalises raw tokens inside its criterion; our towers hand over unit points. */
function fixtureSets(tokens: number[][][], scores: number[][]): PointSets {
  const n = tokens.length, m = tokens[0].length, d = tokens[0][0].length;
  return {
    n,
    points: m,
    dim: d,
    data: unitRows(tokens.flat(2), d),
    logits: Float32Array.from(scores.flat()),
  };
}

function frequencies(w: number[][], b: number[]): Frequencies {
  return { D: w.length, d: w[0].length, w: Float32Array.from(w.flat()), b: Float32Array.from(b) };
}

function close(got: ArrayLike<number>, want: number[], rel: number, what: string) {
  const scale = Math.max(1, ...want.map(Math.abs));
  for (let k = 0; k < want.length; k++) {
    assert.ok(
      Math.abs(got[k] - want[k]) <= rel * scale,
      `${what}[${k}]: ${got[k]} vs sony/wpse ${want[k]} (tolerance ${rel * scale})`,
    );
  }
}

Deno.test("ml/similarity: WPSE equals sony/wpse's CLIP_WPSE_Loss on a hand-built case (D = 16 and 1024)", async () => {
  const x = fixtureSets(FIX.inputs.image_tokens, FIX.inputs.image_scores);
  const y = fixtureSets(FIX.inputs.text_tokens, FIX.inputs.text_scores);
  for (
    const [D, f, exp] of [
      [FIX.case.D, frequencies(FIX.inputs.rff_w, FIX.inputs.rff_b), FIX.expected],
      [
        FIX.case_1024.D,
        frequencies(FIX.case_1024.inputs.rff_w, FIX.case_1024.inputs.rff_b),
        FIX.case_1024.expected,
      ],
    ] as const
  ) {
    const p = WpseParams.parse({ rff_features: D });
    // Evaluation (f64 features of f32 points): sony's features and logits.
    close(embedSets(x, f, p), exp.feat_image.flat(), 1e-5, `D=${D} image features`);
    close(embedSets(y, f, p), exp.feat_text.flat(), 1e-5, `D=${D} text features`);
    // Training (TF.js, float32), with sony's logit scale.
    const xs = tensors(x), ys = tensors(y), scale = tf.scalar(FIX.case.logit_scale);
    const logits = await logitsWith(tf, xs, ys, scale, f, p).data();
    close(logits, exp.logits.flat(), 1e-5, `D=${D} logits`);
    tf.dispose([xs.points, xs.weights, ys.points, ys.weights, scale]);
  }
});

Deno.test("ml/similarity: WPSE draws new features at every training step and a fixed set for evaluation", async () => {
  const record = builtinRecord("wpse", { rff_features: 64 });
  const { sim, params } = await loadSimilarity(record);
  const rng = keyedRng(13);
  const x = tensors(randomSets(rng, 3, 4, 6, 1)), y = tensors(randomSets(rng, 3, 2, 6));
  const t = { logit_scale: tf.scalar(10) };
  const at = async (draw: Parameters<typeof sim.logits>[5]) =>
    Array.from(await sim.logits(tf, x, y, t, params, draw).data());
  const e1 = await at({ kind: "eval" }), e2 = await at({ kind: "eval" });
  const s1 = await at({ kind: "train", step: 1, seed: 7 });
  const s1again = await at({ kind: "train", step: 1, seed: 7 });
  const s2 = await at({ kind: "train", step: 2, seed: 7 });
  assert.deepEqual(e1, e2, "evaluation features are fixed");
  assert.deepEqual(s1, s1again, "a step's features depend on (seed, step) alone (resume)");
  assert.notDeepEqual(s1, s2, "features are resampled at every step");
  tf.dispose([x.points, x.weights, y.points, y.weights, t.logit_scale]);
});

Deno.test("ml/similarity: a plugin recorded with a model is not loaded once its file changed", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/plugin.ts`;
    const src = await Deno.readTextFile(
      new URL("./fixtures/similarity/gated_centroid.ts", import.meta.url),
    );
    await Deno.writeTextFile(
      path,
      src.replace("../../../stages/", new URL("../stages/", import.meta.url).pathname),
    );
    const record = {
      name: "./plugin.ts",
      module: { path, digest: "d".repeat(64), sha256: fileSha256(path) },
      params: { scale_init: 10 },
    };
    assert.equal((await loadSimilarity(record)).sim.name, "gated_centroid");
    await Deno.writeTextFile(path, "\n// edited\n", { append: true });
    await assert.rejects(() => loadSimilarity(record), /changed since it was recorded/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
