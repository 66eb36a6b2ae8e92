/**
 * Code modules named by a stage's params (plugins, `Stage.modules`): resolved against the file
 * that set the param, part of the stage's code fingerprint (and of the plan cache's check),
 * validated by `refineParams`, refused when the scanner cannot see what they load.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { hashJson } from "../pipeline/canonical.ts";
import { ProjectResolver } from "../pipeline/fingerprint.ts";
import { lastRecord, ROOT, type Sandbox, sandbox } from "./helpers/cli.ts";

const PLUGIN = `import { z } from "zod";
import { shout } from "./helper.ts";

export const params = z.strictObject({
  times: z.int().min(1).default(2),
  word: z.string().default("hi"),
});

export default (p: Record<string, unknown>) => shout(String(p.word)).repeat(Number(p.times));
`;
const HELPER = `export const shout = (s: string) => s.toUpperCase() + "!";\n`;

const EXP = `name: plug
stages:
  p:
    kind: $STAGES/plugin.ts
    params:
      plugin: ./sims/upper.ts
      trace: $DIR/trace
`;

/** exp/exp.yaml with exp/sims/{upper,helper,other}.ts: the plugin is relative to exp/. */
async function setup(sb: Sandbox, exp = EXP): Promise<string> {
  await sb.write("exp/sims/upper.ts", PLUGIN);
  await sb.write("exp/sims/helper.ts", HELPER);
  await sb.write("exp/sims/other.ts", "export const unrelated = 1;\n");
  return await sb.write("exp/exp.yaml", exp);
}

function outcomes(stdout: string): Record<string, string> {
  const table: Record<string, string> = {};
  for (const m of stdout.matchAll(/^ {2}([\w[\]=,./-]+)\s+(ran|cached|failed|not-run)\b/gm)) {
    table[m[1]] = m[2];
  }
  return table;
}

async function output(sb: Sandbox, experiment: string, stage: string, file: string) {
  const key = (await lastRecord(sb.store, experiment)).stages[stage].key;
  return await Deno.readTextFile(join(sb.store, "entries", key, "out", file));
}

/** stderr is one `file:line:col: error: ...` line: no stack trace, nothing else. */
function assertOneError(stderr: string, prefix: string, message: string | RegExp) {
  // One error: one headline (its source excerpt, indented, may follow).
  const lines = stderr.trimEnd().split("\n").filter((l) => !l.startsWith(" "));
  assert.equal(lines.length, 1, stderr);
  assert.ok(lines[0].startsWith(`${prefix}: error: `), `position: got ${stderr}`);
  if (typeof message === "string") assert.ok(lines[0].includes(message), stderr);
  else assert.match(lines[0], message);
}

/** Line and column (1-based) of `needle` in `text`. */
function where(text: string, needle: string): string {
  const i = text.indexOf(needle);
  assert.ok(i >= 0, needle);
  const before = text.slice(0, i).split("\n");
  return `${before.length}:${before.at(-1)!.length + 1}`;
}

async function assertNothingWritten(store: string) {
  const entries = await Array.fromAsync(Deno.readDir(join(store, "entries"))).catch(() => []);
  assert.deepEqual(entries, [], "no entry may be written");
}

Deno.test("a plugin named relative to the experiment file runs, with its digest and defaults", async () => {
  await using sb = await sandbox();
  const f = await setup(sb);
  const r = await sb.run("run", f);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await output(sb, "plug", "p", "result.txt"), "HI!HI!");
  const plugin = join(sb.dir, "exp", "sims", "upper.ts");
  const recorded = JSON.parse(await output(sb, "plug", "p", "plugin.json"));
  const fp = await (await ProjectResolver.load(ROOT)).fingerprint(plugin);
  assert.deepEqual(recorded, { path: plugin, digest: await hashJson(fp) });
  assert.ok(Object.keys(fp.files).some((k) => k.endsWith("exp/sims/helper.ts")), "helper");
  assert.ok(Object.keys(fp.npm).some((k) => k.startsWith("zod@")), "npm package");
  const rec = (await lastRecord(sb.store, "plug")).stages.p;
  // The plugin's param defaults are part of the resolved params (and so of the key).
  assert.deepEqual(rec.params.plugin_params, { times: 2, word: "hi" });
  const files = Object.keys(rec.components.code.files);
  for (const name of ["tests/stages/plugin.ts", "exp/sims/upper.ts", "exp/sims/helper.ts"]) {
    assert.ok(files.some((k) => k.endsWith(name)), `${name} in ${files}`);
  }
  assert.ok(!files.some((k) => k.endsWith("exp/sims/other.ts")));
});

Deno.test("editing a plugin or a helper it imports reruns the stage; an unrelated file does not", async () => {
  await using sb = await sandbox();
  const f = await setup(sb);
  assert.equal((await sb.run("run", f)).code, 0);
  const again = await sb.run("run", f);
  assert.deepEqual(outcomes(again.stdout), { p: "cached" });

  await sb.write("exp/sims/upper.ts", PLUGIN.replace(".repeat(", ".padStart(9, '*').repeat("));
  const st = await sb.run("status", f);
  assert.equal(st.code, 0, st.stderr);
  assert.match(st.stdout, /p\s+run\s+code: \S*exp\/sims\/upper\.ts\n/);
  assert.doesNotMatch(st.stdout, /helper\.ts/);
  const edited = await sb.run("run", f);
  assert.deepEqual(outcomes(edited.stdout), { p: "ran" });
  assert.equal(await output(sb, "plug", "p", "result.txt"), "******HI!******HI!");

  await sb.write("exp/sims/helper.ts", HELPER.replace('"!"', '"?"'));
  assert.match((await sb.run("status", f)).stdout, /p\s+run\s+code: \S*exp\/sims\/helper\.ts\n/);
  assert.deepEqual(outcomes((await sb.run("run", f)).stdout), { p: "ran" });

  await sb.write("exp/sims/other.ts", "export const unrelated = 2;\n");
  assert.deepEqual(outcomes((await sb.run("run", f)).stdout), { p: "cached" });
  assert.equal((await sb.trace("trace")).length, 3);
});

Deno.test("the cached plan is dropped when a plugin changes: its new defaults apply", async () => {
  await using sb = await sandbox();
  const f = await setup(sb);
  assert.equal((await sb.run("run", f)).code, 0);
  assert.equal([...Deno.readDirSync(join(sb.store, "plans"))].length, 1);
  await sb.write("exp/sims/upper.ts", PLUGIN.replace("default(2)", "default(3)"));
  const r = await sb.run("run", f);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(outcomes(r.stdout), { p: "ran" });
  assert.equal(await output(sb, "plug", "p", "result.txt"), "HI!HI!HI!");
  const rec = (await lastRecord(sb.store, "plug")).stages.p;
  assert.deepEqual(rec.params.plugin_params, { times: 3, word: "hi" });
  assert.deepEqual(outcomes((await sb.run("run", f)).stdout), { p: "cached" });
});

Deno.test("a plugin set by defaults: in a base file, or swept by a matrix, resolves against that file", async () => {
  await using sb = await sandbox();
  await sb.write("base/sims/low.ts", 'export default () => "low";\n');
  await sb.write("exp/sims/a.ts", 'export default () => "a";\n');
  await sb.write("exp/sims/b.ts", 'export default () => "b";\n');
  await sb.write(
    "base/base.yaml",
    `name: base\ndefaults:\n  all: {plugin: ./sims/low.ts}\nstages:\n  d: {kind: $STAGES/plugin.ts}\n`,
  );
  const f = await sb.write(
    "exp/derived.yaml",
    `name: derived
extends: ../base/base.yaml
stages:
  m:
    kind: $STAGES/plugin.ts
    matrix: {plugin: [./sims/a.ts, ./sims/b.ts]}
`,
  );
  const r = await sb.run("run", f);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await output(sb, "derived", "d", "result.txt"), "low");
  assert.equal(await output(sb, "derived", "m[plugin=./sims/a.ts]", "result.txt"), "a");
  assert.equal(await output(sb, "derived", "m[plugin=./sims/b.ts]", "result.txt"), "b");
});

Deno.test("a plugin that does not exist: exit 2 at the param, nothing written", async () => {
  await using sb = await sandbox();
  const exp = EXP.replace("./sims/upper.ts", "./sims/nope.ts");
  const f = await setup(sb, exp);
  const r = await sb.run("run", f);
  assert.equal(r.code, 2, r.stderr);
  assertOneError(
    r.stderr,
    `${f}:${where(exp, "./sims/nope.ts")}`,
    `stage 'p': module './sims/nope.ts' (param 'plugin') not found ` +
      `(looked at ${join(sb.dir, "exp", "sims", "nope.ts")})`,
  );
  assert.equal(r.stdout, "");
  await assertNothingWritten(sb.store);
  assert.equal((await sb.run("status", f)).code, 2);
});

Deno.test("a plugin whose import the scanner cannot follow is refused at its line", async () => {
  await using sb = await sandbox();
  const f = await setup(sb);
  const dynamic = `export default () => "x";\n` +
    `export const later = (name: string) => import(name);\n`;
  await sb.write("exp/sims/upper.ts", dynamic);
  const r = await sb.run("run", f);
  assert.equal(r.code, 2, r.stderr);
  assertOneError(
    r.stderr,
    `exp/sims/upper.ts:${where(dynamic, "import(name)")}`,
    "dynamic import with a computed specifier: the cache key cannot include the code it loads",
  );
  await assertNothingWritten(sb.store);

  const template = 'export default () => "x";\nconst n = "a";\nawait import(`./${n}.ts`);\n';
  await sb.write("exp/sims/upper.ts", template);
  const t = await sb.run("run", f);
  assert.equal(t.code, 2, t.stderr);
  assertOneError(t.stderr, `exp/sims/upper.ts:3:7`, "computed specifier");

  // The same in a helper it imports, reached transitively.
  await sb.write("exp/sims/upper.ts", PLUGIN);
  await sb.write("exp/sims/helper.ts", HELPER + "export const f = (x: string) => import(x);\n");
  const h = await sb.run("run", f);
  assert.equal(h.code, 2, h.stderr);
  assertOneError(h.stderr, `exp/sims/helper.ts:2:33`, "computed specifier");

  // An import of a file that does not exist is named, at its line.
  await sb.write("exp/sims/helper.ts", 'export { shout } from "./gone.ts";\n');
  const g = await sb.run("run", f);
  assert.equal(g.code, 2, g.stderr);
  assertOneError(g.stderr, `exp/sims/helper.ts:1:23`, "imports './gone.ts', which does not exist");
  await assertNothingWritten(sb.store);
});

Deno.test("a bad plugin param is reported at its key; a plugin that throws, at the plugin param", async () => {
  await using sb = await sandbox();
  const exp = EXP + "      plugin_params:\n        times: 0\n";
  const f = await setup(sb, exp);
  const r = await sb.run("run", f);
  assert.equal(r.code, 2, r.stderr);
  assertOneError(
    r.stderr,
    `${f}:${where(exp, "0\n")}`,
    /stages\.p\.params\.plugin_params\.times: .*>=\s?1/,
  );
  await assertNothingWritten(sb.store);

  const unknown = EXP + "      plugin_params:\n        tims: 2\n";
  await sb.write("exp/exp.yaml", unknown);
  const u = await sb.run("run", f);
  assert.equal(u.code, 2, u.stderr);
  assertOneError(u.stderr, `${f}:${where(unknown, "tims")}`, "unknown key 'tims'");

  await sb.write("exp/exp.yaml", EXP);
  await sb.write("exp/sims/upper.ts", 'throw new Error("plugin exploded");\n');
  const t = await sb.run("run", f);
  assert.equal(t.code, 2, t.stderr);
  assertOneError(t.stderr, `${f}:${where(EXP, "./sims/upper.ts")}`, "plugin exploded");
  await assertNothingWritten(sb.store);
});

Deno.test("a stage without modules keeps its own code fingerprint", async () => {
  await using sb = await sandbox();
  const f = await sb.write("exp.yaml", `name: plain\nstages:\n  t: {kind: $STAGES/text.ts}\n`);
  assert.equal((await sb.run("run", f)).code, 0);
  const rec = (await lastRecord(sb.store, "plain")).stages.t;
  const fp = await (await ProjectResolver.load(ROOT)).fingerprint(
    join(ROOT, "tests/stages/text.ts"),
  );
  assert.deepEqual(rec.components.code, fp);
});
