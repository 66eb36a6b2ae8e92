/**
 * experiments/coco.yaml end to end on the tiny COCO-format fixture: the same stages and code
 * paths (Karpathy split, leakage check, all captions, training, embedding, 5k-protocol
 * retrieval), with sizes shrunk by a derived experiment.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { lastRecord, ROOT, sandbox } from "./helpers/cli.ts";
import { makeCocoRoot } from "./fixtures/coco/make.ts";

Deno.test("coco.yaml runs end to end on the tiny COCO fixture", async () => {
  await using sb = await sandbox();
  const fx = await makeCocoRoot();
  try {
    const f = await sb.write(
      "coco-tiny.yaml",
      `
name: coco-tiny
extends: ${join(ROOT, "experiments", "coco.yaml")}
defaults:
  pretrain:
    batch_size: 4
    steps: 6
    warmup: 1
    embed_dim: 16
    vision_width: 16
    vision_depth: 1
    vision_heads: 2
    vision_mlp: 32
    text_width: 16
    text_depth: 1
    text_heads: 2
    text_mlp: 32
    min_count: 1
    checkpoint_every: 3
    log_every: 2
    val_batches: 1
    backend: wasm
stages:
  data:
    params: {root: ${fx.root}, karpathy: ${fx.karpathy}, image_size: 16}
  train:
    matrix: {seed: [0]}
`,
    );
    const r = await sb.run("run", f);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const rec = await lastRecord(sb.store, "coco-tiny");
    const names = Object.keys(rec.stages);
    assert.deepEqual(names.map((n) => rec.stages[n].base), [
      "data",
      "train",
      "train",
      "embed",
      "embed",
      "retrieval",
      "retrieval",
    ]);
    const data = rec.stages.data;
    // Karpathy split of the fixture: train + restval, val, test.
    assert.deepEqual([data.metrics.train, data.metrics.val, data.metrics.test], [12, 2, 3]);
    for (const sim of ["clip", "kme"]) {
      const ret = rec.stages[`retrieval[similarity=${sim},seed=0]`];
      assert.equal(ret.outcome, "ran");
      for (const k of ["i2t_R@1", "i2t_R@5", "t2i_R@1", "rsum"]) {
        assert.ok(Number.isFinite(ret.metrics[k]), `${sim} ${k}`);
      }
    }
    assert.match(r.stdout, /report: /);
  } finally {
    await Deno.remove(fx.root, { recursive: true }).catch(() => {});
  }
});
