/**
 * The no-op memo (pipeline/noop_memo.ts): a rerun of an unchanged experiment is answered from
 * the last all-cached run's answer, with the same record the full path writes, and any change
 * to what that answer rests on (a module, an external input, an entry, the experiment file, a
 * facet variable) sends the run down the full path, so a changed stage reruns.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, sandbox } from "./helpers/cli.ts";
import {
  hasNoopMemo,
  noopIdentity,
  readNoopMemo,
  watchedPaths,
  writeNoopMemo,
} from "../pipeline/noop_memo.ts";
import { StoreLayout } from "../pipeline/store_layout.ts";

/** Files must be older than the memo's racy window (2 s) for the memo to be written. */
const pastRacyWindow = () => new Promise((r) => setTimeout(r, 2100));

const STAGE = `import { join } from "node:path";
import { z } from "zod";
import { defineStage } from "${ROOT}/pipeline/stage.ts";
import { MARK } from "./helper.ts";
export default defineStage({
  kind: "test/listing",
  description: "its text, the helper's mark and the names in an external folder",
  params: z.strictObject({ text: z.string(), data: z.string().optional() }),
  inputs: { up: { description: "", optional: true } },
  externals: (p) => (p.data ? { data: p.data } : {}),
  async run(ctx) {
    let text = ctx.params.text + MARK;
    if (ctx.inputs.up) text += await Deno.readTextFile(join(ctx.inputs.up.dir, "t.txt"));
    if (ctx.externals.data) {
      text += [...Deno.readDirSync(ctx.externals.data)].map((e) => e.name).sort().join(",");
    }
    await Deno.writeTextFile(join(ctx.outDir, "t.txt"), text);
    return { metrics: { length: text.length } };
  },
});
`;

const EXP = (text: string) =>
  `name: memo
stages:
  data: {kind: ./stage.ts, params: {text: d, data: ./data}}
  model: {kind: ./stage.ts, params: {text: ${text}}, inputs: {up: data}}
`;

interface Rec {
  stages: Record<string, { outcome: string; key: string }>;
  [k: string]: unknown;
}

Deno.test("no-op memo: the same record as the full path, and any change it rests on reruns", async () => {
  await using sb = await sandbox();
  await sb.write("stage.ts", STAGE);
  await sb.write("helper.ts", 'export const MARK = "A";\n');
  await sb.write("data/x.txt", "x");
  const exp = await sb.write("e.yaml", EXP("m"));
  const records = async (): Promise<Rec[]> => {
    const dir = join(sb.store, "runs", "memo");
    const ids = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    return await Promise.all(
      ids.map(async (f) => JSON.parse(await Deno.readTextFile(join(dir, f)))),
    );
  };
  let stdout = "";
  const run = async (...extra: string[]) => {
    const r = await sb.run("run", exp, "--no-report", ...extra);
    assert.equal(r.code, 0, r.stderr);
    stdout = r.stdout;
    const rec = (await records()).at(-1)!;
    return Object.fromEntries(Object.entries(rec.stages).map(([n, s]) => [n, s.outcome]));
  };
  const memoDir = join(sb.store, "memo", "noop");
  const plans = join(sb.store, "plans");
  const present = (p: string) => {
    try {
      Deno.statSync(p);
      return true;
    } catch {
      return false;
    }
  };

  assert.deepEqual(await run(), { data: "ran", model: "ran" });
  assert.deepEqual(await run(), { data: "cached", model: "cached" });
  assert.ok(!present(memoDir), "entries published under 2 s ago: no memo yet");

  // Written by an all-cached run once everything is older than the racy window...
  await pastRacyWindow();
  assert.deepEqual(await run(), { data: "cached", model: "cached" });
  assert.ok(present(memoDir));
  const fullOutput = stdout;
  // ...and used by the next: without the plan cache, only the memo can answer without
  // planning again (which would write plans/ anew).
  await Deno.remove(plans, { recursive: true });
  assert.deepEqual(await run(), { data: "cached", model: "cached" });
  assert.ok(!present(plans), "answered from the memo, not planned");
  // It says what the full path says, but for the time and the record's name.
  const same = (t: string) => t.replace(/, [\d.]+ s\n/, ", T s\n").replace(/[^/]+\.json\n$/, "");
  assert.equal(same(stdout), same(fullOutput));
  assert.match(stdout, /· data: cached\n· model: cached\n {2}data +cached +length=/);
  const [full, memo] = (await records()).slice(-2);
  for (const k of ["id", "started", "finished", "seconds"]) delete full[k], delete memo[k];
  assert.deepEqual(memo, full, "the memo's record is the full path's");

  // Each change below is made while the memo holds; the affected stages must run again.
  const changes: [string, () => Promise<unknown>, Record<string, string>][] = [
    [
      "a same-size edit of an imported module",
      () => sb.write("helper.ts", 'export const MARK = "B";\n'),
      { data: "ran", model: "ran" },
    ],
    ["a file added to an external folder", () => sb.write("data/y.txt", "y"), {
      data: "ran",
      model: "ran",
    }],
    ["the experiment file", () => sb.write("e.yaml", EXP("n")), {
      data: "cached",
      model: "ran",
    }],
  ];
  for (const [what, change, expected] of changes) {
    await pastRacyWindow();
    assert.deepEqual(await run(), { data: "cached", model: "cached" }, what);
    await change();
    assert.deepEqual(await run(), expected, what);
  }
  // An entry removed (as gc or verify would): its stage computes it again.
  await pastRacyWindow();
  await run();
  const key = (await records()).at(-1)!.stages.model.key;
  await Deno.remove(join(sb.store, "entries", key), { recursive: true });
  assert.deepEqual(await run(), { data: "cached", model: "ran" }, "entry removed");
  // --force and -S never take the memo's answer.
  await pastRacyWindow();
  await run();
  assert.deepEqual(await run("--force", "model"), { data: "cached", model: "ran" });
  await pastRacyWindow();
  await run();
  assert.deepEqual(await run("-S", "stages.model.params.text=o"), {
    data: "cached",
    model: "ran",
  });
  const text = await Deno.readTextFile(
    join(sb.store, "entries", (await records()).at(-1)!.stages.model.key, "out", "t.txt"),
  );
  assert.equal(text, "oBdBx.txt,y.txt");
});

Deno.test("no-op memo: a facet variable's change, or a library installed, is not answered from it", async () => {
  await using sb = await sandbox();
  // env_facet.ts's facets: $KME_TEST_FLAVOUR, and whether libkmefake.so is in the first
  // folder of $LD_LIBRARY_PATH; both are part of the key.
  const exp = await sb.write("e.yaml", "name: facet\nstages:\n  s: {kind: $STAGES/env_facet.ts}\n");
  const lib = join(sb.dir, "lib");
  await Deno.mkdir(lib);
  const outcome = async (flavour: string) => {
    const env = { KME_TEST_FLAVOUR: flavour, LD_LIBRARY_PATH: lib };
    const r = await sb.runEnv(env, "run", exp, "--no-report");
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.match(/^ {2}s\s+(\w+)/m)?.[1];
  };
  assert.equal(await outcome("a"), "ran");
  await pastRacyWindow();
  assert.equal(await outcome("a"), "cached"); // writes the memo
  assert.ok(Deno.readDirSync(join(sb.store, "memo", "noop")).next().value, "memo written");
  assert.equal(await outcome("b"), "ran");
  await pastRacyWindow();
  assert.equal(await outcome("b"), "cached");
  await Deno.writeTextFile(join(lib, "libkmefake.so"), "");
  assert.equal(await outcome("b"), "ran");
  const rec = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort().at(-1)!;
  const runs = join(sb.store, "runs", "facet");
  const last = JSON.parse(await Deno.readTextFile(join(runs, rec(runs))));
  assert.equal(last.stages.s.facets.library, "found");
});

Deno.test("no-op memo: gc removes the memos that no longer hold and keeps the others", async () => {
  await using sb = await sandbox();
  const exp = await sb.write("e.yaml", "name: g\nstages:\n  s: {kind: $STAGES/text.ts}\n");
  const other = await sb.write(
    "f.yaml",
    "name: h\nstages:\n  t: {kind: $STAGES/text.ts, params: {text: t}}\n",
  );
  for (const f of [exp, other]) assert.equal((await sb.run("run", f, "--no-report")).code, 0);
  await pastRacyWindow();
  for (const f of [exp, other]) assert.equal((await sb.run("run", f, "--no-report")).code, 0);
  const memos = () => [...Deno.readDirSync(join(sb.store, "memo", "noop"))].length;
  assert.equal(memos(), 2);
  const kept = await sb.run("gc");
  assert.equal(kept.code, 0, kept.stderr);
  assert.equal(memos(), 2, "both still hold");
  assert.doesNotMatch(kept.stdout, /no-op memo/);
  // An entry of f.yaml's run goes (as verify's quarantine or a hand would take it).
  const runs = join(sb.store, "runs", "h");
  const rec = JSON.parse(
    await Deno.readTextFile(join(runs, [...Deno.readDirSync(runs)].map((e) => e.name).sort()[0])),
  );
  await Deno.remove(join(sb.store, "entries", rec.stages.t.key), { recursive: true });
  const pruned = await sb.run("gc");
  assert.match(pruned.stdout, /1 stale no-op memo removed/);
  assert.equal(memos(), 1);
  const again = await sb.run("run", other, "--no-report");
  assert.match(again.stdout, /^ {2}t\s+ran/m, "its stage computes the entry again");
});

Deno.test("no-op memo: not written when a file it rests on changed after the run began", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const layout = new StoreLayout(join(dir, "store"));
    const file = join(dir, "m.ts");
    const began = Date.now();
    await Deno.writeTextFile(file, "x"); // changed while the run was reading it
    await pastRacyWindow();
    const id = noopIdentity(dir, "e.yaml", []);
    const answer = {
      experiment: { name: "e", file: "e.yaml", sha256: {} },
      seed: 0,
      stageNames: [],
      stagesText: "{}",
      table: "",
    };
    writeNoopMemo(layout, id, answer, { required: [file], optional: [] }, began);
    assert.equal(hasNoopMemo(layout, id), false, "its answer may be of the content before");
    // A run that began after it.
    writeNoopMemo(layout, id, answer, { required: [file], optional: [] }, Date.now());
    assert.ok(readNoopMemo(layout, id));
    await Deno.writeTextFile(file, "y"); // same size
    assert.equal(readNoopMemo(layout, id), undefined);
    // A file the run read that is gone when the memo is written: "absent" is not its state
    // when the run read it, so nothing is memoized; an optional one may be absent.
    const gone = join(dir, "gone.ts");
    await Deno.remove(join(layout.noopMemoDir), { recursive: true });
    writeNoopMemo(layout, id, answer, { required: [gone], optional: [] }, Date.now());
    assert.equal(hasNoopMemo(layout, id), false);
    writeNoopMemo(layout, id, answer, { required: [], optional: [gone] }, Date.now());
    assert.ok(readNoopMemo(layout, id));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("no-op memo: rests on the engine's own code and both node_modules folders", () => {
  const layout = new StoreLayout("/nonexistent-store");
  const { required, optional } = watchedPaths(ROOT, layout, [], []);
  for (const f of ["pipeline/key.ts", "pipeline/plan.ts", "cli/prepare.ts", "stages/registry.ts"]) {
    assert.ok(required.includes(join(ROOT, f)), f);
  }
  assert.ok(optional.includes(join(Deno.cwd(), "node_modules", "@tensorflow")));
  assert.ok(optional.includes(join(ROOT, "node_modules")));
});
