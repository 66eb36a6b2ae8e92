/**
 * Done-when 5 of the engine: every malformed experiment in tests/fixtures/bad/ exits 2 with
 * `file:line:col: error: ...` as its first line header says, and leaves the store untouched.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { kme, ROOT, sandbox } from "./helpers/cli.ts";

const BAD = join(ROOT, "tests", "fixtures", "bad");
const cases = [...Deno.readDirSync(BAD)]
  .map((e) => e.name)
  .filter((n) => /^\d+_.*\.yaml$/.test(n))
  .sort();

Deno.test("the malformed-experiment corpus has at least 20 cases", () => {
  assert.ok(cases.length >= 20, `${cases.length} cases`);
});

for (const name of cases) {
  Deno.test(`malformed: ${name}`, async () => {
    await using sb = await sandbox();
    const header = (await Deno.readTextFile(join(BAD, name))).split("\n")[0];
    const m = header.match(/^# expect: (\d+):(\d+) (.+)$/);
    assert.ok(m, `${name} needs a '# expect: LINE:COL message' header`);
    const [, line, col, message] = m;
    const r = await kme(["run", join("tests/fixtures/bad", name), "--store", sb.store], ROOT);
    assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
    assert.ok(
      r.stderr.startsWith(`tests/fixtures/bad/${name}:${line}:${col}: error: `),
      `position: got ${r.stderr}`,
    );
    assert.ok(r.stderr.includes(message), `message: got ${r.stderr}`);
    assert.equal(r.stdout, "");
    await assert.rejects(Deno.stat(sb.store), Deno.errors.NotFound, "nothing may be written");
  });
}

Deno.test("every bad param is reported, downstream stages too, each with its line and a caret", async () => {
  await using sb = await sandbox();
  const f = await sb.write(
    "e.yaml",
    [
      "name: many",
      "stages:",
      "  a:",
      "    kind: $STAGES/text.ts",
      "    params: {sleep_ms: 1.5, lr: fast}",
      "  b:",
      "    kind: $STAGES/text.ts",
      "    inputs: {a: a}",
      "    params: {sleep_ms: -2}",
    ].join("\n") + "\n",
  );
  const r = await sb.run("run", f);
  assert.equal(r.code, 2, r.stderr);
  assert.equal(
    r.stderr,
    [
      `${f}:5:24: error: stages.a.params.sleep_ms: expected an integer, got 1.5`,
      " 5 |     params: {sleep_ms: 1.5, lr: fast}",
      "   |                        ^",
      `${f}:5:33: error: stages.a.params.lr: expected a number, got 'fast'`,
      " 5 |     params: {sleep_ms: 1.5, lr: fast}",
      "   |                                 ^",
      `${f}:9:24: error: stages.b.params.sleep_ms: must be >= 0, got -2`,
      " 9 |     params: {sleep_ms: -2}",
      "   |                        ^",
      "3 errors",
      "",
    ].join("\n"),
  );
  await assert.rejects(Deno.stat(sb.store), Deno.errors.NotFound, "nothing may be written");
});
