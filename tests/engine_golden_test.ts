/**
 * Done-when 6 of the engine: `status` and `diff` output, compared with golden files in
 * tests/golden/. Regenerate after an intended change with UPDATE_GOLDEN=1 deno task test.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, sandbox } from "./helpers/cli.ts";

const BASE = `
name: base
stages:
  data: {kind: $STAGES/text.ts, params: {text: data}}
  train:
    kind: $STAGES/text.ts
    inputs: {a: data}
    params: {text: model, lr: 0.001}
  eval: {kind: $STAGES/text.ts, inputs: {a: train}, params: {text: "-eval"}}
  extra: {kind: $STAGES/text.ts, params: {text: x}}
`;
const VARIANT = `
name: variant
extends: base.yaml
stages:
  train:
    params: {lr: 0.0005, text: model2}
  extra: null
`;

/**
 * Paths, run ids and keys vary between machines and clones; so does the column width they
 * induce, so runs of spaces are collapsed (the golden files check content and order).
 */
function normalise(text: string, dir: string): string {
  return text.replaceAll(dir, "<DIR>").replaceAll(ROOT, "<ROOT>").replace(/ {2,}/g, "  ")
    .replace(/\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6}/g, "<run-id>")
    .replace(/\b[0-9a-f]{12}\b/g, "<key>");
}

async function golden(name: string, actual: string) {
  const path = join(ROOT, "tests", "golden", name);
  if (Deno.env.get("UPDATE_GOLDEN")) await Deno.writeTextFile(path, actual);
  assert.equal(actual, await Deno.readTextFile(path), `golden file ${name}`);
}

Deno.test("status and diff outputs match the golden files", async () => {
  await using sb = await sandbox();
  const base = await sb.write("base.yaml", BASE);
  const variant = await sb.write("variant.yaml", VARIANT);
  assert.equal((await sb.run("run", base)).code, 0);

  const st0 = await sb.run("status", base);
  await golden("status_cached.txt", normalise(st0.stdout, sb.dir));

  await sb.write(
    "base.yaml",
    BASE.replace("lr: 0.001}", "lr: 0.002}").replace('"-eval"', '"-eval2"'),
  );
  const st1 = await sb.run("status", base);
  await golden("status_changed.txt", normalise(st1.stdout, sb.dir));
  await sb.write("base.yaml", BASE);

  const st2 = await sb.run("status", variant);
  await golden("status_variant.txt", normalise(st2.stdout, sb.dir));

  assert.equal((await sb.run("run", variant)).code, 0);
  const d = await sb.run("diff", base, variant);
  assert.equal(d.code, 0, d.stderr);
  await golden("diff.txt", normalise(d.stdout, sb.dir));
  const md = await sb.run("diff", base, variant, "--md");
  await golden("diff.md", normalise(md.stdout, sb.dir));
  const all = await sb.run("diff", base, variant, "--all");
  await golden("diff_all.txt", normalise(all.stdout, sb.dir));
  const json = JSON.parse((await sb.run("diff", base, variant, "--json")).stdout);
  assert.deepEqual(json.rows.find((r: { name: string }) => r.name === "train.lr"), {
    section: "params",
    name: "train.lr",
    a: 0.001,
    b: 0.0005,
    delta: -0.0005,
    rel: -0.5,
  });
});

Deno.test("diff --by compares two values of a swept axis, aggregating seeds", async () => {
  await using sb = await sandbox();
  const f = await sb.write(
    "sweep.yaml",
    `
name: sweep
stages:
  data: {kind: $STAGES/text.ts, params: {text: d}}
  train:
    kind: $STAGES/score.ts
    inputs: {data: data}
    matrix: {similarity: [clip, kme], seed: [0, 1, 2]}
`,
  );
  assert.equal((await sb.run("run", f)).code, 0);
  const d = await sb.run("diff", f, "--by", "similarity");
  assert.equal(d.code, 0, d.stderr);
  await golden("diff_by.txt", normalise(d.stdout, sb.dir));
  const json = JSON.parse(
    (await sb.run("diff", f, "--by", "similarity=kme,clip", "--json")).stdout,
  );
  const row = json.rows.find((r: { name: string }) => r.name === "train.score");
  assert.equal(row.aN, 3);
  assert.ok(Math.abs(row.a - 0.61) < 1e-12 && Math.abs(row.b - 0.51) < 1e-12);
  assert.ok(Math.abs(row.aSd - 0.01) < 1e-12);
  const bad = await sb.run("diff", f, "--by", "colour");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--by colour: need exactly two values/);
});
