/**
 * GELU (tanh approximation, as x * sigmoid(2 z), z = sqrt(2/pi) (x + 0.044715 x^3)) and its
 * gradient, one elementwise dispatch each (the composite took ~6 forward and ~8 backward).
 */
import { webgpuKernel } from "./define.ts";
import { runFlat } from "./webgpu_program.ts";

export const GELU = "KmeGelu";
export const GELU_GRAD = "KmeGeluGrad";

const C1 = 2 * Math.sqrt(2 / Math.PI);
const C2 = C1 * 0.044715;

const sigmoid = `fn sigmoid_(u : f32) -> f32 { return 1.0 / (1.0 + exp(-u)); }`;

export const geluKernels = [
  webgpuKernel(GELU, ["x"], ([x], _a, backend) =>
    runFlat(
      backend,
      {
        name: "GeluProgram",
        outputShape: x.shape,
        inputs: ["X"],
        uniforms: {},
        functions: sigmoid,
        body: `
        let x = X[index];
        result[index] = x * sigmoid_(x * (${C1} + ${C2} * x * x));`,
      },
      [x],
      {},
    )),
  webgpuKernel(GELU_GRAD, ["x", "dy"], ([x, dy], _a, backend) =>
    runFlat(
      backend,
      {
        name: "GeluGradProgram",
        outputShape: x.shape,
        inputs: ["X", "DY"],
        uniforms: {},
        functions: sigmoid,
        body: `
        let x = X[index];
        let s = sigmoid_(x * (${C1} + ${C2} * x * x));
        let du = ${C1} + ${3 * C2} * x * x;
        result[index] = DY[index] * (s + s * (1.0 - s) * x * du);`,
      },
      [x, dy],
      {},
    )),
];
