/**
 * Mean of each input's tokens, x [B * T, W] -> [B, W], over the tokens a mask [B, T] marks (1
 * real, 0 padding; at least one counted), or over all T without a mask; and its gradient
 * dx[b, t] = dy[b] * mask[b, t] / count[b]. One dispatch each; the composite's gradient
 * uploaded a [B, T, W] tensor of ones every step.
 */
import { webgpuKernel } from "./define.ts";
import { runFlat } from "./webgpu_program.ts";

export const MEAN_POOL = "KmeMeanPool";
export const MEAN_POOL_MASKED = "KmeMeanPoolMasked";
export const MEAN_POOL_GRAD = "KmeMeanPoolGrad";
export const MEAN_POOL_MASKED_GRAD = "KmeMeanPoolMaskedGrad";

const count = (masked: boolean) =>
  masked
    ? `var cnt = 0.0;
       for (var t = 0; t < uniforms.tokens; t++) { cnt += M[b * uniforms.tokens + t]; }
       cnt = max(cnt, 1.0);`
    : `let cnt = f32(uniforms.tokens);`;

function pool(masked: boolean) {
  return webgpuKernel(
    masked ? MEAN_POOL_MASKED : MEAN_POOL,
    masked ? ["x", "mask"] : ["x"],
    (inputs, a, backend) => {
      const [x] = inputs;
      const w = x.shape[1];
      const b = a.batch;
      return runFlat(
        backend,
        {
          name: masked ? "MeanPoolMaskedProgram" : "MeanPoolProgram",
          outputShape: [b, w],
          inputs: masked ? ["X", "M"] : ["X"],
          uniforms: { tokens: "i32", width: "i32" },
          body: `
          let b = index / uniforms.width;
          let k = index % uniforms.width;
          ${count(masked)}
          var acc = 0.0;
          for (var t = 0; t < uniforms.tokens; t++) {
            acc += X[(b * uniforms.tokens + t) * uniforms.width + k]${
            masked ? " * M[b * uniforms.tokens + t]" : ""
          };
          }
          result[index] = acc / cnt;`,
        },
        inputs,
        { tokens: x.shape[0] / b, width: w },
      );
    },
  );
}

function poolGrad(masked: boolean) {
  return webgpuKernel(
    masked ? MEAN_POOL_MASKED_GRAD : MEAN_POOL_GRAD,
    masked ? ["dy", "mask"] : ["dy"],
    (inputs, a, backend) => {
      const [dy] = inputs;
      const [b, w] = dy.shape;
      return runFlat(
        backend,
        {
          name: masked ? "MeanPoolMaskedGradProgram" : "MeanPoolGradProgram",
          outputShape: [b * a.tokens, w],
          inputs: masked ? ["DY", "M"] : ["DY"],
          uniforms: { tokens: "i32", width: "i32" },
          body: `
          let row = index / uniforms.width;
          let k = index % uniforms.width;
          let b = row / uniforms.tokens;
          ${count(masked)}
          result[index] = DY[b * uniforms.width + k]${masked ? " * M[row]" : ""} / cnt;`,
        },
        inputs,
        { tokens: a.tokens, width: w },
      );
    },
  );
}

export const meanPoolKernels = [pool(false), pool(true), poolGrad(false), poolGrad(true)];
