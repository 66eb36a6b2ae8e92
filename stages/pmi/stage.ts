/**
 * pmi: PMI fidelity on synthetic data. Encodes the held-out grid of the dataset's pmi.json
 * (test images x caption texts) with the model, scores every pair with the model's own
 * similarity and compares s(x, y) with the exact PMI: Pearson, Spearman, RMSE after the best
 * constant shift. Light definition; the work is in ./run.ts.
 */
import { z } from "zod";
import { defineStage } from "../../pipeline/stage.ts";
import { backendFacets, backendParam } from "../lib/tf/backend_param.ts";

export const PmiParams = z.strictObject({
  /** Images / texts per forward pass. */
  batch_size: z.int().min(1).default(256),
  /** Pairs written to scatter.json (seeded subsample when the grid is larger). */
  scatter_points: z.int().min(1).max(5000).default(5000),
  backend: backendParam,
});
export type PmiParams = z.output<typeof PmiParams>;

export default defineStage({
  kind: "pmi",
  description: "PMI fidelity on a synthetic dataset's exact PMI grid (Pearson, Spearman, " +
    "shifted RMSE); writes metrics.json and scatter.json.",
  params: PmiParams,
  inputs: {
    model: { description: "a trained model (pretrain)" },
    data: { description: "a dataset with pmi.json + pmi.f32 (prepare/synthetic)" },
  },
  facets: backendFacets,
  run: async (ctx) => (await import("./run.ts")).run(ctx),
});
