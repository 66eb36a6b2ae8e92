/** Test stage: its worker process dies by SIGKILL, as under the out-of-memory killer. */
import { z } from "zod";
import { defineStage } from "../../pipeline/stage.ts";

export default defineStage({
  kind: "test/kill-self",
  description: "killed by a signal nobody asked for",
  params: z.strictObject({}),
  inputs: {},
  run(ctx) {
    ctx.log("about to be killed");
    Deno.kill(Deno.pid, "SIGKILL");
    return Promise.resolve({});
  },
});
