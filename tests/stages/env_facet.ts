/**
 * Test stage with environment facets, like the `auto` backends and engines: `flavour` is
 * $KME_TEST_FLAVOUR (default "plain"), `library` whether libkmefake.so is in $LD_LIBRARY_PATH's
 * first folder; the output records both.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { defineStage } from "../../pipeline/stage.ts";

export default defineStage({
  kind: "test/env-facet",
  description: "writes its environment facet",
  params: z.strictObject({}),
  inputs: {},
  facets: () => {
    const dir = (Deno.env.get("LD_LIBRARY_PATH") ?? "").split(":")[0];
    return {
      flavour: Deno.env.get("KME_TEST_FLAVOUR") ?? "plain",
      library: dir && existsSync(join(dir, "libkmefake.so")) ? "found" : "none",
    };
  },
  async run(ctx) {
    await Deno.writeTextFile(join(ctx.outDir, "flavour.txt"), ctx.facets.flavour);
    await Deno.writeTextFile(join(ctx.outDir, "library.txt"), ctx.facets.library);
    return { metrics: {} };
  },
});
