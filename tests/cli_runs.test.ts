/** `kme runs`: the table of runs with differing params, metrics, no-op reruns marked. */
import assert from "node:assert/strict";
import { sandbox } from "./helpers/cli.ts";

const exp = (text: string) => `
name: tbl
stages:
  a: {kind: $STAGES/text.ts, params: {text: ${text}, lr: 0.5}}
  b: {kind: $STAGES/text.ts, inputs: {a: a}, params: {text: B}}
`;

Deno.test("runs: one row per run, no-op reruns marked, only the params that differ", async () => {
  await using sb = await sandbox();
  const f = await sb.write("e.yaml", exp("A"));
  for (const text of ["A", "A", "AAAA"]) {
    await sb.write("e.yaml", exp(text));
    assert.equal((await sb.run("run", f, "--no-report")).code, 0);
  }
  const r = await sb.run("runs", f, "--metric", "b.length", "--metric", "a.lr");
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split("\n");
  assert.equal(lines.length, 4, r.stdout);
  assert.match(
    lines[0],
    /^run\s+started\s+time\s+status\s+stages ran\/cached\/failed\s+a\.text\s+b\.length\s+a\.lr$/,
  );
  assert.match(lines[1], /\bok\s+2\/0\/0\s+"A"\s+2\s+0\.5$/);
  assert.match(lines[2], /\bok \(no-op\)\s+0\/2\/0\s+"A"\s+2\s+0\.5$/);
  assert.match(lines[3], /\bok\s+2\/0\/0\s+"AAAA"\s+5\s+0\.5$/);

  const j = JSON.parse((await sb.run("runs", "tbl", "--json", "--no-noop")).stdout);
  assert.deepEqual(j.runs.map((x: { work: string }) => x.work), ["ran", "ran"]);
  assert.deepEqual(j.differing_params, ["a.text"]);

  const csv = (await sb.run("runs", "tbl", "--csv", "--metric", "b.length", "--sort=-b.length"))
    .stdout.trim().split("\n");
  assert.match(csv[0], /^run,started,time,status,stages ran\/cached\/failed,a\.text,b\.length$/);
  assert.match(csv[1], /,"""AAAA""",5$/);

  const bad = await sb.run("runs", "nothing-here");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^error: no runs of 'nothing-here'/);
  const badSort = await sb.run("runs", "tbl", "--sort", "nope");
  assert.equal(badSort.code, 2);
  assert.match(badSort.stderr, /--sort nope: not a column/);
  // The header's own name sorts too.
  assert.equal((await sb.run("runs", "tbl", "--sort=-time")).code, 0);
  // A metric no run has is an error with a suggestion, not a silently missing column.
  const typo = await sb.run("runs", "tbl", "--metric", "b.lenght");
  assert.equal(typo.code, 2);
  assert.match(
    typo.stderr,
    /--metric b\.lenght: no run here has it \(did you mean 'b\.length'\?\)/,
  );
});

Deno.test("runs: a swept stage's configurations are columns of their own, params one column", async () => {
  await using sb = await sandbox();
  const f = await sb.write(
    "s.yaml",
    `name: sw
stages:
  a:
    kind: $STAGES/text.ts
    params: {text: xy}
    matrix: {lr: [0.1, 0.2], seed: [0, 1]}
`,
  );
  assert.equal((await sb.run("run", f, "--no-report")).code, 0);
  const j = JSON.parse((await sb.run("runs", "sw", "--json", "--metric", "a.lr")).stdout);
  // One column per configuration (lr), the mean over its seeds; never lr 0.1 and 0.2 averaged.
  assert.deepEqual(j.metric_columns, ["a[lr=0.1].lr", "a[lr=0.2].lr"]);
  assert.deepEqual(j.runs[0].metrics, { "a[lr=0.1].lr": 0.1, "a[lr=0.2].lr": 0.2 });
  // Params by stage, typed: the sweep's values as a list.
  assert.deepEqual(j.runs[0].params["a.lr"], [0.1, 0.2]);
  assert.equal(j.runs[0].params["a.text"], "xy");
  const t = await sb.run("runs", "sw", "--metric", "a[lr=0.2].lr");
  assert.match(t.stdout.split("\n")[0], /a\[lr=0\.2\]\.lr$/);
});
