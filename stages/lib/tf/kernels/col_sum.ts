/**
 * `KmeColSum`: x [N, C] -> [C], the sum over rows (a bias gradient). tfjs-webgpu reduces a
 * leading axis by a transpose and a row reduction, two dispatches, and on llvmpipe it was a
 * quarter of a step's GPU time. One thread per column walks the rows; neighbouring threads read
 * neighbouring addresses.
 */
import { webgpuKernel } from "./define.ts";
import { runFlat } from "./webgpu_program.ts";

export const COL_SUM = "KmeColSum";

export const colSumKernels = [
  webgpuKernel(COL_SUM, ["x"], ([x], _a, backend) => {
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
  }),
];
