/**
 * Batched products on tfjs-backend-wasm with a SIMD kernel of ours (batch_matmul.wat), where
 * tfjs 4.22 runs a scalar loop: every batched product that is not a plain 2-D one goes to its
 * `slow_batch_matmul` (~2 GFLOP/s). The attention's products ([B*H, 16, 32] x [B*H, 32, 16] in
 * R1) took ~80 ms of a ~450 ms training step there; this kernel runs them at 23-30 GFLOP/s (one
 * thread; `bench/_proto`-style A/B figures in docs/model.md) and rounds exactly as tfjs' loop
 * does, so trained weights are bit-identical with or without it (tests/ml_wasm_simd.test.ts).
 *
 * It takes products whose operands have the same leading (batch) dims, more than one product,
 * and m % 4 == 0 and n % 8 == 0 (its 4 x 8 register block); anything else stays with tfjs.
 * `KME_WASM_SIMD_MATMUL=0` turns it off (for A/B measurements).
 */
import type { TensorInfoLike, WasmBackendLike } from "../wasm_patches/kernel.ts";
import { PLAIN, SHARED } from "./batch_matmul_wasm.ts";

type Bmm = (
  a: number,
  b: number,
  c: number,
  batch: number,
  m: number,
  k: number,
  n: number,
) => void;

let enabled = Deno.env.get("KME_WASM_SIMD_MATMUL") !== "0";
let calls = 0;
const kernels = new WeakMap<WebAssembly.Memory, Bmm>();

/** Turns the kernel on or off (tests and benchmarks compare it with tfjs' own loop). */
export function setSimdBatchMatMul(on: boolean): void {
  enabled = on;
}

/** Products computed by the kernel in this process (tests check that it really ran). */
export function simdBatchMatMulCalls(): number {
  return calls;
}

/** The Emscripten module's memory: `wasmMemory` in the threaded build, `asm.memory` otherwise. */
function memoryOf(backend: unknown): WebAssembly.Memory | undefined {
  const w = (backend as {
    wasm?: { wasmMemory?: WebAssembly.Memory; asm?: { memory?: WebAssembly.Memory } };
  }).wasm;
  const m = w?.wasmMemory ?? w?.asm?.memory;
  return m instanceof WebAssembly.Memory ? m : undefined;
}

function decode(b64: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

function kernelFor(memory: WebAssembly.Memory): Bmm {
  let k = kernels.get(memory);
  if (!k) {
    const shared = typeof SharedArrayBuffer !== "undefined" &&
      memory.buffer instanceof SharedArrayBuffer;
    const mod = new WebAssembly.Module(decode(shared ? SHARED : PLAIN));
    k = new WebAssembly.Instance(mod, { env: { memory } }).exports.bmm as Bmm;
    kernels.set(memory, k);
  }
  return k;
}

/** A · B for plain (untransposed) batched operands, or undefined when the kernel does not apply. */
export function simdBatchMatMul(
  backend: WasmBackendLike,
  a: TensorInfoLike,
  b: TensorInfoLike,
): TensorInfoLike | undefined {
  if (!enabled || a.dtype !== "float32" || b.dtype !== "float32") return undefined;
  const r = a.shape.length;
  if (r < 3 || b.shape.length !== r) return undefined;
  const lead = a.shape.slice(0, -2);
  if (lead.some((d, i) => d !== b.shape[i])) return undefined;
  const batch = lead.reduce((x, y) => x * y, 1);
  const [m, k] = a.shape.slice(-2), n = b.shape[r - 1];
  if (batch < 2 || b.shape[r - 2] !== k || m % 4 !== 0 || n % 8 !== 0) return undefined;
  const memory = memoryOf(backend);
  if (!memory) return undefined;
  const bmm = kernelFor(memory);
  const out = backend.makeOutput([...lead, m, n], "float32");
  // Addresses after the output's allocation (which may grow the heap).
  const at = (t: TensorInfoLike) => backend.typedArrayFromHeap(t).byteOffset;
  bmm(at(a), at(b), at(out), batch, m, k, n);
  calls++;
  return out;
}
