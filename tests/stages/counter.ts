/**
 * Test stage with checkpoints: computes `steps` rounds of a hash chain, sleeping `step_ms`
 * per round, checkpointing the state to scratch after every round. A resumed run continues
 * from the checkpoint; `trace` gets one line per round actually executed.
 */
import { join } from "node:path";
import { createHash } from "node:crypto";
import { z } from "zod";
import { defineStage } from "../../pipeline/stage.ts";
import { appendTrace, sleep } from "./helpers.ts";

export default defineStage({
  kind: "test/counter",
  description: "a slow, checkpointing hash chain",
  params: z.strictObject({
    steps: z.int().min(1).default(10),
    step_ms: z.int().min(0).default(20),
    trace: z.string().optional(),
  }),
  inputs: { src: { description: "seed text", optional: true } },
  async run(ctx) {
    const ckpt = join(ctx.scratch, "ckpt.json");
    let state = { step: 0, value: String(ctx.seed) };
    try {
      state = JSON.parse(await Deno.readTextFile(ckpt));
      ctx.log(`resuming at step ${state.step}`);
    } catch {
      if (ctx.inputs.src) {
        state.value += await Deno.readTextFile(join(ctx.inputs.src.dir, "text.txt"));
      }
    }
    ctx.progress.start(ctx.params.steps, "rounds");
    while (state.step < ctx.params.steps) {
      await sleep(ctx.params.step_ms, ctx.signal);
      state.value = createHash("sha256").update(state.value).digest("hex");
      state.step++;
      if (ctx.params.trace) await appendTrace(ctx.params.trace, String(state.step));
      const tmp = ckpt + ".tmp";
      await Deno.writeTextFile(tmp, JSON.stringify(state));
      await Deno.rename(tmp, ckpt);
      ctx.progress.update(state.step, { value: state.value.slice(0, 6) });
    }
    ctx.progress.stop();
    await Deno.writeTextFile(join(ctx.outDir, "chain.txt"), state.value + "\n");
    return { metrics: { steps: state.step } };
  },
});
