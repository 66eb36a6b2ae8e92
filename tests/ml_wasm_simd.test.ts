/**
 * Our SIMD kernels (stages/lib/tf/wasm_simd/: batched products, sums over leading axes): the
 * binary is what the .wat source assembles to, each runs where it applies and nowhere else, and
 * results are bit-identical to tfjs-backend-wasm's own loops, with a shared memory (2 threads)
 * and a plain one (1 thread).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT } from "./helpers/cli.ts";
import { moduleText } from "../tools/build_wasm.ts";

const SIMD = join(ROOT, "stages", "lib", "tf", "wasm_simd");

Deno.test("wasm simd: the committed module is what kernels.wat assembles to", async () => {
  assert.equal(
    await Deno.readTextFile(join(SIMD, "kernels_wasm.ts")),
    await moduleText(join(SIMD, "kernels.wat")),
    "stale: run deno run -A tools/build_wasm.ts",
  );
});

for (const threads of [1, 2]) {
  Deno.test(`wasm simd: bit-identical to tfjs' loop, applied only where it fits (${threads} thread(s))`, async () => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", join(ROOT, "tests", "helpers", "simd_kernels_check.ts")],
      env: { KME_WASM_THREADS: String(threads) },
      cwd: ROOT,
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const r = JSON.parse(text.trim().split("\n").at(-1)!);
    assert.equal(r.threads, threads);
    assert.equal(r.shared, threads > 1, "one thread: a plain memory; more: a shared one");
    for (const c of r.results) {
      assert.equal(c.differ, 0, `${c.name}: ${c.differ} of ${c.size} values differ`);
      assert.equal(c.ran, c.eligible, `${c.name}: kernel ${c.ran ? "ran" : "did not run"}`);
    }
  });
}
