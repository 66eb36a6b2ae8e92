/**
 * `KmeTokenMask`: token ids [B, L] (int32, PAD = 0) -> [B, L] float, 1 for a real token and 0
 * for padding: the composite min(ids, 1) -> float uploaded a scalar and took two dispatches.
 */
import { webgpuKernel } from "./define.ts";
import { runFlat } from "./webgpu_program.ts";

export const TOKEN_MASK = "KmeTokenMask";

export const tokenMaskKernels = [
  webgpuKernel(TOKEN_MASK, ["ids"], ([ids], _a, backend) =>
    runFlat(
      backend,
      {
        name: "TokenMaskProgram",
        outputShape: ids.shape,
        inputs: ["IDS"],
        uniforms: {},
        body: `result[index] = select(0.0, 1.0, IDS[index] > 0);`,
      },
      [ids],
      {},
    )),
];
