/** Done-when 1 of the engine: what reruns and what does not. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { lastRecord, sandbox, TEST_STAGES } from "./helpers/cli.ts";

const EXP = `
name: cache
stages:
  a:
    kind: $STAGES/text.ts
    params: {text: "A", trace: $DIR/trace}
  b:
    kind: $STAGES/text.ts
    params: {text: "B", trace: $DIR/trace}
  c:
    kind: $STAGES/text.ts
    inputs: {a: a}
    params: {text: "C", trace: $DIR/trace}
  d:
    kind: $STAGES/text.ts
    inputs: {a: c, b: b}
    params: {text: "D", trace: $DIR/trace}
`;

function outcomes(stdout: string): Record<string, string> {
  const table: Record<string, string> = {};
  for (
    const m of stdout.matchAll(
      /^ {2}([\w[\]=,.-]+)\s+(ran|cached|reused|failed|not-run|interrupted)\b/gm,
    )
  ) {
    table[m[1]] = m[2];
  }
  return table;
}

Deno.test("second run of an unchanged experiment executes nothing", async () => {
  await using sb = await sandbox();
  const f = await sb.write("exp.yaml", EXP);
  const first = await sb.run("run", f);
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual(await sb.trace("trace"), ["A", "B", "C", "D"]);
  const second = await sb.run("run", f);
  assert.equal(second.code, 0, second.stderr);
  assert.deepEqual(outcomes(second.stdout), { a: "cached", b: "cached", c: "cached", d: "cached" });
  assert.equal((await sb.trace("trace")).length, 4);
  const d = await Deno.readTextFile(
    join(sb.store, "entries", (await lastRecord(sb.store, "cache")).stages.d.key, "out/text.txt"),
  );
  assert.equal(d, "ACBD");
});

Deno.test("editing one stage's params reruns it and its downstream only", async () => {
  await using sb = await sandbox();
  const f = await sb.write("exp.yaml", EXP);
  assert.equal((await sb.run("run", f)).code, 0);
  await sb.write("exp.yaml", EXP.replace('text: "C"', 'text: "C2"'));
  const r = await sb.run("run", f);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(outcomes(r.stdout), { a: "cached", b: "cached", c: "ran", d: "ran" });
  assert.deepEqual((await sb.trace("trace")).slice(4), ["C2", "D"]);
});

Deno.test("an upstream rerun that yields identical bytes does not rerun downstream", async () => {
  await using sb = await sandbox();
  const f = await sb.write("exp.yaml", EXP);
  assert.equal((await sb.run("run", f)).code, 0);
  // lr only reaches a's metrics, not its output file: a reruns, c and d do not.
  await sb.write("exp.yaml", EXP.replace('params: {text: "A",', 'params: {lr: 0.5, text: "A",'));
  const r = await sb.run("run", f);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(outcomes(r.stdout), { a: "ran", b: "cached", c: "cached", d: "cached" });
});

Deno.test("editing a comment in a module reruns exactly the stages whose code imports it", async () => {
  await using sb = await sandbox();
  const stageUrl = new URL("../pipeline/stage.ts", import.meta.url).href;
  const stage = (imp: string) => `
import { z } from "zod";
import { join } from "node:path";
import { defineStage } from "${stageUrl}";
${imp}
export default defineStage({
  kind: "test/mod",
  description: "",
  params: z.strictObject({ trace: z.string(), name: z.string() }),
  inputs: { up: { description: "", optional: true } },
  async run(ctx) {
    await Deno.writeTextFile(ctx.params.trace, ctx.params.name + "\\n", { append: true });
    await Deno.writeTextFile(join(ctx.outDir, "x"), ctx.params.name);
  },
});`;
  await sb.write("mods/helper.ts", "// helper v1\nexport const h = 1;\n");
  await sb.write("mods/deep.ts", 'export { h } from "./helper.ts";\n');
  await sb.write("mods/uses.ts", stage('import { h } from "./deep.ts"; void h;'));
  await sb.write("mods/lazy.ts", stage('export const later = () => import("./helper.ts");'));
  await sb.write("mods/plain.ts", stage(""));
  await sb.write("mods/typeonly.ts", stage('import type { h } from "./helper.ts";'));
  const f = await sb.write(
    "exp.yaml",
    `
name: code
stages:
  uses: {kind: ./mods/uses.ts, params: {trace: $DIR/trace, name: uses}}
  lazy: {kind: ./mods/lazy.ts, params: {trace: $DIR/trace, name: lazy}}
  plain: {kind: ./mods/plain.ts, params: {trace: $DIR/trace, name: plain}}
  typeonly: {kind: ./mods/typeonly.ts, params: {trace: $DIR/trace, name: typeonly}}
`,
  );
  assert.equal((await sb.run("run", f)).code, 0);
  assert.equal((await sb.trace("trace")).length, 4);
  await sb.write(
    "mods/helper.ts",
    "// helper v2: only this comment changed\nexport const h = 1;\n",
  );
  const st = await sb.run("status", f);
  assert.match(st.stdout, /uses\s+run\s+code: \.\.\/.*mods\/helper\.ts/);
  const r = await sb.run("run", f);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(outcomes(r.stdout), {
    uses: "ran",
    lazy: "ran",
    plain: "cached",
    typeonly: "cached",
  });
});

Deno.test("--force, --dry-run and targets", async () => {
  await using sb = await sandbox();
  const f = await sb.write("exp.yaml", EXP);
  const only = await sb.run("run", f, "c");
  assert.equal(only.code, 0, only.stderr);
  assert.deepEqual(await sb.trace("trace"), ["A", "C"]);
  const dry = await sb.run("run", f, "--dry-run");
  assert.match(dry.stdout, /b\s+run\s+never run/);
  assert.match(dry.stdout, /d\s+waits\s+on b/);
  assert.deepEqual(await sb.trace("trace"), ["A", "C"]);
  const forced = await sb.run("run", f, "--force", "a");
  assert.equal(forced.code, 0, forced.stderr);
  // a reruns with identical output, so c stays cached; b and d run for the first time.
  assert.deepEqual(outcomes(forced.stdout), { a: "ran", b: "ran", c: "cached", d: "ran" });
});

Deno.test("independent stages run concurrently with --jobs 2", async () => {
  await using sb = await sandbox();
  const f = await sb.write(
    "exp.yaml",
    `
stages:
  x: {kind: $STAGES/counter.ts, params: {steps: 6, step_ms: 150, trace: $DIR/x}}
  y: {kind: $STAGES/text.ts, params: {text: Y, trace: $DIR/y, sleep_ms: 10}}
`,
  );
  // y is started while x is still running: x's trace is incomplete when y's line appears.
  const r = await sb.run("run", f, "--jobs", "2");
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split("\n");
  const yDone = lines.findIndex((l) => l.startsWith("✓ y"));
  const xDone = lines.findIndex((l) => l.startsWith("✓ x"));
  assert.ok(yDone >= 0 && xDone > yDone, r.stdout);
});

Deno.test("a failing stage exits 1, names its log, keeps published entries", async () => {
  await using sb = await sandbox();
  const f = await sb.write(
    "exp.yaml",
    `
stages:
  ok: {kind: $STAGES/text.ts, params: {text: fine}}
  bad: {kind: $STAGES/text.ts, inputs: {a: ok}, params: {fail: true}}
  after: {kind: $STAGES/text.ts, inputs: {a: bad}}
`,
  );
  const r = await sb.run("run", f);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /stage 'bad' failed: asked to fail/);
  const log = r.stderr.match(/log: (\S+)/)?.[1];
  assert.ok(log, r.stderr);
  assert.match(await Deno.readTextFile(log), /asked to fail/);
  assert.deepEqual(outcomes(r.stdout), { ok: "ran", bad: "failed", after: "not-run" });
  const again = await sb.run("run", f);
  assert.deepEqual(outcomes(again.stdout).ok, "cached");
});

Deno.test("a stage's bad input or bad setup exits 2 with its message and no stack; a bug exits 1 with the stack in the log", async () => {
  for (
    const [param, code, message] of [
      ["bad_input", 2, /data file corrupt: \/nowhere\/x\.idx/],
      ["bad_setup", 2, /the machine cannot do this: set backend: wasm/],
      ["fail", 1, /asked to fail/],
    ] as const
  ) {
    await using sb = await sandbox();
    const f = await sb.write(
      "exp.yaml",
      `stages:\n  a: {kind: $STAGES/text.ts, params: {${param}: true}}\n`,
    );
    const r = await sb.run("run", f);
    assert.equal(r.code, code, `${param}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /\n\s+at /, `${param}: no stack trace on the console`);
    const log = r.stderr.match(/log: (\S+)/)?.[1];
    if (code === 1) {
      assert.ok(log, r.stderr);
      assert.match(
        await Deno.readTextFile(log),
        /asked to fail\n\s+at /,
        "the bug's stack is in the log",
      );
    }
  }
});

Deno.test("a matrix sweeps a stage and fans out downstream; shared upstream runs once", async () => {
  await using sb = await sandbox();
  const f = await sb.write(
    "exp.yaml",
    `
name: sweep
stages:
  data: {kind: $STAGES/text.ts, params: {text: D, trace: $DIR/data}}
  train:
    kind: $STAGES/text.ts
    inputs: {a: data}
    params: {trace: $DIR/train}
    matrix: {text: [clip, kme], seed: [0, 1]}
  eval: {kind: $STAGES/text.ts, inputs: {a: train}, params: {text: "-e"}}
`,
  );
  const r = await sb.run("run", f);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await sb.trace("data"), ["D"]);
  assert.deepEqual((await sb.trace("train")).sort(), ["clip", "clip", "kme", "kme"]);
  const rec = await lastRecord(sb.store, "sweep");
  assert.deepEqual(Object.keys(rec.stages), [
    "data",
    "train[text=clip,seed=0]",
    "train[text=clip,seed=1]",
    "train[text=kme,seed=0]",
    "train[text=kme,seed=1]",
    "eval[text=clip,seed=0]",
    "eval[text=clip,seed=1]",
    "eval[text=kme,seed=0]",
    "eval[text=kme,seed=1]",
  ]);
  const e = rec.stages["eval[text=kme,seed=1]"];
  assert.equal(e.base, "eval");
  assert.deepEqual(e.labels, { text: "kme", seed: 1 });
  assert.equal(rec.stages["train[text=kme,seed=1]"].seed, 1);
  assert.equal(e.metrics.length, "Dkme-e".length);
  // Targets and --force may name a swept stage as a whole.
  const only = await sb.run("run", f, "train", "--force", "train");
  assert.equal(only.code, 0, only.stderr);
  const o = outcomes(only.stdout);
  assert.equal(Object.keys(o).filter((n) => n.startsWith("eval")).length, 0);
  assert.deepEqual(Object.entries(o).filter(([, v]) => v === "ran").map(([n]) => n).sort(), [
    "train[text=clip,seed=0]",
    "train[text=clip,seed=1]",
    "train[text=kme,seed=0]",
    "train[text=kme,seed=1]",
  ]);
});

Deno.test("matrix.exclude drops combinations, also by an upstream axis; a typo in it exits 2", async () => {
  await using sb = await sandbox();
  const exp = (exclude: string) => `
name: trim
stages:
  data: {kind: $STAGES/text.ts, params: {text: D}, matrix: {seed: [0, 1]}}
  train:
    kind: $STAGES/text.ts
    inputs: {a: data}
    matrix:
      text: [clip, kme, wpse]
      exclude:
${exclude}
`;
  const f = await sb.write(
    "exp.yaml",
    exp("        - {seed: 1, text: [kme, wpse]}\n        - {text: wpse, seed: 0}"),
  );
  const r = await sb.run("run", f);
  assert.equal(r.code, 0, r.stderr);
  const rec = await lastRecord(sb.store, "trim");
  assert.deepEqual(Object.keys(rec.stages).filter((n) => n.startsWith("train")), [
    "train[seed=0,text=clip]",
    "train[seed=0,text=kme]",
    "train[seed=1,text=clip]",
  ]);
  // An axis that is not one, and an entry that drops nothing, point at the entry.
  await sb.write("exp.yaml", exp("        - {sed: 1}"));
  const typo = await sb.run("run", f);
  assert.equal(typo.code, 2);
  assert.match(
    typo.stderr,
    /exp\.yaml:11:12: error: 'sed' is not a matrix axis .*did you mean 'seed'/,
  );
  await sb.write("exp.yaml", exp("        - {text: kmee}"));
  const none = await sb.run("run", f);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /exp\.yaml:11:\d+: error: this exclude entry matches no instance/);
  assert.doesNotMatch(typo.stderr + none.stderr, /\n\s+at /);
});

Deno.test("the cached plan is dropped when the file, a base file or a stage's code changes", async () => {
  await using sb = await sandbox();
  await sb.write("base.yaml", `stages:\n  a: {kind: $STAGES/text.ts, params: {text: base}}\n`);
  const f = await sb.write("exp.yaml", `name: p\nextends: base.yaml\n`);
  assert.equal((await sb.run("run", f)).code, 0);
  assert.equal([...Deno.readDirSync(join(sb.store, "plans"))].length, 1);
  await sb.write("base.yaml", `stages:\n  a: {kind: $STAGES/text.ts, params: {text: changed}}\n`);
  assert.match((await sb.run("run", f)).stdout, /a\s+ran/);
  await sb.write("base.yaml", `stages:\n  a: {kind: $STAGES/text.ts, params: {txt: broken}}\n`);
  const bad = await sb.run("run", f);
  assert.equal(bad.code, 2);
  const line = `  a: {kind: ${TEST_STAGES}/text.ts, params: {txt: broken}}`;
  assert.ok(
    bad.stderr.startsWith(`base.yaml:2:${line.indexOf("txt") + 1}: error: unknown param 'txt'`),
    bad.stderr,
  );
});

Deno.test("a facet read from a KME_* variable is not hidden by the cached plan", async () => {
  await using sb = await sandbox();
  const f = await sb.write("exp.yaml", `name: envf\nstages:\n  e: {kind: $STAGES/env_facet.ts}\n`);
  assert.equal((await sb.run("run", f)).code, 0);
  assert.match((await sb.run("run", f)).stdout, /e\s+cached/);
  const r = await sb.runEnv({ KME_TEST_FLAVOUR: "salty" }, "run", f);
  assert.match(r.stdout, /e\s+ran/, r.stdout);
  const key = (await lastRecord(sb.store, "envf")).stages.e.key;
  assert.equal(await Deno.readTextFile(join(sb.store, "entries", key, "out/flavour.txt")), "salty");
});

Deno.test("a facet that looks for a library sees it installed, despite the cached plan", async () => {
  await using sb = await sandbox();
  const lib = await Deno.makeTempDir({ prefix: "kme-libdir-" });
  try {
    const env = { LD_LIBRARY_PATH: lib };
    const f = await sb.write(
      "exp.yaml",
      `name: envl\nstages:\n  e: {kind: $STAGES/env_facet.ts}\n`,
    );
    assert.equal((await sb.runEnv(env, "run", f)).code, 0);
    assert.match((await sb.runEnv(env, "run", f)).stdout, /e\s+cached/);
    await Deno.writeFile(join(lib, "libkmefake.so"), new Uint8Array(8)); // "apt-get install"
    const r = await sb.runEnv(env, "run", f);
    assert.match(r.stdout, /e\s+ran/, r.stdout);
    const key = (await lastRecord(sb.store, "envl")).stages.e.key;
    assert.equal(
      await Deno.readTextFile(join(sb.store, "entries", key, "out/library.txt")),
      "found",
    );
  } finally {
    await Deno.remove(lib, { recursive: true });
  }
});

Deno.test("a stage that stays silent gets one warning naming its log", async () => {
  await using sb = await sandbox();
  const f = await sb.write(
    "exp.yaml",
    `stages:\n  quiet: {kind: $STAGES/text.ts, params: {sleep_ms: 2500}}\n`,
  );
  const r = await sb.runEnv({ KME_STALL_WARN_SECONDS: "1" }, "run", f);
  assert.equal(r.code, 0, r.stderr);
  const warnings = r.stderr.split("\n").filter((l) => l.includes("quiet: no output for"));
  assert.equal(warnings.length, 1, r.stderr);
  assert.match(warnings[0], /log: .*scratch\/[0-9a-f]+\/log\.txt/);
});
