/**
 * KME-CLIP's block log-sum-exp (stages/lib/similarity/kme.ts) and log point weights
 * (similarity/tf_ops.ts), one dispatch each way where the composites took ~11 and ~15:
 * - `KmeBlockLse`: X [B1 * M, B2 * N] -> [B1, B2], the LSE of each pair's [M, N] block, read in
 *   place (no transpose, and the softmax is not kept: the gradient recomputes it);
 * - `KmeBlockLseGrad`: dX = dy[i, j] * exp(X - lse[i, j]), in X's layout;
 * - `KmeLogSoftmaxRows`: x - lse(x) over the last axis (-Infinity stays -Infinity);
 * - `KmeLogSoftmaxRowsGrad`: dx = dy - softmax(x) * sum(dy), from the forward's output.
 * The similarity modules never import TF.js, so they call these by name; the names here and
 * there are checked equal by tests/ml_webgpu_ops.test.ts.
 */
import { webgpuKernel } from "./define.ts";
import { runFlat } from "./webgpu_program.ts";

export const BLOCK_LSE = "KmeBlockLse";
export const BLOCK_LSE_GRAD = "KmeBlockLseGrad";
export const LOG_SOFTMAX_ROWS = "KmeLogSoftmaxRows";
export const LOG_SOFTMAX_ROWS_GRAD = "KmeLogSoftmaxRowsGrad";

export const blockLseKernels = [
  webgpuKernel(BLOCK_LSE, ["x"], ([x], a, backend) => {
    const b1 = x.shape[0] / a.m;
    const b2 = x.shape[1] / a.n;
    return runFlat(
      backend,
      {
        name: "BlockLseProgram",
        outputShape: [b1, b2],
        inputs: ["X"],
        uniforms: { m: "i32", n: "i32", b2: "i32" },
        body: `
        let i = index / uniforms.b2;
        let j = index % uniforms.b2;
        let cols = uniforms.b2 * uniforms.n;
        var mx = -3.402823e38;
        for (var r = 0; r < uniforms.m; r++) {
          let base = (i * uniforms.m + r) * cols + j * uniforms.n;
          for (var c = 0; c < uniforms.n; c++) { mx = max(mx, X[base + c]); }
        }
        var s = 0.0;
        for (var r = 0; r < uniforms.m; r++) {
          let base = (i * uniforms.m + r) * cols + j * uniforms.n;
          for (var c = 0; c < uniforms.n; c++) { s += exp(X[base + c] - mx); }
        }
        result[index] = log(s) + mx;`,
      },
      [x],
      { m: a.m, n: a.n, b2 },
    );
  }),
  webgpuKernel(BLOCK_LSE_GRAD, ["x", "lse", "dy"], ([x, lse, dy], a, backend) => {
    const b2 = x.shape[1] / a.n;
    return runFlat(
      backend,
      {
        name: "BlockLseGradProgram",
        outputShape: x.shape,
        inputs: ["X", "LSE", "DY"],
        uniforms: { m: "i32", n: "i32", b2: "i32" },
        body: `
        let cols = uniforms.b2 * uniforms.n;
        let pair = (index / cols / uniforms.m) * uniforms.b2 + (index % cols) / uniforms.n;
        result[index] = DY[pair] * exp(X[index] - LSE[pair]);`,
      },
      [x, lse, dy],
      { m: a.m, n: a.n, b2 },
    );
  }),
  webgpuKernel(LOG_SOFTMAX_ROWS, ["x"], ([x], _a, backend) => {
    const c = x.shape[x.shape.length - 1];
    return runFlat(
      backend,
      {
        name: "LogSoftmaxRowsProgram",
        outputShape: x.shape,
        threads: x.shape.reduce((p, q) => p * q, 1) / c,
        inputs: ["X"],
        uniforms: { cols: "i32" },
        body: `
        let base = index * uniforms.cols;
        var mx = -3.402823e38;
        for (var k = 0; k < uniforms.cols; k++) { mx = max(mx, X[base + k]); }
        var s = 0.0;
        for (var k = 0; k < uniforms.cols; k++) { s += exp(X[base + k] - mx); }
        let lse = log(s) + mx;
        for (var k = 0; k < uniforms.cols; k++) { result[base + k] = X[base + k] - lse; }`,
      },
      [x],
      { cols: c },
    );
  }),
  webgpuKernel(LOG_SOFTMAX_ROWS_GRAD, ["y", "dy"], ([y, dy], _a, backend) => {
    const c = y.shape[y.shape.length - 1];
    return runFlat(
      backend,
      {
        name: "LogSoftmaxRowsGradProgram",
        outputShape: y.shape,
        threads: y.shape.reduce((p, q) => p * q, 1) / c,
        inputs: ["Y", "DY"],
        uniforms: { cols: "i32" },
        body: `
        let base = index * uniforms.cols;
        var s = 0.0;
        for (var k = 0; k < uniforms.cols; k++) { s += DY[base + k]; }
        for (var k = 0; k < uniforms.cols; k++) {
          result[base + k] = DY[base + k] - exp(Y[base + k]) * s;
        }`,
      },
      [y, dy],
      { cols: c },
    );
  }),
];
