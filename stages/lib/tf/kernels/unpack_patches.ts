/**
 * `KmeUnpackPatches`: images uploaded as raw bytes (four pixels' channel values to an int32,
 * little-endian; TF.js has no uint8 dtype) -> the patch matrix [B * P, patch * patch * C] the
 * image tower embeds, scaled to [-1, 1] as `patchify` does (x / 127.5 - 1). One dispatch on
 * webgpu replaces the int32 upload of every byte (4x the bytes), a cast, two elementwise ops and
 * a rank-6 transpose. The cpu kernel is the reference the tests compare with.
 */
import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import { type CpuBackendLike, runFlat } from "./webgpu_program.ts";

export const UNPACK_PATCHES = "KmeUnpackPatches";

export interface UnpackPatchesAttrs {
  height: number;
  width: number;
  channels: number;
  patch: number;
}

/** int32 words per image: its H * W * C bytes, padded to a multiple of 4. */
export function wordsPerImage(a: Omit<UnpackPatchesAttrs, "patch">): number {
  return Math.ceil((a.height * a.width * a.channels) / 4);
}

function geometry(x: TensorInfo, a: UnpackPatchesAttrs) {
  const [count, words] = x.shape;
  if (words !== wordsPerImage(a)) {
    throw new Error(`${UNPACK_PATCHES}: ${words} words per image, expected ${wordsPerImage(a)}`);
  }
  const gw = a.width / a.patch;
  const p = (a.height / a.patch) * gw;
  const rowLen = a.patch * a.patch * a.channels;
  return { count, words, gw, p, rowLen, outShape: [count * p, rowLen] };
}

const SCALE = 1 / 127.5;

function unpackCpu(
  { inputs, backend, attrs }: { inputs: { x: TensorInfo }; backend: unknown; attrs: unknown },
): TensorInfo {
  const a = attrs as unknown as UnpackPatchesAttrs;
  const be = backend as CpuBackendLike;
  const g = geometry(inputs.x, a);
  const words = be.data.get(inputs.x.dataId).values as Int32Array;
  const bytes = new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
  const out = new Float32Array(g.count * g.p * g.rowLen);
  const scale = Math.fround(SCALE);
  let o = 0;
  for (let b = 0; b < g.count; b++) {
    for (let pi = 0; pi < g.p; pi++) {
      const y0 = Math.floor(pi / g.gw) * a.patch;
      const x0 = (pi % g.gw) * a.patch;
      for (let py = 0; py < a.patch; py++) {
        for (let px = 0; px < a.patch; px++) {
          const base = b * g.words * 4 + ((y0 + py) * a.width + x0 + px) * a.channels;
          for (let c = 0; c < a.channels; c++) {
            out[o++] = Math.fround(Math.fround(bytes[base + c] * scale) - 1);
          }
        }
      }
    }
  }
  return be.makeTensorInfo(g.outShape, "float32", out);
}

function unpackWebgpu(
  { inputs, backend, attrs }: { inputs: { x: TensorInfo }; backend: unknown; attrs: unknown },
): TensorInfo {
  const a = attrs as unknown as UnpackPatchesAttrs;
  const g = geometry(inputs.x, a);
  return runFlat(
    backend,
    {
      name: "UnpackPatchesProgram",
      outputShape: g.outShape,
      inputs: ["A"],
      uniforms: {
        gw: "i32",
        patchSize: "i32",
        channels: "i32",
        words: "i32",
        width: "i32",
        p: "i32",
        rowLen: "i32",
      },
      body: `
      let row = index / uniforms.rowLen;
      let col = index % uniforms.rowLen;
      let b = row / uniforms.p;
      let pi = row % uniforms.p;
      let c = col % uniforms.channels;
      let t = col / uniforms.channels;
      let y = (pi / uniforms.gw) * uniforms.patchSize + t / uniforms.patchSize;
      let x = (pi % uniforms.gw) * uniforms.patchSize + t % uniforms.patchSize;
      let byteIndex = (y * uniforms.width + x) * uniforms.channels + c;
      let word = bitcast<u32>(A[b * uniforms.words + byteIndex / 4]);
      let v = (word >> (8u * u32(byteIndex % 4))) & 255u;
      setOutputAtIndex(index, f32(v) * ${Math.fround(SCALE)} - 1.0);`,
    },
    [inputs.x],
    {
      gw: g.gw,
      patchSize: a.patch,
      channels: a.channels,
      words: g.words,
      width: a.width,
      p: g.p,
      rowLen: g.rowLen,
    },
  );
}

export const unpackPatchesKernels: KernelConfig[] = [
  { kernelName: UNPACK_PATCHES, backendName: "cpu", kernelFunc: unpackCpu as never },
  { kernelName: UNPACK_PATCHES, backendName: "webgpu", kernelFunc: unpackWebgpu as never },
];
