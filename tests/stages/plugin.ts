/**
 * Test stage with a plugin: `plugin` is the path of a module (named through `modules`, so its
 * code is in the key) whose default export maps the plugin params to a string. A plugin may
 * export `params`, a zod schema of its own params: `refineParams` validates `plugin_params`
 * with it (defaults filled in). The output holds the result and the plugin's code digest;
 * `trace` gets one line per execution.
 */
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { defineStage } from "../../pipeline/stage.ts";
import { appendTrace } from "./helpers.ts";

interface Plugin {
  default: (params: Record<string, unknown>) => string;
  params?: z.ZodType<Record<string, unknown>>;
}

async function load(path: string): Promise<Plugin> {
  return await import(pathToFileURL(path).href); // fingerprint: module named by params
}

export default defineStage({
  kind: "test/plugin",
  description: "runs a plugin module named by its params",
  params: z.strictObject({
    plugin: z.string(),
    plugin_params: z.record(z.string(), z.unknown()).default({}),
    trace: z.string().optional(),
  }),
  inputs: {},
  modules: (p) => ({ plugin: p.plugin }),
  async refineParams(p, modules) {
    const schema = (await load(modules.plugin)).params;
    if (!schema) return p;
    // Issue paths are relative to the plugin params: prefix them to point into the stage's.
    const r = schema.safeParse(p.plugin_params);
    if (!r.success) {
      throw new z.ZodError(
        r.error.issues.map((i) => ({ ...i, path: ["plugin_params", ...i.path] })),
      );
    }
    return { ...p, plugin_params: r.data };
  },
  async run(ctx) {
    const { path, digest } = ctx.modules.plugin;
    const plugin = await load(path);
    const result = plugin.default(ctx.params.plugin_params);
    if (ctx.params.trace) await appendTrace(ctx.params.trace, result);
    await Deno.writeTextFile(join(ctx.outDir, "result.txt"), result);
    await Deno.writeTextFile(join(ctx.outDir, "plugin.json"), JSON.stringify({ path, digest }));
    return { metrics: {} };
  },
});
