/**
 * Rows scaled to unit L2 norm, y = x * rsqrt(max(|x|^2, eps)), and its gradient
 * dx = r (dy - y (dy . y)) (r dy where the norm is clamped): one thread a row each. The
 * composite's gradient built a tensor of ones on the CPU and uploaded it every step.
 */
import { webgpuKernel } from "./define.ts";
import { runFlat } from "./webgpu_program.ts";

export const L2_NORMALIZE = "KmeL2Normalize";
export const L2_NORMALIZE_GRAD = "KmeL2NormalizeGrad";

const norm = `
  fn rnorm(base : i32, cols : i32, eps : f32) -> vec2<f32> {
    var q = 0.0;
    for (var k = 0; k < cols; k++) { q += X[base + k] * X[base + k]; }
    return vec2<f32>(inverseSqrt(max(q, eps)), select(0.0, 1.0, q > eps));
  }`;

export const l2NormalizeKernels = [
  webgpuKernel(L2_NORMALIZE, ["x"], ([x], a, backend) => {
    const c = x.shape[x.shape.length - 1];
    return runFlat(
      backend,
      {
        name: "L2NormalizeProgram",
        outputShape: x.shape,
        threads: x.shape.reduce((p, q) => p * q, 1) / c,
        inputs: ["X"],
        uniforms: { cols: "i32", eps: "f32" },
        functions: norm,
        body: `
        let base = index * uniforms.cols;
        let r = rnorm(base, uniforms.cols, uniforms.eps).x;
        for (var k = 0; k < uniforms.cols; k++) { result[base + k] = X[base + k] * r; }`,
      },
      [x],
      { cols: c, eps: a.eps },
    );
  }),
  webgpuKernel(L2_NORMALIZE_GRAD, ["x", "dy"], ([x, dy], a, backend) => {
    const c = x.shape[x.shape.length - 1];
    return runFlat(
      backend,
      {
        name: "L2NormalizeGradProgram",
        outputShape: x.shape,
        threads: x.shape.reduce((p, q) => p * q, 1) / c,
        inputs: ["X", "DY"],
        uniforms: { cols: "i32", eps: "f32" },
        functions: norm,
        body: `
        let base = index * uniforms.cols;
        let rn = rnorm(base, uniforms.cols, uniforms.eps);
        var dot = 0.0;
        for (var k = 0; k < uniforms.cols; k++) { dot += DY[base + k] * X[base + k] * rn.x; }
        dot = dot * rn.y;
        for (var k = 0; k < uniforms.cols; k++) {
          result[base + k] = rn.x * (DY[base + k] - X[base + k] * rn.x * dot);
        }`,
      },
      [x, dy],
      { cols: c, eps: a.eps },
    );
  }),
];
