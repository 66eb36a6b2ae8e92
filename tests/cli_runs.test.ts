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
});
