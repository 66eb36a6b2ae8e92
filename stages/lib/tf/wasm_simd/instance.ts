/**
 * Our SIMD kernels (kernels.wat, assembled into kernels_wasm.ts by tools/build_wasm.ts),
 * instantiated once per tfjs-backend-wasm heap: on the Emscripten module's own memory, shared
 * (threaded build) or plain (one thread), so they read and write tensors where tfjs keeps them.
 * `KME_WASM_SIMD=0` (or `setSimdKernels(false)`) leaves every product and sum to tfjs, for A/B
 * measurements; results are the same bits either way.
 */
import { PLAIN, SHARED } from "./kernels_wasm.ts";

export interface SimdKernels {
  bmm(a: number, b: number, c: number, batch: number, m: number, k: number, n: number): void;
  sum_rows(x: number, out: number, rows: number, cols: number): void;
  copy_rows(
    dst: number,
    src: number,
    bytes: number,
    rows: number,
    dstStride: number,
    srcStride: number,
  ): void;
}

let enabled = Deno.env.get("KME_WASM_SIMD") !== "0";
const byMemory = new WeakMap<WebAssembly.Memory, SimdKernels>();
const calls = { bmm: 0, sum_rows: 0, copy_rows: 0 };

/** Turns our kernels on or off (tests and benchmarks compare them with tfjs' loops). */
export function setSimdKernels(on: boolean): void {
  enabled = on;
}

/** How often each kernel ran in this process (tests check that it really ran). */
export function simdKernelCalls(): Readonly<typeof calls> {
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

/** The kernels on `backend`'s heap, counting calls; undefined when off or not a wasm backend. */
export function simdKernels(backend: unknown): SimdKernels | undefined {
  if (!enabled) return undefined;
  const memory = memoryOf(backend);
  if (!memory) return undefined;
  let k = byMemory.get(memory);
  if (!k) {
    const shared = typeof SharedArrayBuffer !== "undefined" &&
      memory.buffer instanceof SharedArrayBuffer;
    const mod = new WebAssembly.Module(decode(shared ? SHARED : PLAIN));
    const e = new WebAssembly.Instance(mod, { env: { memory } }).exports as unknown as SimdKernels;
    k = {
      bmm: (...a) => {
        calls.bmm++;
        e.bmm(...a);
      },
      sum_rows: (...a) => {
        calls.sum_rows++;
        e.sum_rows(...a);
      },
      copy_rows: (...a) => {
        calls.copy_rows++;
        e.copy_rows(...a);
      },
    };
    byMemory.set(memory, k);
  }
  return k;
}
