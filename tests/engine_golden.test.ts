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
  // kme: 0.60, 0.63, 0.62; clip: 0.50, 0.51, 0.52.
  assert.ok(Math.abs(row.a - 1.85 / 3) < 1e-12 && Math.abs(row.b - 0.51) < 1e-12);
  assert.ok(Math.abs(row.aSd - Math.sqrt(7 / 3) / 100) < 1e-12);
  // Seeds paired: clip - kme = -0.10, -0.12, -0.10; t with 2 df (4.3027) on them.
  const half = (4.302652729749462 * (0.02 / Math.sqrt(3))) / Math.sqrt(3);
  assert.equal(row.seedCi.method, "t");
  assert.equal(row.seedCi.n, 3);
  assert.ok(Math.abs(row.seedCi.lo - (-0.32 / 3 - half)) < 1e-12, `${row.seedCi.lo}`);
  assert.ok(Math.abs(row.seedCi.hi - (-0.32 / 3 + half)) < 1e-12, `${row.seedCi.hi}`);
  assert.equal(row.significant, true);
  assert.equal(row.queryCi, undefined);
  // acc: per seed kme - clip = 10, 20, 10 points; the queries alone exclude 0, the seeds do not.
  const acc = json.rows.find((r: { name: string }) => r.name === "train.acc");
  assert.equal(acc.seedCi.method, "t+bootstrap");
  assert.ok(acc.seedCi.lo <= acc.seedCi.t[0] && acc.seedCi.hi >= acc.seedCi.bootstrap[1]);
  assert.ok(acc.seedCi.lo < 0 && acc.seedCi.hi > 0);
  assert.equal(acc.significant, false);
  assert.ok(acc.queryCi.hi < 0, `queries only ${acc.queryCi.lo} ${acc.queryCi.hi}`);
  assert.equal(acc.queryCi.n, 3);
  const bad = await sb.run("diff", f, "--by", "colour");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--by colour: need exactly two values/);

  // One seed per side: only the query interval, said so, and no `*`.
  const one = await sb.write(
    "one.yaml",
    `
name: one
stages:
  train:
    kind: $STAGES/score.ts
    matrix: {similarity: [clip, kme]}
`,
  );
  assert.equal((await sb.run("run", one)).code, 0);
  const d1 = await sb.run("diff", one, "--by", "similarity");
  assert.equal(d1.code, 0, d1.stderr);
  await golden("diff_by_one_seed.txt", normalise(d1.stdout, sb.dir));
});
