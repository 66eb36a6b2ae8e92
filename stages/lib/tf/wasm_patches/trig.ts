/**
 * `Cos` and `Sin` on wasm (tfjs 4.22) call emscripten's libm, ~70 ns per element (1.8M elements,
 * one WPSE step's random-feature angles: 128 ms); a JS loop over heap views with V8's `Math.cos`
 * / `Math.sin` (fdlibm, the same bits everywhere) takes a fraction of that. Only WPSE uses them;
 * no other similarity's results depend on this patch.
 */
import type { Tf } from "../backend.ts";
import { replaceWasmKernel, type TensorInfoLike, type WasmBackendLike } from "./kernel.ts";

export function patchTrig(tf: Tf): string[] {
  return ([["Cos", Math.cos], ["Sin", Math.sin]] as const).filter(([name, fn]) =>
    replaceWasmKernel(
      tf,
      name,
      (wasm) => wasm && ((args) => unaryJs(args.backend as WasmBackendLike, args.inputs.x, fn)),
    )
  ).map(([name]) => name);
}

/** y = fn(x) elementwise (float32), on heap views. */
function unaryJs(b: WasmBackendLike, x: TensorInfoLike, fn: (v: number) => number): TensorInfoLike {
  if (x.dtype !== "float32") throw new Error(`unary JS kernel: ${x.dtype} input, need float32`);
  const out = b.makeOutput(x.shape, "float32");
  const xv = b.typedArrayFromHeap(x) as Float32Array;
  const ov = b.typedArrayFromHeap(out) as Float32Array;
  for (let i = 0; i < xv.length; i++) ov[i] = fn(xv[i]);
  return out;
}
