/** gc keeps what recent runs reference; the published JSON Schema is current. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { kme, ROOT, sandbox } from "./helpers/cli.ts";

Deno.test("gc removes only entries no recent run references", async () => {
  await using sb = await sandbox();
  const exp = (t: string) =>
    `name: g\nstages:\n  a: {kind: $STAGES/text.ts, params: {text: ${t}}}\n`;
  const f = await sb.write("exp.yaml", exp("one"));
  assert.equal((await sb.run("run", f)).code, 0);
  await sb.write("exp.yaml", exp("two"));
  assert.equal((await sb.run("run", f)).code, 0);
  const entries = () => [...Deno.readDirSync(join(sb.store, "entries"))].length;
  assert.equal(entries(), 2);

  const dry = await sb.run("gc", "--keep", "1", "--dry-run");
  assert.match(dry.stdout, /would remove [0-9a-f]{12} \(a\)/);
  assert.equal(entries(), 2);
  const gc = await sb.run("gc", "--keep", "1");
  assert.equal(gc.code, 0, gc.stderr);
  assert.equal(entries(), 1);
  // The kept entry is the current one: a rerun executes nothing.
  assert.match((await sb.run("run", f)).stdout, /a\s+cached/);
  assert.equal((await sb.run("gc", "--keep", "0")).code, 2);
});

Deno.test("experiments/schema.json is what `schema` prints (run `deno task schema`)", async () => {
  const r = await kme(["schema"], ROOT);
  assert.equal(r.code, 0, r.stderr);
  const published = JSON.parse(await Deno.readTextFile(join(ROOT, "experiments", "schema.json")));
  assert.deepEqual(published, JSON.parse(r.stdout));
  assert.ok(JSON.stringify(published).includes("prepare/synthetic"));
});
