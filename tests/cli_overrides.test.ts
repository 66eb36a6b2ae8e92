/**
 * `-S path=value` overrides (issue 18): the same keys as a derived experiment file that sets the
 * same values, errors at the flag, relative paths against the experiment file, `null` removes.
 */
import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { lastRecord, sandbox, TEST_STAGES } from "./helpers/cli.ts";

const EXP = `
name: ov
stages:
  a: {kind: $STAGES/text.ts, params: {text: A, lr: 0.5, trace: $DIR/trace}}
  b: {kind: $STAGES/text.ts, inputs: {a: a}, params: {text: B}}
`;

Deno.test("-S gives the keys of a derived file; it is recorded; null restores the default", async () => {
  await using sb = await sandbox();
  const f = await sb.write("e.yaml", EXP);
  const r = await sb.run("run", f, "-S", "stages.a.params.lr=0.25", "--no-report");
  assert.equal(r.code, 0, r.stderr);
  const rec = await lastRecord(sb.store, "ov");
  assert.equal(rec.stages.a.params.lr, 0.25);
  assert.ok(rec.argv.includes("stages.a.params.lr=0.25"));
  // The derived file that sets the same value: everything cached.
  const d = await sb.write(
    "d.yaml",
    `name: ov\nextends: e.yaml\nstages:\n  a: {params: {lr: 0.25}}\n`,
  );
  const st = await sb.run("status", d);
  assert.match(st.stdout, /everything is cached/, st.stdout);
  // Without the override: the original value, a different key.
  assert.match((await sb.run("status", f)).stdout, /\ba\s+run\b/);
  // null removes the value: the kind's default (0.001).
  assert.equal((await sb.run("run", f, "-S", "stages.a.params.lr=null", "--no-report")).code, 0);
  assert.equal((await lastRecord(sb.store, "ov")).stages.a.params.lr, 0.001);
  // null where the file sets nothing (c has no params at all): nothing to remove, the default
  // stays (it was "expected a number, got null").
  const g = await sb.write("g.yaml", "name: ov2\nstages:\n  c: {kind: $STAGES/text.ts}\n");
  const none = await sb.run("run", g, "-S", "stages.c.params.lr=null", "--no-report");
  assert.equal(none.code, 0, none.stderr);
  assert.equal((await lastRecord(sb.store, "ov2")).stages.c.params.lr, 0.001);
});

Deno.test("-S errors point at the flag: bad value, unknown key, malformed", async () => {
  await using sb = await sandbox();
  const f = await sb.write("e.yaml", EXP);
  const cases: [string, RegExp][] = [
    [
      "stages.a.params.lr=abc",
      /^-S stages\.a\.params\.lr=abc:1:23: error: .*expected a number, got 'abc'/,
    ],
    [
      "stages.a.params.lrr=1",
      /^-S stages\.a\.params\.lrr=1:1:20: error: unknown param 'lrr'.*did you mean 'lr'/,
    ],
    ["stagez.a=1", /^-S stagez\.a=1:1:4: error: unknown key 'stagez' \(did you mean 'stages'\?\)/],
    ["nope", /^-S nope:1:4: error: expected -S PATH=VALUE/],
    ["stages.a.params.lr=[1,", /^-S stages\.a\.params\.lr=\[1,:1:\d+: error: invalid YAML/],
  ];
  for (const [flag, want] of cases) {
    const r = await sb.run("run", f, "-S", flag);
    assert.equal(r.code, 2, `${flag}: ${r.stdout}`);
    assert.match(r.stderr, want, flag);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
  assert.ok(!(await Deno.stat(join(sb.store, "runs")).then(() => true, () => false)));
});

Deno.test("-S values that are paths resolve against the experiment file, as in YAML", async () => {
  await using sb = await sandbox();
  const f = await sb.write("sub/e.yaml", EXP.replace("$STAGES/text.ts", "./nowhere.ts"));
  const rel = relative(join(sb.dir, "sub"), join(TEST_STAGES, "text.ts"));
  assert.equal((await sb.run("status", f)).code, 2, "the file's own kind does not exist");
  const r = await sb.run("run", f, "-S", `stages.a.kind=${rel}`, "--no-report");
  assert.equal(r.code, 0, r.stderr);
});
