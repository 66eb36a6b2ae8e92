/**
 * Run by tests/ml_wasm_simd.test.ts in its own process (the wasm thread count, hence a shared or
 * a plain memory, is fixed per process): every case's product or sum with our SIMD kernels and
 * with tfjs' own loops, compared bit for bit. Prints one JSON line.
 */
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../../stages/lib/tf/backend.ts";
import { setSimdKernels, simdKernelCalls } from "../../stages/lib/tf/wasm_simd/instance.ts";
import { keyedRng } from "../../stages/lib/random.ts";

const be = await initBackend("wasm");
const rng = keyedRng(11);
const fill = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
type Case = {
  name: string;
  eligible: boolean;
  kernel?: "bmm" | "sum_rows" | "copy_rows";
  f: () => tf.Tensor;
};
const cases: Case[] = [];
const plain = (lead: number[], m: number, k: number, n: number, eligible: boolean) => {
  const a = fill(lead.reduce((x, y) => x * y, 1) * m * k);
  const b = fill(lead.reduce((x, y) => x * y, 1) * k * n);
  cases.push({
    name: `[${lead}] ${m}x${k} · ${k}x${n}`,
    eligible,
    f: () => tf.matMul(tf.tensor(a, [...lead, m, k]), tf.tensor(b, [...lead, k, n])),
  });
};
// R1's attention (B*H = 512; T = 16, head 32), blocks of k past 48, 4-D leading dims.
plain([512], 16, 32, 16, true);
plain([512], 16, 16, 32, true);
plain([2, 3], 8, 100, 24, true);
plain([3], 4, 49, 8, true);
plain([5], 12, 97, 40, true);
plain([4], 8, 0, 16, true);
// Not for the kernel: odd m or n, one product, broadcast batch.
plain([3], 5, 16, 16, false);
plain([3], 8, 16, 12, false);
plain([1], 8, 16, 16, false);
{
  const a = fill(8 * 16), b = fill(3 * 16 * 8);
  cases.push({
    name: "broadcast [1] x [3]",
    eligible: false,
    f: () => tf.matMul(tf.tensor(a, [1, 8, 16]), tf.tensor(b, [3, 16, 8])),
  });
}
// Transposed batched products (the gradients' forms): materialised, then the kernel.
{
  const q = fill(64 * 16 * 32), k = fill(64 * 16 * 32);
  cases.push({
    name: "Q K^T [64] 16x32",
    eligible: true,
    f: () => tf.matMul(tf.tensor(q, [64, 16, 32]), tf.tensor(k, [64, 16, 32]), false, true),
  });
  cases.push({
    name: "Q^T K [64] 32x16",
    eligible: true,
    f: () => tf.matMul(tf.tensor(q, [64, 16, 32]), tf.tensor(k, [64, 16, 32]), true, false),
  });
}

// Sums over the leading axes (bias and LayerNorm gradients), and over others (not ours).
const sum = (shape: number[], axes: number[], eligible: boolean, keepDims = false) => {
  const x = fill(shape.reduce((a, b) => a * b, 1));
  cases.push({
    name: `sum [${shape}] over ${axes}${keepDims ? " keepDims" : ""}`,
    eligible,
    kernel: "sum_rows",
    f: () => tf.sum(tf.tensor(x, shape), axes, keepDims),
  });
};
sum([2048, 128], [0], true);
sum([2048, 384], [0], true);
sum([16, 128, 130], [0, 1], true);
sum([300, 7], [0], true, true);
sum([5, 3], [0], true);
sum([2048, 128], [1], false);
sum([2048, 128], [0, 1], false);
sum([4, 6, 8], [1], false);

// Concatenations (the q, k, v gradients; AdamW's flat vector; an empty piece; int32).
const concat = (shapes: number[][], axis: number, dtype: "float32" | "int32" = "float32") => {
  const xs = shapes.map((s) => fill(s.reduce((a, b) => a * b, 1)));
  cases.push({
    name: `concat ${shapes.map((s) => `[${s}]`).join(" ")} axis ${axis} ${dtype}`,
    eligible: true,
    kernel: "copy_rows",
    f: () => tf.concat(xs.map((x, i) => tf.tensor(x, shapes[i], dtype)), axis),
  });
};
concat([[2048, 128], [2048, 128], [2048, 128]], 1);
concat([[1000], [7], [24576]], 0);
concat([[3, 0, 4], [3, 5, 4], [3, 2, 4]], 1);
concat([[4, 3], [4, 5]], 1, "int32");
concat([[2, 3, 5], [2, 3, 1]], 2);

const bits = async (t: tf.Tensor) => {
  const d = await t.data() as Float32Array;
  t.dispose();
  return new Int32Array(d.buffer, d.byteOffset, d.length);
};
const results = [];
for (const c of cases) {
  const kernel = c.kernel ?? "bmm";
  setSimdKernels(false);
  const ref = await bits(tf.tidy(c.f));
  setSimdKernels(true);
  const before = simdKernelCalls()[kernel];
  const got = await bits(tf.tidy(c.f));
  let differ = 0;
  for (let i = 0; i < ref.length; i++) if (ref[i] !== got[i]) differ++;
  results.push({
    name: c.name,
    eligible: c.eligible,
    ran: simdKernelCalls()[kernel] > before,
    size: ref.length,
    differ,
  });
}
const w = (tf.backend() as unknown as { wasm: { wasmMemory?: WebAssembly.Memory } }).wasm;
console.log(JSON.stringify({
  threads: be.threads,
  shared: w.wasmMemory?.buffer instanceof SharedArrayBuffer,
  results,
}));
Deno.exit(0);
