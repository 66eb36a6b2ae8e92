/**
 * `KmeColSum`: x [N, C] -> [C], the sum over rows (a bias gradient); `KmeColSumPartial`: the
 * same over chunks of rows, [ceil(N / R), C]. tfjs-webgpu reduces a leading axis by a transpose
 * and a row reduction, two dispatches, and on llvmpipe that was a quarter of a step's GPU time.
 * One thread a column walks the rows, neighbours reading neighbouring addresses; that is only
 * C threads, too few for a GPU when N is large, so above `SINGLE_PASS_ROWS` rows the sum runs
 * in two passes: chunks of R rows first (N / R * C threads), then their sums.
 */
import type { TensorInfo } from "@tensorflow/tfjs-core";
import { webgpuKernel } from "./define.ts";
import { runFlat } from "./webgpu_program.ts";

export const COL_SUM = "KmeColSum";
export const COL_SUM_PARTIAL = "KmeColSumPartial";

/** Rows up to which one pass (one thread a column) is used. */
export const SINGLE_PASS_ROWS = 4096;
/** Rows a thread of the first pass sums. */
export const CHUNK_ROWS = 64;

export function colSumProgram(backend: unknown, x: TensorInfo): TensorInfo {
  const [n, c] = x.shape;
  return runFlat(
    backend,
    {
      name: "ColSumProgram",
      outputShape: [c],
      inputs: ["X"],
      uniforms: { rows: "i32", cols: "i32" },
      body: `
      var acc = 0.0;
      for (var r = 0; r < uniforms.rows; r++) { acc += X[r * uniforms.cols + index]; }
      result[index] = acc;`,
    },
    [x],
    { rows: n, cols: c },
  );
}

export const colSumKernels = [
  webgpuKernel(COL_SUM, ["x"], ([x], _a, backend) => colSumProgram(backend, x)),
  webgpuKernel(COL_SUM_PARTIAL, ["x"], ([x], _a, backend) => {
    const [n, c] = x.shape;
    return runFlat(
      backend,
      {
        name: "ColSumPartialProgram",
        outputShape: [Math.ceil(n / CHUNK_ROWS), c],
        inputs: ["X"],
        uniforms: { rows: "i32", cols: "i32" },
        body: `
        let k = index % uniforms.cols;
        let r0 = (index / uniforms.cols) * ${CHUNK_ROWS};
        var acc = 0.0;
        for (var r = r0; r < min(r0 + ${CHUNK_ROWS}, uniforms.rows); r++) {
          acc += X[r * uniforms.cols + k];
        }
        result[index] = acc;`,
      },
      [x],
      { rows: n, cols: c },
    );
  }),
];
