/**
 * LayerNorm over the last axis of x [N, C] (eps 1e-5) in five dispatches instead of ~23:
 * - `KmeRowStats`: [N, 2] = (mean, 1 / sqrt(var + eps)) per row, two passes for accuracy;
 * - `KmeLayerNorm`: y = (x - mean) * rstd * g + b, one thread an element;
 * - `KmeLayerNormDx`: dx = rstd * (gx - mean(gx) - xhat * mean(gx * xhat)), gx = dy * g, one
 *   thread a row;
 * - `KmeLayerNormDg`: sum_r dy * xhat per column, [1, C], or over chunks of rows when N is
 *   large, [N / R, C], to be summed by a column sum (col_sum.ts); db is a column sum of dy.
 */
import { webgpuKernel } from "./define.ts";
import { runFlat } from "./webgpu_program.ts";
import { CHUNK_ROWS, SINGLE_PASS_ROWS } from "./col_sum.ts";

export const ROW_STATS = "KmeRowStats";
export const LAYER_NORM = "KmeLayerNorm";
export const LAYER_NORM_DX = "KmeLayerNormDx";
export const LAYER_NORM_DG = "KmeLayerNormDg";

export const LN_EPS = 1e-5;

export const layerNormKernels = [
  webgpuKernel(ROW_STATS, ["x"], ([x], _a, backend) => {
    const [n, c] = x.shape;
    return runFlat(
      backend,
      {
        name: "RowStatsProgram",
        outputShape: [n, 2],
        threads: n,
        inputs: ["X"],
        uniforms: { cols: "i32", eps: "f32" },
        body: `
        let base = index * uniforms.cols;
        var s = 0.0;
        for (var k = 0; k < uniforms.cols; k++) { s += X[base + k]; }
        let mean = s / f32(uniforms.cols);
        var q = 0.0;
        for (var k = 0; k < uniforms.cols; k++) { let d = X[base + k] - mean; q += d * d; }
        result[2 * index] = mean;
        result[2 * index + 1] = inverseSqrt(q / f32(uniforms.cols) + uniforms.eps);`,
      },
      [x],
      { cols: c, eps: LN_EPS },
    );
  }),
  webgpuKernel(LAYER_NORM, ["x", "stats", "g", "b"], ([x, stats, g, b], _a, backend) => {
    const [, c] = x.shape;
    return runFlat(
      backend,
      {
        name: "LayerNormProgram",
        outputShape: x.shape,
        inputs: ["X", "S", "G", "Bias"],
        uniforms: { cols: "i32" },
        body: `
        let r = index / uniforms.cols;
        let k = index % uniforms.cols;
        result[index] = (X[index] - S[2 * r]) * S[2 * r + 1] * G[k] + Bias[k];`,
      },
      [x, stats, g, b],
      { cols: c },
    );
  }),
  webgpuKernel(LAYER_NORM_DX, ["x", "stats", "g", "dy"], ([x, stats, g, dy], _a, backend) => {
    const [n, c] = x.shape;
    return runFlat(
      backend,
      {
        name: "LayerNormDxProgram",
        outputShape: x.shape,
        threads: n,
        inputs: ["X", "S", "G", "DY"],
        uniforms: { cols: "i32" },
        body: `
        let base = index * uniforms.cols;
        let mean = S[2 * index];
        let rstd = S[2 * index + 1];
        var m1 = 0.0;
        var m2 = 0.0;
        for (var k = 0; k < uniforms.cols; k++) {
          let gx = DY[base + k] * G[k];
          m1 += gx;
          m2 += gx * (X[base + k] - mean) * rstd;
        }
        m1 = m1 / f32(uniforms.cols);
        m2 = m2 / f32(uniforms.cols);
        for (var k = 0; k < uniforms.cols; k++) {
          let xhat = (X[base + k] - mean) * rstd;
          result[base + k] = rstd * (DY[base + k] * G[k] - m1 - xhat * m2);
        }`,
      },
      [x, stats, g, dy],
      { cols: c },
    );
  }),
  webgpuKernel(LAYER_NORM_DG, ["x", "stats", "dy"], ([x, stats, dy], _a, backend) => {
    const [n, c] = x.shape;
    // One thread a column over chunks of rows (see col_sum.ts); the chunks are summed after.
    const chunk = n > SINGLE_PASS_ROWS ? CHUNK_ROWS : n;
    return runFlat(
      backend,
      {
        name: "LayerNormDgProgram",
        outputShape: [Math.ceil(n / chunk), c],
        inputs: ["X", "S", "DY"],
        uniforms: { rows: "i32", cols: "i32", chunk: "i32" },
        body: `
        let k = index % uniforms.cols;
        let r0 = (index / uniforms.cols) * uniforms.chunk;
        var acc = 0.0;
        for (var r = r0; r < min(r0 + uniforms.chunk, uniforms.rows); r++) {
          let i = r * uniforms.cols + k;
          acc += DY[i] * (X[i] - S[2 * r]) * S[2 * r + 1];
        }
        result[index] = acc;`,
      },
      [x, stats, dy],
      { rows: n, cols: c, chunk },
    );
  }),
];
