/**
 * Multi-head self-attention straight from the fused projection qkv [B * T, 3W] (q, k, v side
 * by side, head h in columns h * dh .. (h + 1) * dh of each) to the merged output [B * T, W],
 * optionally with a key mask [B, T] (1 real, 0 padding: a bias of -1e9, as the composite adds):
 * one dispatch forward, two
 * backward, where the composite took a split, three head transposes, two batched matmuls, a
 * scale, a bias add, a softmax and a merge (~14 forward, ~30 backward). One thread a query row
 * (T <= 128 keys, dh <= 64), so intermediate scores never reach memory; the backward pass
 * recomputes them, as FlashAttention does:
 * - `KmeAttentionBwdQ`, one thread a query row i: lse_i, D_i = sum_j P_ij dP_ij and dq_i;
 * - `KmeAttentionBwdKV`, one thread a key row j: dk_j, dv_j from (lse, D), and copies dq.
 */
import { webgpuKernel } from "./define.ts";
import { runFlat } from "./webgpu_program.ts";

export const ATTENTION = "KmeAttention";
export const ATTENTION_BWD_Q = "KmeAttentionBwdQ";
export const ATTENTION_BWD_KV = "KmeAttentionBwdKV";

export const MAX_TOKENS = 128;
export const MAX_HEAD_DIM = 64;

/** Attributes: batch, heads (tokens and width follow from the shapes); masked 0/1. */
function dims(qkv: { shape: number[] }, a: Record<string, number>) {
  const b = a.batch;
  const t = qkv.shape[0] / b;
  const w = qkv.shape[1] / 3;
  const dh = w / a.heads;
  if (t > MAX_TOKENS || dh > MAX_HEAD_DIM) {
    throw new Error(`fused attention takes <= ${MAX_TOKENS} tokens, head dim <= ${MAX_HEAD_DIM}`);
  }
  return { b, t, w, dh, h: a.heads };
}

/** WGSL shared by the three programs: indices of q, k, v of (batch b, head h, token t). */
const common = (t: number, dh: number, masked: boolean) => `
  const T = ${t};
  const DH = ${dh};
  fn qAt(b : i32, h : i32, i : i32) -> i32 { return (b * T + i) * 3 * uniforms.w + h * DH; }
  fn kAt(b : i32, h : i32, j : i32) -> i32 { return qAt(b, h, j) + uniforms.w; }
  fn vAt(b : i32, h : i32, j : i32) -> i32 { return qAt(b, h, j) + 2 * uniforms.w; }
  fn oAt(b : i32, h : i32, i : i32) -> i32 { return (b * T + i) * uniforms.w + h * DH; }
  fn keyBias(b : i32, j : i32) -> f32 {
    return ${masked ? "select(-1e9, 0.0, KM[b * T + j] > 0.5)" : "0.0"};
  }
  fn score(b : i32, h : i32, i : i32, j : i32) -> f32 {
    let q = qAt(b, h, i);
    let k = kAt(b, h, j);
    var s = 0.0;
    for (var e = 0; e < DH; e++) { s += QKV[q + e] * QKV[k + e]; }
    return s * uniforms.scale + keyBias(b, j);
  }`;

/**
 * The body's start for thread (b, h, i): s[j] = exp(score_ij - mx) over the keys, and their sum
 * (the forward and the first backward pass both need the row's softmax).
 */
const softmaxRow = `
          let i = index % T;
          let h = (index / T) % uniforms.heads;
          let b = index / (T * uniforms.heads);
          var s : array<f32, T>;
          var mx = -3.402823e38;
          for (var j = 0; j < T; j++) { s[j] = score(b, h, i, j); mx = max(mx, s[j]); }
          var sum = 0.0;
          for (var j = 0; j < T; j++) { s[j] = exp(s[j] - mx); sum += s[j]; }`;

function forward(masked: boolean) {
  return webgpuKernel(
    masked ? `${ATTENTION}Masked` : ATTENTION,
    masked ? ["qkv", "mask"] : ["qkv"],
    (inputs, a, backend) => {
      const d = dims(inputs[0], a);
      return runFlat(
        backend,
        {
          name: masked ? "AttentionMaskedProgram" : "AttentionProgram",
          outputShape: [d.b * d.t, d.w],
          threads: d.b * d.h * d.t,
          inputs: masked ? ["QKV", "KM"] : ["QKV"],
          uniforms: { w: "i32", heads: "i32", scale: "f32" },
          functions: common(d.t, d.dh, masked),
          body: `
          ${softmaxRow}
          var acc : array<f32, DH>;
          for (var j = 0; j < T; j++) {
            let p = s[j] / sum;
            let v = vAt(b, h, j);
            for (var e = 0; e < DH; e++) { acc[e] += p * QKV[v + e]; }
          }
          let o = oAt(b, h, i);
          for (var e = 0; e < DH; e++) { result[o + e] = acc[e]; }`,
        },
        inputs,
        { w: d.w, heads: d.h, scale: 1 / Math.sqrt(d.dh) },
      );
    },
  );
}

/** aux [B * H * T, 2 + dh]: (lse_i, D_i, dq_i). Inputs qkv, dout (, mask). */
function backwardQ(masked: boolean) {
  return webgpuKernel(
    masked ? `${ATTENTION_BWD_Q}Masked` : ATTENTION_BWD_Q,
    masked ? ["qkv", "dout", "mask"] : ["qkv", "dout"],
    (inputs, a, backend) => {
      const d = dims(inputs[0], a);
      return runFlat(
        backend,
        {
          name: masked ? "AttentionBwdQMaskedProgram" : "AttentionBwdQProgram",
          outputShape: [d.b * d.h * d.t, 2 + d.dh],
          threads: d.b * d.h * d.t,
          inputs: masked ? ["QKV", "DO", "KM"] : ["QKV", "DO"],
          uniforms: { w: "i32", heads: "i32", scale: "f32" },
          functions: common(d.t, d.dh, masked),
          body: `
          ${softmaxRow}
          let o = oAt(b, h, i);
          var dp : array<f32, T>;
          var dd = 0.0;
          for (var j = 0; j < T; j++) {
            s[j] = s[j] / sum;
            let v = vAt(b, h, j);
            var x = 0.0;
            for (var e = 0; e < DH; e++) { x += DO[o + e] * QKV[v + e]; }
            dp[j] = x;
            dd += s[j] * x;
          }
          var dq : array<f32, DH>;
          for (var j = 0; j < T; j++) {
            let ds = s[j] * (dp[j] - dd) * uniforms.scale;
            let k = kAt(b, h, j);
            for (var e = 0; e < DH; e++) { dq[e] += ds * QKV[k + e]; }
          }
          let out = index * (2 + DH);
          result[out] = log(sum) + mx;
          result[out + 1] = dd;
          for (var e = 0; e < DH; e++) { result[out + 2 + e] = dq[e]; }`,
        },
        inputs,
        { w: d.w, heads: d.h, scale: 1 / Math.sqrt(d.dh) },
      );
    },
  );
}

/** dqkv [B * T, 3W]. Inputs qkv, dout, aux (, mask). */
function backwardKV(masked: boolean) {
  return webgpuKernel(
    masked ? `${ATTENTION_BWD_KV}Masked` : ATTENTION_BWD_KV,
    masked ? ["qkv", "dout", "aux", "mask"] : ["qkv", "dout", "aux"],
    (inputs, a, backend) => {
      const d = dims(inputs[0], a);
      return runFlat(
        backend,
        {
          name: masked ? "AttentionBwdKVMaskedProgram" : "AttentionBwdKVProgram",
          outputShape: [d.b * d.t, 3 * d.w],
          threads: d.b * d.h * d.t,
          inputs: masked ? ["QKV", "DO", "AUX", "KM"] : ["QKV", "DO", "AUX"],
          uniforms: { w: "i32", heads: "i32", scale: "f32" },
          functions: common(d.t, d.dh, masked),
          body: `
          let j = index % T;
          let h = (index / T) % uniforms.heads;
          let b = index / (T * uniforms.heads);
          let v = vAt(b, h, j);
          var dk : array<f32, DH>;
          var dv : array<f32, DH>;
          for (var i = 0; i < T; i++) {
            let row = (b * uniforms.heads + h) * T + i;
            let p = exp(score(b, h, i, j) - AUX[row * (2 + DH)]);
            let o = oAt(b, h, i);
            var dp = 0.0;
            for (var e = 0; e < DH; e++) { dp += DO[o + e] * QKV[v + e]; }
            let ds = p * (dp - AUX[row * (2 + DH) + 1]) * uniforms.scale;
            let q = qAt(b, h, i);
            for (var e = 0; e < DH; e++) {
              dk[e] += ds * QKV[q + e];
              dv[e] += p * DO[o + e];
            }
          }
          let q = qAt(b, h, j);
          let mine = index * (2 + DH) + 2;
          for (var e = 0; e < DH; e++) {
            result[q + e] = AUX[mine + e];
            result[q + uniforms.w + e] = dk[e];
            result[q + 2 * uniforms.w + e] = dv[e];
          }`,
        },
        inputs,
        { w: d.w, heads: d.h, scale: 1 / Math.sqrt(d.dh) },
      );
    },
  );
}

export const attentionKernels = [
  forward(false),
  forward(true),
  backwardQ(false),
  backwardQ(true),
  backwardKV(false),
  backwardKV(true),
];
