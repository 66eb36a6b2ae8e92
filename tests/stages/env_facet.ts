/**
 * Test stage with an environment facet, like the `auto` backends and engines: the facet is
 * $KME_TEST_FLAVOUR (default "plain"), and the output records it.
 */
import { join } from "node:path";
import { z } from "zod";
import { defineStage } from "../../pipeline/stage.ts";

export default defineStage({
  kind: "test/env-facet",
  description: "writes its environment facet",
  params: z.strictObject({}),
  inputs: {},
  facets: () => ({ flavour: Deno.env.get("KME_TEST_FLAVOUR") ?? "plain" }),
  async run(ctx) {
    await Deno.writeTextFile(join(ctx.outDir, "flavour.txt"), ctx.facets.flavour);
    return { metrics: {} };
  },
});
