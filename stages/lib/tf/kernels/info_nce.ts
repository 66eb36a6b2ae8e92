/**
 * Symmetric InfoNCE of a [B, B] logit matrix (positives on the diagonal) in two dispatches, and
 * its gradient in one; the composite built an identity matrix on the CPU each step (B^2 floats
 * uploaded) and took ~25 kernels forward and backward.
 * - `KmeInfoNceLse`: [2B] = log-sum-exp of each row (first B), then of each column;
 * - `KmeInfoNceLoss`: [1] = sum_i (lseRow_i + lseCol_i - 2 L_ii) / (2B);
 * - `KmeInfoNceGrad`: dL_ij = dy (softmaxRow_ij + softmaxCol_ij - 2 [i = j]) / (2B).
 */
import { webgpuKernel } from "./define.ts";
import { runFlat } from "./webgpu_program.ts";

export const INFO_NCE_LSE = "KmeInfoNceLse";
export const INFO_NCE_LOSS = "KmeInfoNceLoss";
export const INFO_NCE_GRAD = "KmeInfoNceGrad";

export const infoNceKernels = [
  webgpuKernel(INFO_NCE_LSE, ["logits"], ([l], _a, backend) => {
    const b = l.shape[0];
    return runFlat(
      backend,
      {
        name: "InfoNceLseProgram",
        outputShape: [2 * b],
        inputs: ["L"],
        uniforms: { b: "i32" },
        body: `
        let row = index < uniforms.b;
        let i = index % uniforms.b;
        var mx = -3.402823e38;
        for (var j = 0; j < uniforms.b; j++) {
          mx = max(mx, select(L[j * uniforms.b + i], L[i * uniforms.b + j], row));
        }
        var s = 0.0;
        for (var j = 0; j < uniforms.b; j++) {
          s += exp(select(L[j * uniforms.b + i], L[i * uniforms.b + j], row) - mx);
        }
        result[index] = log(s) + mx;`,
      },
      [l],
      { b },
    );
  }),
  webgpuKernel(INFO_NCE_LOSS, ["logits", "lse"], ([l, lse], _a, backend) => {
    const b = l.shape[0];
    return runFlat(
      backend,
      {
        name: "InfoNceLossProgram",
        outputShape: [1],
        inputs: ["L", "LSE"],
        uniforms: { b: "i32" },
        body: `
        var acc = 0.0;
        for (var i = 0; i < uniforms.b; i++) {
          acc += LSE[i] + LSE[uniforms.b + i] - 2.0 * L[i * uniforms.b + i];
        }
        result[0] = acc / f32(2 * uniforms.b);`,
      },
      [l, lse],
      { b },
    );
  }),
  webgpuKernel(INFO_NCE_GRAD, ["logits", "lse", "dy"], ([l, lse, dy], _a, backend) => {
    const b = l.shape[0];
    return runFlat(
      backend,
      {
        name: "InfoNceGradProgram",
        outputShape: l.shape,
        inputs: ["L", "LSE", "DY"],
        uniforms: { b: "i32" },
        body: `
        let i = index / uniforms.b;
        let j = index % uniforms.b;
        let x = L[index];
        let eye = select(0.0, 2.0, i == j);
        result[index] = DY[0] * (exp(x - LSE[i]) + exp(x - LSE[uniforms.b + j]) - eye) /
          f32(2 * uniforms.b);`,
      },
      [l, lse, dy],
      { b },
    );
  }),
];
