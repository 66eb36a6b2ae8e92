/**
 * Test stage: writes `text` (plus the text of its inputs, in input-name order) to out/text.txt.
 * `trace` (a file path) gets one line per execution so tests can count executions;
 * `sleep_ms` slows it; `fail` makes it throw; `bad_input` throws a StageInputError;
 * `bad_setup` throws what library code throws for a setting to change (exitCode 2).
 */
import { join } from "node:path";
import { z } from "zod";
import { defineStage, StageInputError } from "../../pipeline/stage.ts";
import { appendTrace, sleep } from "./helpers.ts";

export default defineStage({
  kind: "test/text",
  description: "concatenates texts",
  params: z.strictObject({
    text: z.string().default(""),
    trace: z.string().optional(),
    sleep_ms: z.int().min(0).default(0),
    fail: z.boolean().default(false),
    bad_input: z.boolean().default(false),
    bad_setup: z.boolean().default(false),
    lr: z.number().default(0.001),
  }),
  inputs: {
    a: { description: "first text", optional: true },
    b: { description: "second text", optional: true },
  },
  async run(ctx) {
    const p = ctx.params;
    if (p.trace) await appendTrace(p.trace, ctx.params.text);
    ctx.log(`writing '${p.text}'`);
    if (p.sleep_ms) await sleep(p.sleep_ms, ctx.signal);
    if (p.fail) throw new Error("asked to fail");
    if (p.bad_input) {
      throw new StageInputError("data file corrupt: /nowhere/x.idx", "/nowhere/x.idx");
    }
    if (p.bad_setup) {
      throw Object.assign(new RangeError("the machine cannot do this: set backend: wasm"), {
        exitCode: 2,
      });
    }
    let text = "";
    for (const name of Object.keys(ctx.inputs).sort()) {
      text += await Deno.readTextFile(join(ctx.inputs[name].dir, "text.txt"));
    }
    text += p.text;
    await Deno.writeTextFile(join(ctx.outDir, "text.txt"), text);
    return { metrics: { length: text.length, lr: p.lr } };
  },
});
