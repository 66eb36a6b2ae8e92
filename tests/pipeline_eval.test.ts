/**
 * The evaluation stages through the real engine on experiments/tiny.yaml: embed (test and
 * train), retrieval, linear-probe, zero-shot and pmi fan out over the clip/kme matrix, every
 * metric exists and is in range, every metrics file states its protocol, and
 * `diff tiny.yaml --by similarity` gets query bootstrap intervals for retrieval R@K from the
 * retrieval stage's compare hook (one seed per side: queries only).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { lastRecord, ROOT, sandbox } from "./helpers/cli.ts";

const TINY = join(ROOT, "experiments", "tiny.yaml");

const inRange = (x: unknown, lo: number, hi: number) =>
  typeof x === "number" && Number.isFinite(x) && x >= lo && x <= hi;

Deno.test("tiny.yaml: evaluation stages run for clip and kme; metrics in range; diff intervals", async () => {
  await using sb = await sandbox();
  const r = await sb.run("run", TINY);
  assert.equal(r.code, 0, r.stderr);
  const rec = await lastRecord(sb.store, "tiny");
  const out = (stage: string) => join(sb.store, "entries", rec.stages[stage].key, "out");
  for (const sim of ["clip", "kme"]) {
    const at = (base: string) => `${base}[similarity=${sim}]`;
    for (const s of ["embed", "embed_train", "retrieval", "linear_probe", "zero_shot", "pmi"]) {
      assert.equal(rec.stages[at(s)]?.outcome, "ran", `${at(s)} ran`);
    }
    assert.deepEqual(rec.stages[at("embed")].metrics, { images: 256, captions: 1280 });
    assert.deepEqual(rec.stages[at("embed_train")].metrics, { images: 1000, captions: 5000 });
    const emb = JSON.parse(await Deno.readTextFile(join(out(at("embed")), "embeddings.json")));
    assert.equal(emb.format, "kme-embeddings/2");
    assert.equal(emb.similarity.name, sim);

    const rm = rec.stages[at("retrieval")].metrics;
    for (const d of ["i2t", "t2i"]) {
      for (const k of [1, 5, 10]) {
        assert.ok(inRange(rm[`${d}_R@${k}`], 0, 100), `${sim} ${d} R@${k}`);
      }
      assert.ok(rm[`${d}_R@1`] <= rm[`${d}_R@5`] && rm[`${d}_R@5`] <= rm[`${d}_R@10`]);
      assert.ok(inRange(rm[`${d}_median_rank`], 1, 1280));
      assert.ok(inRange(rm[`${d}_mean_rank`], 1, 1280));
    }
    const rsum = ["i2t", "t2i"].flatMap((d) => [1, 5, 10].map((k) => rm[`${d}_R@${k}`]))
      .reduce((a: number, b: number) => a + b, 0);
    assert.ok(Math.abs(rm.rsum - rsum) < 1e-9);
    // Learned something: chance R@10 for image->text is about 4% here.
    assert.ok(rm["i2t_R@10"] > 8, `${sim}: i2t R@10 ${rm["i2t_R@10"]}`);
    assert.ok(!Object.keys(rm).some((k) => k.startsWith("1k_")), "no 1k protocol for 256 images");

    const lp = rec.stages[at("linear_probe")].metrics;
    assert.ok(inRange(lp.accuracy, 100 / 6 + 3, 100), `${sim}: probe accuracy ${lp.accuracy}`);
    assert.ok(inRange(lp.mean_per_class_recall, 0, 100));
    assert.ok(lp.chosen_c > 0);
    const zs = rec.stages[at("zero_shot")].metrics;
    for (const k of ["top1", "top5", "mean_per_class_recall"]) assert.ok(inRange(zs[k], 0, 100), k);
    assert.ok(zs.top1 <= zs.top5);
    const pm = rec.stages[at("pmi")].metrics;
    assert.equal(pm.n, 64 * 64);
    assert.ok(inRange(pm.pearson, 0.1, 1), `${sim}: pearson ${pm.pearson}`);
    assert.ok(inRange(pm.spearman, -1, 1) && pm.rmse_shifted > 0);

    for (const s of ["retrieval", "linear_probe", "zero_shot", "pmi"]) {
      const doc = JSON.parse(await Deno.readTextFile(join(out(at(s)), "metrics.json")));
      assert.ok(doc.protocol?.name && doc.protocol?.version, `${s}: protocol`);
      assert.deepEqual(doc.metrics, rec.stages[at(s)].metrics);
    }
    const scatter = JSON.parse(await Deno.readTextFile(join(out(at("pmi")), "scatter.json")));
    assert.equal(scatter.pmi.length, 4096);
    assert.equal(scatter.score.length, 4096);
    const ranks = await Deno.readFile(join(out(at("retrieval")), "ranks_t2i.i32"));
    assert.equal(ranks.byteLength, 1280 * 4);
  }

  // diff --by similarity: one seed per side, so only query-level intervals, from the compare
  // hook on retrieval R@K; never starred (`*` is for seed-level intervals).
  const dj = await sb.run("diff", TINY, "--by", "similarity", "--json");
  assert.equal(dj.code, 0, dj.stderr);
  const rows = JSON.parse(dj.stdout).rows as {
    name: string;
    delta?: number;
    queryCi?: { lo: number; hi: number; method: string; n: number };
    seedCi?: unknown;
    significant?: boolean;
  }[];
  for (const d of ["i2t", "t2i"]) {
    for (const k of [1, 5, 10]) {
      const row = rows.find((x) => x.name === `retrieval.${d}_R@${k}`);
      assert.ok(row?.queryCi, `interval for retrieval.${d}_R@${k}`);
      const { lo, hi, method, n } = row.queryCi!;
      assert.equal(method, "bootstrap");
      assert.equal(n, 1);
      assert.ok(
        lo <= (row.delta ?? 0) + 1e-9 && (row.delta ?? 0) <= hi + 1e-9,
        `${row.name}: ${lo} ${row.delta} ${hi}`,
      );
      assert.equal(row.seedCi, undefined);
      assert.equal(row.significant, undefined);
    }
  }
  assert.ok(!rows.find((x) => x.name === "pmi.pearson")?.queryCi, "no interval without a hook");
  const dt = await sb.run("diff", TINY, "--by", "similarity");
  assert.equal(dt.code, 0, dt.stderr);
  assert.match(
    dt.stdout,
    /retrieval\.i2t_R@1 .* 95% CI \[-?[\d.]+, -?[\d.]+\] \(queries only, 1 seed pair: training randomness not covered\)/,
  );
  assert.doesNotMatch(dt.stdout, / \*/);

  // A rerun is all cache hits.
  const again = await sb.run("run", TINY);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /0 ran/);
});
