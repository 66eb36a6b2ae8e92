/**
 * The similarity seam: a similarity defined in one file outside the project's similarity
 * folder (tests/fixtures/similarity/gated_centroid.ts) and named by path in an experiment runs
 * through pretrain -> embed -> retrieval -> zero-shot -> linear probe -> pmi with no other file
 * changed; its code is part of the cache key; its params are checked by its own schema; and a
 * misspelt built-in gets "did you mean".
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { lastRecord, ROOT, sandbox } from "./helpers/cli.ts";

const FIXTURES = join(ROOT, "tests", "fixtures", "similarity");

/** The plugin and its experiment, copied into the sandbox (so that the test may edit them). */
async function copyPlugin(dir: string): Promise<{ yaml: string; plugin: string }> {
  const src = await Deno.readTextFile(join(FIXTURES, "gated_centroid.ts"));
  const plugin = join(dir, "gated_centroid.ts");
  // The type import points into the project; from the sandbox it needs an absolute path.
  await Deno.writeTextFile(
    plugin,
    src.replace("../../../stages/", `${join(ROOT, "stages")}/`),
  );
  const yaml = join(dir, "plugin.yaml");
  await Deno.copyFile(join(FIXTURES, "plugin.yaml"), yaml);
  return { yaml, plugin };
}

Deno.test("similarity plugin: a file named by path runs through every evaluation stage; its code is in the key", async () => {
  await using sb = await sandbox();
  const { yaml, plugin } = await copyPlugin(sb.dir);
  const r = await sb.run("run", yaml);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const rec = await lastRecord(sb.store, "plugin");
  const stages = ["train", "embed", "embed_train", "retrieval", "linear_probe", "zero_shot", "pmi"];
  for (const s of stages) assert.equal(rec.stages[s]?.outcome, "ran", `${s} ran`);
  const out = (s: string) => join(sb.store, "entries", rec.stages[s].key, "out");

  const model = JSON.parse(await Deno.readTextFile(join(out("train"), "model.json")));
  assert.equal(model.config.similarity.name, "./gated_centroid.ts");
  assert.equal(model.config.similarity.module.path, plugin);
  assert.match(model.config.similarity.module.digest, /^[0-9a-f]{64}$/);
  assert.deepEqual(model.config.similarity.params, { scale_init: 12 });
  const emb = JSON.parse(await Deno.readTextFile(join(out("embed"), "embeddings.json")));
  assert.equal(emb.similarity.module.path, plugin);
  assert.ok(emb.similarity.values.logit_scale > 0);
  assert.deepEqual(emb.probe, { dim: 16, features: "the gated centroid u" });

  const metrics = (s: string) => rec.stages[s].metrics as Record<string, number>;
  assert.ok(metrics("train").final_loss < Math.log(32), `loss ${metrics("train").final_loss}`);
  for (const k of ["i2t_R@1", "t2i_R@10"]) assert.ok(metrics("retrieval")[k] >= 0);
  assert.ok(metrics("linear_probe").accuracy > 0 && metrics("zero_shot").top1 >= 0);
  assert.equal(metrics("pmi").n, 16 * 16);
  const protocol = async (s: string) =>
    JSON.parse(await Deno.readTextFile(join(out(s), "metrics.json"))).protocol;
  assert.match((await protocol("retrieval")).similarity, /^gated_centroid scale_init=12 /);
  assert.match((await protocol("zero_shot")).pooling, /sum of the prompts' centroids/);

  // Unchanged: nothing runs.
  const again = await sb.run("run", yaml);
  assert.equal(again.code, 0, again.stderr);
  const rec2 = await lastRecord(sb.store, "plugin");
  for (const s of ["data", ...stages]) assert.equal(rec2.stages[s].outcome, "cached", s);

  // The plugin's code changes: training reruns, and so does everything downstream (the model
  // records the plugin's code digest, so its content changes even if the weights do not).
  await Deno.writeTextFile(plugin, (await Deno.readTextFile(plugin)) + "\n// edited\n");
  const st = await sb.run("status", yaml);
  assert.match(st.stdout, /train\s+run\b.*\n?.*code: .*gated_centroid\.ts/);
  const third = await sb.run("run", yaml);
  assert.equal(third.code, 0, third.stderr);
  const rec3 = await lastRecord(sb.store, "plugin");
  assert.equal(rec3.stages.data.outcome, "cached");
  for (const s of stages) assert.equal(rec3.stages[s].outcome, "ran", `${s} reran`);
});

Deno.test("similarity names and params are checked before anything runs", async () => {
  await using sb = await sandbox();
  await copyPlugin(sb.dir);
  // [params lines (under `params:`, line 9 on), the expected error]
  const cases: [string[], RegExp][] = [
    [
      ["similarity: klip"],
      /bad\.yaml:9:\d+: error: .*unknown similarity 'klip' \(did you mean 'clip'\?\)/,
    ],
    [
      ["similarity: ./gated_centroid.ts", "similarity_params: { scale_init: -1 }"],
      /bad\.yaml:10:\d+: error: .*scale_init/,
    ],
    [
      ["similarity: ./gated_centroid.ts", "similarity_params: { scale_int: 3 }"],
      /bad\.yaml:10:\d+: error: .*unknown param 'scale_int' of similarity gated_centroid \(did you mean 'scale_init'\?\); its params: scale_init/,
    ],
    [["similarity: clip_weighted", "pool: mean"], /bad\.yaml:10:\d+: error: .*fixes pool/],
    [["similarity: kme", "similarity_params: { a: 1 }"], /bad\.yaml:10:\d+: error: .*by path/],
    [["similarity: ./missing.ts"], /bad\.yaml:9:\d+: error: .*missing\.ts.*not found/],
    [
      ["similarity: ./broken.ts"],
      /bad\.yaml:9:\d+: error: .*must default-export a Similarity .*summary must be a string.*scoring\.finish must be a function/,
    ],
    [["similarity: kme", "pool: weighted"], /bad\.yaml:10:\d+: error: .*'kme' does not use 'pool'/],
  ];
  // A plugin that lacks members is refused before any training, not in embed after it.
  await sb.write(
    "broken.ts",
    'import { z } from "zod";\nexport default { name: "broken", params: z.strictObject({}), ' +
      'head: () => ({ points: "mean" }), scalars: () => [], values: () => ({}), ' +
      'logits: () => { throw new Error("unused"); }, probeFeatures: () => ({}), ' +
      'probeDoc: "", describe: () => "", scoring: { kind: "kernel", invSigma2: () => 1 } };\n',
  );
  for (const [params, want] of cases) {
    const f = await sb.write(
      "bad.yaml",
      [
        "name: bad",
        "stages:",
        "  data:",
        "    kind: prepare/synthetic",
        "  train:",
        "    kind: pretrain",
        "    inputs: { data: data }",
        "    params:",
        ...params.map((l) => `      ${l}`),
        "",
      ].join("\n"),
    );
    const r = await sb.run("run", f);
    assert.equal(r.code, 2, `${params}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, want, params.join("; "));
    assert.doesNotMatch(r.stderr, /\bat .*\.ts:\d+/, "no stack trace");
  }
  // Nothing was computed.
  let entries = 0;
  try {
    entries = [...Deno.readDirSync(join(sb.store, "entries"))].length;
  } catch { /* no store was even created */ }
  assert.equal(entries, 0);
});
