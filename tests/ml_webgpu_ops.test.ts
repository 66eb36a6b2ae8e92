/**
 * The fused webgpu ops (stages/lib/model/gpu_ops.ts, kernels in stages/lib/tf/kernels/) against
 * the composites of stock ops on cpu: values and gradients, on shapes with padding, masks and
 * sizes that are not multiples of a workgroup. Skipped, with the reason printed, without a
 * WebGPU adapter (Deno's software llvmpipe is one).
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend, webgpuErrors } from "../stages/lib/tf/backend.ts";
import { webgpuTest } from "./helpers/webgpu.ts";
import { keyedRng } from "../stages/lib/random.ts";
import { dense, gelu, layerNorm } from "../stages/lib/model/ops.ts";
import { infoNce } from "../stages/lib/model/loss.ts";
import {
  attentionFused,
  embeddingFused,
  fusedOps,
  l2normalizeFused,
  meanPoolFused,
} from "../stages/lib/model/gpu_ops.ts";
import { l2normalize } from "../stages/lib/similarity/tf_ops.ts";
import { packImages, unpackPatches } from "../stages/lib/model/batch_tensors.ts";
import { patchify } from "../stages/lib/model/model.ts";
import { AdamW } from "../stages/lib/model/optim.ts";
import { kme, KmeParams } from "../stages/lib/similarity/kme.ts";
import * as kmeNames from "../stages/lib/similarity/kme.ts";
import * as opsNames from "../stages/lib/similarity/tf_ops.ts";
import * as kernels from "../stages/lib/tf/kernels/block_lse.ts";
import { tfjsMatmulProgram } from "../stages/lib/tf/webgpu_device.ts";
import { webgpuCounters } from "../stages/lib/tf/webgpu_counters.ts";

function randn(shape: number[], seed: number, scale = 1): tf.Tensor {
  const rng = keyedRng(seed, 0x0f);
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = scale * rng.normal();
  return tf.tensor(v, shape, "float32");
}

/** Value and gradients (w.r.t. the first `nGrad` inputs) of sum(f(...) * r) as plain arrays. */
async function evaluate(
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: () => tf.Tensor[],
  nGrad: number,
): Promise<Float32Array[]> {
  const xs = inputs();
  const y = f(...xs);
  const r = randn(y.shape, 99);
  const g = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(f(...a, ...xs.slice(nGrad)), r)))(
    xs.slice(0, nGrad),
  );
  const out = [await y.data(), ...(await Promise.all(g.map((t) => t.data())))] as Float32Array[];
  tf.dispose([...xs, y, r, ...g]);
  return out;
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let scale = 1e-6;
  for (let i = 0; i < a.length; i++) scale = Math.max(scale, Math.abs(a[i]));
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d / scale;
}

interface Case {
  name: string;
  cpu: (...xs: tf.Tensor[]) => tf.Tensor;
  gpu: (...xs: tf.Tensor[]) => tf.Tensor;
  inputs: () => tf.Tensor[];
  nGrad: number;
}

const B = 5;
const T = 7;
const W = 24;
const HEADS = 3;
const mask = () =>
  tf.tensor2d(Array.from({ length: B * T }, (_, i) => (i % T < 2 + (i / T | 0) ? 1 : 0)), [B, T]);

/** The composite attention of model.ts (split heads, scaled scores, bias, softmax, merge). */
function attentionComposite(qkv: tf.Tensor, keyBias?: tf.Tensor): tf.Tensor {
  const dh = W / HEADS;
  const heads = (z: tf.Tensor) => tf.transpose(tf.reshape(z, [B, T, HEADS, dh]), [0, 2, 1, 3]);
  const [q, k, v] = tf.split(qkv, [W, W, W], 1).map(heads);
  let s = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(dh));
  if (keyBias) s = tf.add(s, tf.reshape(keyBias, [B, 1, 1, T]));
  const a = tf.matMul(tf.softmax(s, -1), v);
  return tf.reshape(tf.transpose(a, [0, 2, 1, 3]), [B * T, W]);
}

/** The KME block LSE through kme's logits path: uAug [B1*M, D] x vAug [B2*N, D] -> [B1, B2]. */
const kmeLogits = (x: tf.Tensor, y: tf.Tensor, wx: tf.Tensor, wy: tf.Tensor) =>
  kme.logits(
    tf,
    { points: x as tf.Tensor3D, weights: wx as tf.Tensor2D },
    { points: y as tf.Tensor3D, weights: wy as tf.Tensor2D },
    { log_sigma2: tf.scalar(Math.log(0.3)) },
    KmeParams.parse({}),
    { kind: "eval" },
  );
// Text-like weights: the last two points of every set are padding (-Infinity).
const paddedScores = () =>
  tf.where(
    tf.greater(tf.tile(tf.tensor2d([[1, 1, 1, 1, 0, 0]]), [3, 1]), 0.5),
    randn([3, 6], 21),
    tf.fill([3, 6], -Infinity),
  );

const cases: Case[] = [
  {
    name: "KME logits (block LSE and log weights)",
    cpu: kmeLogits,
    gpu: kmeLogits,
    inputs: () => [
      l2normalize(tf, randn([4, 5, 8], 22)),
      l2normalize(tf, randn([3, 6, 8], 23)),
      randn([4, 5], 24),
      paddedScores(),
    ],
    nGrad: 4,
  },
  {
    name: "dense with bias",
    cpu: (x, w, b) => dense(x as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D),
    gpu: (x, w, b) => dense(x as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D),
    inputs: () => [randn([37, 19], 1), randn([19, 23], 2), randn([23], 3)],
    nGrad: 3,
  },
  {
    name: "layer norm",
    cpu: (x, g, b) => layerNorm(x as tf.Tensor2D, g as tf.Tensor1D, b as tf.Tensor1D),
    gpu: (x, g, b) => layerNorm(x as tf.Tensor2D, g as tf.Tensor1D, b as tf.Tensor1D),
    inputs: () => [randn([67, 33], 4, 3), randn([33], 5), randn([33], 6)],
    nGrad: 3,
  },
  {
    name: "dense and layer norm over more rows than one pass sums (two-pass column sums)",
    cpu: (x, w, b, g) =>
      layerNorm(
        dense(x as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D),
        g as tf.Tensor1D,
        b as tf.Tensor1D,
      ),
    gpu: (x, w, b, g) =>
      layerNorm(
        dense(x as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D),
        g as tf.Tensor1D,
        b as tf.Tensor1D,
      ),
    inputs: () => [randn([5000, 6], 30), randn([6, 9], 31), randn([9], 32), randn([9], 33)],
    nGrad: 4,
  },
  {
    name: "embedding lookup with repeated ids (gradient without atomics)",
    cpu: (t, ids) => tf.gather(t, ids),
    gpu: (t, ids) => embeddingFused(t as tf.Tensor2D, ids as tf.Tensor1D),
    inputs: () => [
      randn([11, 5], 50),
      tf.tensor1d(
        Array.from({ length: 40 }, (_, i) => (i * 7) % 11 === 3 ? 3 : (i * 5) % 9),
        "int32",
      ),
    ],
    nGrad: 1,
  },
  {
    name: "gelu",
    cpu: (x) => gelu(x),
    gpu: (x) => gelu(x),
    inputs: () => [randn([130, 3], 7, 2)],
    nGrad: 1,
  },
  {
    name: "l2 normalise",
    cpu: (x) => l2normalize(tf, x),
    gpu: (x) => l2normalizeFused(x),
    inputs: () => [randn([41, 9], 8)],
    nGrad: 1,
  },
  {
    name: "mean pool",
    cpu: (x) => tf.mean(tf.reshape(x, [B, T, W]), 1),
    gpu: (x) => meanPoolFused(x as tf.Tensor2D, B),
    inputs: () => [randn([B * T, W], 9)],
    nGrad: 1,
  },
  {
    name: "masked mean pool",
    cpu: (x, m) => {
      const m3 = tf.expandDims(m, 2);
      return tf.div(tf.sum(tf.mul(tf.reshape(x, [B, T, W]), m3), 1), tf.maximum(tf.sum(m3, 1), 1));
    },
    gpu: (x, m) => meanPoolFused(x as tf.Tensor2D, B, m as tf.Tensor2D),
    inputs: () => [randn([B * T, W], 10), mask()],
    nGrad: 1,
  },
  {
    name: "InfoNCE",
    cpu: (l) => infoNce(l as tf.Tensor2D),
    gpu: (l) => infoNce(l as tf.Tensor2D),
    inputs: () => [randn([13, 13], 11, 4)],
    nGrad: 1,
  },
  {
    name: "attention",
    cpu: (qkv) => attentionComposite(qkv),
    gpu: (qkv) => attentionFused(qkv as tf.Tensor2D, B, HEADS),
    inputs: () => [randn([B * T, 3 * W], 12)],
    nGrad: 1,
  },
  {
    name: "attention with padded keys",
    cpu: (qkv, m) => attentionComposite(qkv, tf.mul(tf.sub(1, m), -1e9)),
    gpu: (qkv, m) => attentionFused(qkv as tf.Tensor2D, B, HEADS, m as tf.Tensor2D),
    inputs: () => [randn([B * T, 3 * W], 13), mask()],
    nGrad: 1,
  },
];

Deno.test("ml/webgpu ops: the similarity modules call our kernels by their names", () => {
  assert.equal(kmeNames.BLOCK_LSE, kernels.BLOCK_LSE);
  assert.equal(kmeNames.BLOCK_LSE_GRAD, kernels.BLOCK_LSE_GRAD);
  assert.equal(opsNames.LOG_SOFTMAX_ROWS, kernels.LOG_SOFTMAX_ROWS);
  assert.equal(opsNames.LOG_SOFTMAX_ROWS_GRAD, kernels.LOG_SOFTMAX_ROWS_GRAD);
});

webgpuTest("ml/webgpu ops: every fused op and its gradient match the cpu composite", async () => {
  const expected: Float32Array[][] = [];
  await initBackend("cpu");
  assert.equal(fusedOps(), false);
  for (const c of cases) expected.push(await evaluate(c.cpu, c.inputs, c.nGrad));
  await initBackend("webgpu");
  assert.equal(fusedOps(), true);
  for (const [k, c] of cases.entries()) {
    const got = await evaluate(c.gpu, c.inputs, c.nGrad);
    got.forEach((g, i) => {
      const d = maxRelDiff(expected[k][i], g);
      const what = i === 0 ? "value" : `gradient ${i}`;
      assert.ok(d < 1e-4, `${c.name}: ${what} differs by ${d.toExponential(2)} (relative)`);
    });
  }
  assert.deepEqual(webgpuErrors(), []);
});

webgpuTest("ml/webgpu ops: packed image bytes unpack to patchify's patches", async () => {
  // 3 images of 8 x 12 x 3 bytes in 4 x 4 patches; 8 * 12 * 3 = 288 bytes, a multiple of 4,
  // and a 6 x 10 x 3 case (180 bytes) whose images are padded to 4-byte words.
  for (const [h, w, p] of [[8, 12, 4], [6, 10, 2]]) {
    const c = {
      height: h,
      widthPx: w,
      channels: 3,
      patch: p,
      width: 8,
      depth: 1,
      heads: 1,
      mlp: 8,
    };
    const bytes = new Uint8Array(3 * h * w * 3).map((_, i) => (i * 37 + 11) % 256);
    await initBackend("cpu");
    const want = await patchify(tf.tensor4d(bytes, [3, h, w, 3], "int32"), p).data();
    for (const be of ["cpu", "webgpu"] as const) {
      await initBackend(be);
      const packed = packImages(bytes, 3, c);
      const got = unpackPatches(packed, c);
      assert.deepEqual(got.shape, [3 * (h / p) * (w / p), p * p * 3]);
      assert.ok(maxRelDiff(want as Float32Array, await got.data() as Float32Array) < 1e-6, be);
      tf.dispose([packed.words, got]);
    }
  }
  assert.deepEqual(webgpuErrors(), []);
});

webgpuTest(
  "ml/webgpu ops: in-place AdamW with clipping matches the flat AdamW on cpu",
  async () => {
    // 20 parameters (more than one group at any binding limit), some without decay; clipping
    // active (max norm 1 against gradients of norm ~8) in the first run, off in the second.
    const shapes = Array.from({ length: 20 }, (_, i) => (i % 3 === 0 ? [i + 1] : [i + 2, 3]));
    const run = async (maxNorm: number) => {
      const params = shapes.map((s, i) => tf.variable(randn(s, 100 + i), true, `p${i}`));
      const opt = new AdamW(
        { beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: 0.1 },
        params.map((v, i) => [`p${i}`, { variable: v, decay: i % 3 !== 0 }]),
      );
      const norms: number[] = [];
      for (let step = 0; step < 3; step++) {
        const grads = Object.fromEntries(
          shapes.map((s, i) => [`p${i}`, randn(s, 200 + 7 * step + i)]),
        );
        const norm = opt.applyClipped(grads, 0.01 * (step + 1), maxNorm);
        norms.push((await norm.data())[0]);
        tf.dispose([norm, ...Object.values(grads)]);
      }
      const out = {
        norms,
        params: await Promise.all(params.map((p) => p.data())) as Float32Array[],
        m: await opt.m.data() as Float32Array,
        v: await opt.v.data() as Float32Array,
      };
      opt.dispose();
      tf.dispose(params);
      return out;
    };
    for (const maxNorm of [1, 0]) {
      await initBackend("cpu");
      const want = await run(maxNorm);
      await initBackend("webgpu");
      const got = await run(maxNorm);
      want.norms.forEach((n, i) => assert.ok(Math.abs(n - got.norms[i]) < 1e-5 * n, `norm ${i}`));
      want.params.forEach((p, i) => {
        assert.ok(maxRelDiff(p, got.params[i]) < 1e-5, `param ${i} (max norm ${maxNorm})`);
      });
      assert.ok(maxRelDiff(want.m, got.m) < 1e-5, "m");
      assert.ok(maxRelDiff(want.v, got.v) < 1e-5, "v");
    }
    assert.deepEqual(webgpuErrors(), []);
  },
);

webgpuTest(
  "ml/webgpu ops: a weight-gradient matmul that tfjs would split with atomics runs " +
    "deterministically",
  async () => {
    // x^T dy over 2048 rows into a 64 x 64 output: 4 output tiles and a long inner dimension,
    // tfjs-webgpu's case for split-K (float atomics, order-dependent sums).
    const threshold = 8;
    assert.equal(tfjsMatmulProgram([2048, 64], [2048, 64], true, false, threshold), 1);
    await initBackend("cpu");
    const want = await tf.matMul(randn([2048, 64], 40), randn([2048, 64], 41), true, false).data();
    await initBackend("webgpu");
    const counters = webgpuCounters(tf);
    counters.take();
    const runs: Float32Array[] = [];
    for (let i = 0; i < 2; i++) {
      const x = randn([2048, 64], 40);
      const dy = randn([2048, 64], 41);
      const y = tf.matMul(x, dy, true, false);
      runs.push(await y.data() as Float32Array);
      tf.dispose([x, dy, y]);
    }
    const programs = Object.keys(counters.take().dispatchesByOp).join(", ");
    assert.ok(!programs.includes("SplitK"), programs);
    assert.ok(maxRelDiff(want as Float32Array, runs[0]) < 1e-5);
    assert.deepEqual(runs[1], runs[0]);
    assert.deepEqual(webgpuErrors(), []);
  },
);
