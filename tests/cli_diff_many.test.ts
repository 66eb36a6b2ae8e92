/**
 * `diff` over several runs, and the selectors that name runs: an experiment's name or file with
 * `:-N` (N-th latest) or `:ID` (id prefix).
 */
import assert from "node:assert/strict";
import { sandbox } from "./helpers/cli.ts";

const EXP = "name: many\nstages:\n  a: {kind: $STAGES/text.ts, params: {text: A}}\n";

Deno.test("diff A B C: every run against the first, one table; selectors by name and index", async () => {
  await using sb = await sandbox();
  const f = await sb.write("e.yaml", EXP);
  for (const lr of ["0.001", "0.01", "0.1"]) {
    const r = await sb.run("run", f, "--no-report", "-S", `stages.a.params.lr=${lr}`);
    assert.equal(r.code, 0, r.stderr);
  }
  const t = await sb.run("diff", "many:-3", `${f}:-2`, "many");
  assert.equal(t.code, 0, t.stderr);
  const lines = t.stdout.split("\n");
  assert.match(lines[0], /^\s+A\s+B\s+B - A\s+C\s+C - A$/);
  // The param and the metric that follows it, each with both changes from A.
  assert.match(t.stdout, /lr\s+0\.001\s+0\.01\s+\+0\.009\s+0\.1\s+\+0\.099/);
  assert.match(t.stdout, /params[\s\S]*metrics/);
  const md = await sb.run("diff", "many:-3", "many:-2", "many:-1", "--md");
  assert.match(
    md.stdout,
    /^\| \| A: many\/\S+ \| B: many\/\S+ \| B - A \| C: many\/\S+ \| C - A \|/,
  );
  const json = JSON.parse((await sb.run("diff", "many:-3", "many:-2", "many", "--json")).stdout);
  assert.equal(json.others.length, 2);
  // --metric keeps only the metrics it names (by name, stage.name or a * pattern); params stay.
  // The test stage's metrics are `length` and `lr` (the param `lr` is a row too).
  const count = (text: string, re: RegExp) => text.split("\n").filter((l) => re.test(l)).length;
  const all = await sb.run("diff", "many:-3", "many", "--all");
  assert.equal(count(all.stdout, /^\s*a\.lr\s/), 2, all.stdout);
  assert.equal(count(all.stdout, /^\s*a\.length\s/), 1, all.stdout);
  for (const sel of ["length", "a.length", "len*"]) {
    const r = await sb.run("diff", "many:-3", "many", "--all", "--metric", sel);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(count(r.stdout, /^\s*a\.length\s/), 1, `${sel}: ${r.stdout}`);
    assert.equal(count(r.stdout, /^\s*a\.lr\s/), 1, `${sel}: the param row stays, the metric goes`);
  }
  const both = await sb.run("diff", "many:-3", "many", "--all", "--metric", "length,a.lr");
  assert.equal(count(both.stdout, /^\s*a\.lr\s/), 2, both.stdout);
  const typo = await sb.run("diff", "many:-3", "many", "--metric", "lenght");
  assert.equal(typo.code, 2);
  assert.match(
    typo.stderr,
    /--metric lenght: no metric of these runs is called that \(did you mean 'length'\?\)/,
  );
  assert.match(typo.stderr, /metrics: length, lr/);

  // A selector past the runs there are, or naming nothing, is a clear error.
  const past = await sb.run("diff", "many:-4", "many");
  assert.equal(past.code, 2);
  assert.match(past.stderr, /many:-4: 'many' has 3 runs \(use -1 \.\. -3\)/);
  const up = await sb.run("diff", "../store/runs:-1", "many");
  assert.equal(up.code, 2);
  assert.match(up.stderr, /is no experiment with runs/);
  const none = await sb.run("diff", "nope:-1", "many");
  assert.equal(none.code, 2);
  assert.match(none.stderr, /'nope' is no experiment with runs/);
});
