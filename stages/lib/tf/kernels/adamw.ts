/**
 * AdamW with global-norm clipping, in place on webgpu, in about P / 6 + P / 14 + 1 dispatches
 * for P parameters (llvmpipe's 16 storage bindings; more on a GPU that allows more), where the
 * flat composite (optim.ts) concatenated the gradients and the parameters, ran ~20 elementwise
 * kernels and split the result back into P slices (~110 dispatches for R1's 60 parameters).
 *
 * TF.js programs have one output, so an update of many buffers is written here as raw WGSL on
 * the backend's device and command encoder (tfjs-backend-webgpu 4.22 internals, named in
 * `Internals`): the parameters' and moments' own buffers are bound read-write and updated in
 * place. Three kinds of dispatch:
 * - sum of squares: per group of gradients, 64 workgroups write partial sums;
 * - norm: one thread adds the partials, writes |g|;
 * - update: per group of parameters, one thread an element: the clip factor
 *   min(maxNorm / (|g| + 1e-6), 1), then the same float32 operations as optim.ts's AdamW.
 */
import * as tf from "@tensorflow/tfjs-core";
import { noteDispatch } from "./webgpu_program.ts";

interface Internals {
  device: GPUDevice;
  tensorMap: { get(dataId: object): { resource?: GPUBuffer; values: unknown } };
  commandEncoder: GPUCommandEncoder;
  commandQueueOwnedIds: WeakSet<object>;
  uploadToGPU(dataId: object): void;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  makeUniforms(u: { type: string; data: number[] }[]): GPUBufferBinding;
  makeTensorInfo(shape: number[], dtype: "float32"): tf.TensorInfo;
}

export interface AdamWGpuArgs {
  params: tf.Variable[];
  grads: tf.Tensor[];
  decay: boolean[];
  /** Flat moments, in `params` order. */
  m: tf.Variable;
  v: tf.Variable;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Bias corrections 1 - beta^k, computed in float64 by the caller. */
  bc1: number;
  bc2: number;
  /** Clip the global gradient norm to this (<= 0: no clipping). */
  maxNorm: number;
}

const PARTIALS = 64; // workgroups (partial sums) per group of gradients
const WG = 256;

const pipelines = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

function pipeline(device: GPUDevice, code: string): GPUComputePipeline {
  let cache = pipelines.get(device);
  if (!cache) pipelines.set(device, cache = new Map());
  let p = cache.get(code);
  if (!p) {
    p = device.createComputePipeline({
      layout: "auto",
      compute: { module: device.createShaderModule({ code }), entryPoint: "main" },
    });
    cache.set(code, p);
  }
  return p;
}

function buffer(be: Internals, t: tf.TensorInfo): GPUBuffer {
  be.uploadToGPU(t.dataId);
  be.commandQueueOwnedIds.add(t.dataId);
  return be.tensorMap.get(t.dataId).resource as GPUBuffer;
}

function newTensor(be: Internals, shape: number[]): tf.Tensor {
  const info = be.makeTensorInfo(shape, "float32");
  return tf.engine().makeTensorFromTensorInfo(info);
}

function encode(
  be: Internals,
  name: string,
  code: string,
  buffers: GPUBuffer[],
  uniforms: GPUBufferBinding,
  groups: number,
): void {
  const p = pipeline(be.device, code);
  const entries: GPUBindGroupEntry[] = buffers.map((b, i) => ({
    binding: i,
    resource: { buffer: b },
  }));
  entries.push({ binding: buffers.length, resource: uniforms });
  const bindGroup = be.device.createBindGroup({ layout: p.getBindGroupLayout(0), entries });
  be.ensureCommandEncoderReady();
  be.endComputePassEncoder();
  const pass = be.commandEncoder.beginComputePass();
  pass.setPipeline(p);
  pass.setBindGroup(0, bindGroup);
  const x = Math.min(groups, 65535);
  pass.dispatchWorkgroups(x, Math.ceil(groups / x), 1);
  pass.end();
  noteDispatch(name);
}

const f32 = (data: number) => ({ type: "float32", data: [data] });
const i32 = (data: number) => ({ type: "int32", data: [data] });

function sumSquaresCode(k: number): string {
  const decl = Array.from(
    { length: k },
    (_, i) => `@group(0) @binding(${i}) var<storage, read> G${i} : array<f32>;`,
  ).join("\n");
  const fields = Array.from({ length: k + 1 }, (_, i) => `o${i} : i32,`).join(" ");
  const loads = Array.from(
    { length: k },
    (_, i) => `if (e < u.o${i + 1}) { return G${i}[e - u.o${i}]; }`,
  ).join("\n    ");
  return `${decl}
@group(0) @binding(${k}) var<storage, read_write> OUT : array<f32>;
struct U { base : i32, ${fields} };
@group(0) @binding(${k + 1}) var<uniform> u : U;
var<workgroup> part : array<f32, ${WG}>;
fn load(e : i32) -> f32 {
    ${loads}
    return 0.0;
}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) li : u32, @builtin(workgroup_id) wid : vec3<u32>) {
  var acc = 0.0;
  for (var e = i32(wid.x) * ${WG} + i32(li); e < u.o${k}; e += ${WG * PARTIALS}) {
    let g = load(e);
    acc += g * g;
  }
  part[li] = acc;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (li < s) { part[li] += part[li + s]; }
    workgroupBarrier();
  }
  if (li == 0u) { OUT[u.base + i32(wid.x)] = part[0]; }
}`;
}

const NORM_CODE = `
@group(0) @binding(0) var<storage, read> PART : array<f32>;
@group(0) @binding(1) var<storage, read_write> NORM : array<f32>;
struct U { n : i32, };
@group(0) @binding(2) var<uniform> u : U;
@compute @workgroup_size(1)
fn main() {
  var s = 0.0;
  for (var i = 0; i < u.n; i++) { s += PART[i]; }
  NORM[0] = sqrt(s);
}`;

function updateCode(k: number): string {
  const decl = Array.from(
    { length: k },
    (_, i) =>
      `@group(0) @binding(${2 * i}) var<storage, read_write> P${i} : array<f32>;
@group(0) @binding(${2 * i + 1}) var<storage, read> G${i} : array<f32>;`,
  ).join("\n");
  const fields = [
    ...Array.from({ length: k + 1 }, (_, i) => `o${i} : i32,`),
    ...Array.from({ length: k }, (_, i) => `d${i} : f32,`),
  ].join(" ");
  const slots = Array.from({ length: k }, (_, i) =>
    `if (e < u.o${i + 1}) {
      let j = e - u.o${i};
      P${i}[j] = step(P${i}[j], G${i}[j], e, u.d${i}, scale);
      return;
    }`).join("\n    ");
  return `${decl}
@group(0) @binding(${2 * k}) var<storage, read_write> M : array<f32>;
@group(0) @binding(${2 * k + 1}) var<storage, read_write> V : array<f32>;
@group(0) @binding(${2 * k + 2}) var<storage, read> NORM : array<f32>;
struct U {
  base : i32, lr : f32, beta1 : f32, beta2 : f32, eps : f32, wd : f32, bc1 : f32, bc2 : f32,
  maxNorm : f32, ${fields}
};
@group(0) @binding(${2 * k + 3}) var<uniform> u : U;
fn step(p : f32, graw : f32, e : i32, decay : f32, scale : f32) -> f32 {
  let g = graw * scale;
  let i = u.base + e;
  let m1 = M[i] * u.beta1 + g * (1.0 - u.beta1);
  let v1 = V[i] * u.beta2 + (g * g) * (1.0 - u.beta2);
  M[i] = m1;
  V[i] = v1;
  let update = (m1 / u.bc1) / (sqrt(v1 / u.bc2) + u.eps);
  let p1 = p - p * (u.lr * u.wd * decay);
  return p1 - update * u.lr;
}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid : vec3<u32>, @builtin(num_workgroups) nw : vec3<u32>) {
  let e = i32(gid.y * nw.x * ${WG}u + gid.x);
  if (e >= u.o${k}) { return; }
  var scale = 1.0;
  if (u.maxNorm > 0.0) { scale = min(u.maxNorm / (NORM[0] + 1e-6), 1.0); }
    ${slots}
}`;
}

/** Groups of consecutive indices whose sizes are given, at most `k` to a group. */
function chunks(n: number, k: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < n; i += k) {
    out.push(Array.from({ length: Math.min(k, n - i) }, (_, j) => i + j));
  }
  return out;
}

/** One AdamW step in place; returns the gradient norm before clipping, [1] (caller disposes). */
export function adamwStepWebgpu(a: AdamWGpuArgs): tf.Tensor {
  const be = tf.backend() as unknown as Internals;
  const bindings = be.device.limits.maxStorageBuffersPerShaderStage;
  const sizes = a.params.map((p) => p.size);
  const offsets: number[] = [];
  sizes.reduce((o, s) => (offsets.push(o), o + s), 0);

  const sq = chunks(a.grads.length, bindings - 1);
  const partials = newTensor(be, [sq.length * PARTIALS]);
  const norm = newTensor(be, [1]);
  const partBuf = buffer(be, partials);
  sq.forEach((group, gi) => {
    const cum = [0];
    for (const i of group) cum.push(cum.at(-1)! + sizes[i]);
    encode(
      be,
      "AdamWSumSquares",
      sumSquaresCode(group.length),
      [...group.map((i) => buffer(be, a.grads[i])), partBuf],
      be.makeUniforms([i32(gi * PARTIALS), ...cum.map(i32)]),
      PARTIALS,
    );
  });
  encode(
    be,
    "AdamWNorm",
    NORM_CODE,
    [partBuf, buffer(be, norm)],
    be.makeUniforms([
      i32(sq.length * PARTIALS),
    ]),
    1,
  );

  const k = Math.floor((bindings - 3) / 2);
  const m = buffer(be, a.m);
  const v = buffer(be, a.v);
  const normBuf = buffer(be, norm);
  for (const group of chunks(a.params.length, k)) {
    const cum = [0];
    for (const i of group) cum.push(cum.at(-1)! + sizes[i]);
    const bufs = group.flatMap((i) => [buffer(be, a.params[i]), buffer(be, a.grads[i])]);
    encode(
      be,
      "AdamWUpdate",
      updateCode(group.length),
      [...bufs, m, v, normBuf],
      be.makeUniforms([
        i32(offsets[group[0]]),
        f32(a.lr),
        f32(a.beta1),
        f32(a.beta2),
        f32(a.eps),
        f32(a.weightDecay),
        f32(a.bc1),
        f32(a.bc2),
        f32(a.maxNorm),
        ...cum.map(i32),
        ...group.map((i) => f32(a.decay[i] ? 1 : 0)),
      ]),
      Math.ceil(cum.at(-1)! / WG),
    );
  }
  partials.dispose();
  // tfjs keeps values it has read on the host beside the buffer; they are stale now.
  for (const t of [...a.params, a.m, a.v]) be.tensorMap.get(t.dataId).values = null;
  return norm;
}
