/** Tests that need a WebGPU adapter (Deno's software llvmpipe is one): skipped, saying so, without. */
import { webgpuAdapterDescription } from "../../stages/lib/tf/backend.ts";

export const adapter = await webgpuAdapterDescription();

/** A test that needs a WebGPU adapter; the GPU device stays open for the process's lifetime. */
export function webgpuTest(name: string, fn: () => Promise<void>): void {
  Deno.test({
    name: name + (adapter === undefined ? " [skipped: no WebGPU adapter]" : ""),
    ignore: adapter === undefined,
    sanitizeResources: false,
    sanitizeOps: false,
    fn,
  });
}
