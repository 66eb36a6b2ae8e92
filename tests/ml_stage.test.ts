/**
 * The pretrain stage end to end on a tiny packed dataset (cpu backend): outputs, metrics,
 * facets, and interrupt (abort signal) + rerun resuming from scratch to identical weights.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Progress, StageContext } from "../pipeline/stage.ts";
import { DatasetWriter } from "../stages/lib/dataset/write.ts";
import { toySplit } from "../stages/lib/model/toy.ts";
import stage, { PretrainParams } from "../stages/pretrain/stage.ts";

async function writeToyDataset(dir: string): Promise<void> {
  const w = await DatasetWriter.create(dir, {
    source: "toy",
    image: { height: 16, width: 16, channels: 3 },
  });
  for (const [split, n, seed] of [["train", 48, 1], ["val", 16, 2], ["test", 16, 3]] as const) {
    const s = toySplit(n, seed);
    for (let i = 0; i < n; i++) {
      const caps = s.captions.filter((c) => c.image === i).map((c) => c.text);
      await w.add(split, s.images.subarray(i * 768, (i + 1) * 768), caps);
    }
  }
  await w.finish();
}

const tiny = {
  similarity: "kme",
  points: "queries",
  num_queries: 3,
  embed_dim: 16,
  patch: 4,
  vision_width: 32,
  vision_depth: 1,
  vision_heads: 2,
  vision_mlp: 64,
  text_width: 32,
  text_depth: 1,
  text_heads: 2,
  text_mlp: 64,
  max_len: 8,
  batch_size: 8,
  steps: 6,
  warmup: 2,
  lr: 2e-3,
  checkpoint_every: 2,
  log_every: 1,
  val_batches: 2,
  val_every: 2,
  backend: "cpu",
};

function context(
  params: PretrainParams,
  dataDir: string,
  outDir: string,
  scratch: string,
  signal: AbortSignal,
  onUpdate?: (v: number) => void,
): { ctx: StageContext<PretrainParams>; logs: string[] } {
  const logs: string[] = [];
  const progress: Progress = {
    start() {},
    update(v) {
      onUpdate?.(v);
    },
    stop() {},
  };
  return {
    logs,
    ctx: {
      params,
      inputs: { data: { dir: dataDir, key: "k", digest: "d", files: [], metrics: {} } },
      externals: {},
      experimentDir: Deno.cwd(),
      outDir,
      scratch,
      log: (m) => logs.push(m),
      progress,
      signal,
      seed: 1,
      facets: { backend: "cpu" },
      modules: {},
    },
  };
}

Deno.test("ml/stage: params defaults, validation and cheap facets", async () => {
  const d = PretrainParams.parse({});
  assert.equal(d.similarity, "clip");
  assert.equal(d.backend, "auto");
  assert.equal(d.sigma2_init, 0.07);
  assert.throws(() => PretrainParams.parse({ batch_sise: 3 }));
  assert.throws(
    () => PretrainParams.parse({ similarity: "kme", sigma2_init: 100 }),
    /sigma2_min <= sigma2_init/,
  );
  assert.deepEqual(await stage.facets!(d), { backend: "wasm" });
  assert.deepEqual(await stage.facets!(PretrainParams.parse({ backend: "cpu" })), {
    backend: "cpu",
  });
  assert.equal(stage.kind, "pretrain");
  assert.ok("data" in stage.inputs);
});

Deno.test("ml/stage: runs, writes the model and log; interrupted + rerun == uninterrupted", async () => {
  const root = await Deno.makeTempDir({ prefix: "ml_stage_" });
  try {
    const data = join(root, "data");
    await writeToyDataset(data);
    // As the engine resolves them: schema, then refineParams (fills what a preset fixes).
    const params = await stage.refineParams!(PretrainParams.parse(tiny), {});
    const mk = async (name: string) => {
      const d = join(root, name);
      await Deno.mkdir(d, { recursive: true });
      return d;
    };

    // Uninterrupted run.
    const outA = await mk("outA");
    const a = context(params, data, outA, await mk("scratchA"), new AbortController().signal);
    const resA = await stage.run(a.ctx);
    assert.ok(resA);
    const files = [...Deno.readDirSync(outA)].map((e) => e.name).sort();
    assert.deepEqual(files, ["model.bin", "model.json", "train_log.jsonl"]);
    const m = resA.metrics!;
    assert.equal(m.steps, 6);
    assert.ok(Number.isFinite(m.final_loss as number));
    assert.ok(Number.isFinite(m.val_loss as number));
    assert.ok((m.sigma2 as number) > 0);
    assert.equal((m.loss_curve as number[]).length, 6);
    assert.equal(resA.info!.backend, "cpu");
    const header = JSON.parse(await Deno.readTextFile(join(outA, "model.json")));
    assert.equal(header.format, "kme-clip-model");
    assert.equal(header.config.similarity.name, "kme");
    assert.equal(header.vocab[0], "<pad>");
    const log = (await Deno.readTextFile(join(outA, "train_log.jsonl"))).trim().split("\n")
      .map((l) => JSON.parse(l));
    assert.deepEqual(log.map((r) => r.step), [1, 2, 3, 4, 5, 6]);
    for (const k of ["loss", "lr", "sigma2"]) assert.ok(k in log[0], k);
    // Validation on steps 2, 4 and 6; the metric is the last step's.
    assert.deepEqual(log.filter((r) => "val_loss" in r).map((r) => r.step), [2, 4, 6]);
    assert.equal(m.val_loss, log[5].val_loss);
    assert.notEqual(log[1].val_loss, log[5].val_loss);
    // Timings stay out of out/ (they are in the metrics): same weights, same bytes.
    for (const k of ["samples_per_s", "elapsed_s"]) assert.ok(!(k in log[0]), k);
    assert.ok((m.samples_per_s as number) > 0);

    // Interrupted at step 3, then rerun with the same scratch.
    const scratchB = await mk("scratchB");
    const ac = new AbortController();
    const b1 = context(params, data, await mk("outB1"), scratchB, ac.signal, (v) => {
      if (v === 3) ac.abort(new Error("SIGTERM"));
    });
    await assert.rejects(stage.run(b1.ctx), /SIGTERM/);
    assert.ok(b1.logs.some((l) => l.includes("interrupted at step 3")));
    const outB = await mk("outB2");
    const b2 = context(params, data, outB, scratchB, new AbortController().signal);
    const resB = await stage.run(b2.ctx);
    assert.equal(resB!.info!.resumed_from, 3);
    assert.deepEqual(
      await Deno.readFile(join(outB, "model.bin")),
      await Deno.readFile(join(outA, "model.bin")),
      "resumed weights are bit-identical",
    );
    const logB = (await Deno.readTextFile(join(outB, "train_log.jsonl"))).trim().split("\n")
      .map((l) => JSON.parse(l));
    assert.deepEqual(logB.map((r) => r.step), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(logB.map((r) => r.loss), log.map((r) => r.loss));
    // Interrupted + resumed publishes exactly the uninterrupted run's bytes, every file.
    for (const f of files) {
      assert.deepEqual(await Deno.readFile(join(outB, f)), await Deno.readFile(join(outA, f)), f);
    }
    assert.deepEqual(resB!.metrics!.loss_curve, m.loss_curve);

    // Validating changes nothing it reads: validation only at the end gives the same weights,
    // the same losses and the same final val_loss.
    const outC = await mk("outC");
    const onlyAtEnd = await stage.refineParams!(
      PretrainParams.parse({ ...tiny, val_every: 0 }),
      {},
    );
    const c = context(onlyAtEnd, data, outC, await mk("scratchC"), new AbortController().signal);
    const resC = await stage.run(c.ctx);
    assert.deepEqual(
      await Deno.readFile(join(outC, "model.bin")),
      await Deno.readFile(join(outA, "model.bin")),
    );
    const logC = (await Deno.readTextFile(join(outC, "train_log.jsonl"))).trim().split("\n")
      .map((l) => JSON.parse(l));
    assert.ok(logC.every((r) => !("val_loss" in r)));
    assert.deepEqual(logC.map((r) => r.loss), log.map((r) => r.loss));
    assert.equal(resC!.metrics!.val_loss, m.val_loss);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
