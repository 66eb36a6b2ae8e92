/**
 * Test stage for sweeps: a "model" whose score depends on its similarity and seed, so that
 * diffs over seeds have known means and deviations.
 */
import { join } from "node:path";
import { z } from "zod";
import { defineStage } from "../../pipeline/stage.ts";

export default defineStage({
  kind: "test/score",
  description: "score = base(similarity) + 0.01 * seed",
  params: z.strictObject({ similarity: z.enum(["clip", "kme"]).default("clip") }),
  inputs: { data: { description: "anything", optional: true } },
  async run(ctx) {
    const score = (ctx.params.similarity === "kme" ? 0.6 : 0.5) + 0.01 * ctx.seed;
    await Deno.writeTextFile(join(ctx.outDir, "score.txt"), String(score));
    return { metrics: { score, seed: ctx.seed } };
  },
});
