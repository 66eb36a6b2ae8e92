/**
 * The pmi stage with a random tiny model (cpu backend) on a toy dataset whose PMI grid is
 * written by the test: PMI = the model's own training logits + 3 gives Pearson = Spearman = 1,
 * RMSE after the shift = 0 and shift = 3; a random PMI gives exactly pmiFidelity of the
 * model's logits; scatter.json has the keys the report reads; no pmi.json is refused.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import stage, { PmiParams } from "../stages/pmi/stage.ts";
import { conditionalFidelity, pmiFidelity, weightedFidelity } from "../stages/lib/eval/pmi.ts";
import { Rng } from "../stages/lib/random.ts";
import { encodeImages, encodeTexts } from "../stages/lib/model/io.ts";
import { StageInputError } from "../pipeline/stage.ts";
import { readJson, saveRandomModel, stageContext, writeToyDataset } from "./eval_stage_helpers.ts";
import { captionLogProbs } from "../stages/pmi/run.ts";
import synthetic from "../stages/prepare/synthetic/stage.ts";
import { SceneModel } from "../stages/lib/synthetic/scene_model.ts";
import { openDataset } from "../stages/lib/dataset/read.ts";
import { makeContext } from "./fixtures/data/context.ts";

for (const similarity of ["kme", "clip"] as const) {
  Deno.test(`pmi stage (${similarity}): fidelity of the model's own similarity`, async () => {
    const root = await Deno.makeTempDir({ prefix: "eval-pmi-" });
    const cleanups: (() => Promise<void>)[] = [];
    try {
      const { model, vocab } = await saveRandomModel(join(root, "model"), similarity, {}, 5);
      cleanups.push(() => Promise.resolve(model.dispose()));
      let logits: Float32Array = new Float32Array(0);
      const modelScores = async (g: { images: Uint8Array; rows: number; texts: string[] }) => {
        const pi = encodeImages(model, g.images, g.rows);
        const pt = encodeTexts(model, vocab, g.texts);
        const lg = model.logits(pi, pt);
        logits = (await lg.data()) as Float32Array;
        tf.dispose([pi.points, pi.weights, pt.points, pt.weights, lg]);
        return logits;
      };
      const run = async (dir: string, params: Partial<PmiParams> = {}) => {
        const ctx = await stageContext(PmiParams.parse({ backend: "cpu", ...params }), {
          model: join(root, "model"),
          data: dir,
        }, { backend: "cpu" });
        cleanups.push(ctx.cleanup);
        const res = await stage.run(ctx);
        return {
          m: res!.metrics as Record<string, number>,
          doc: await readJson(join(ctx.outDir, "metrics.json")),
          scatter: await readJson(join(ctx.outDir, "scatter.json")),
        };
      };

      // PMI = s + 3 exactly.
      await writeToyDataset(join(root, "shifted"), {
        pmi: async (g) => (await modelScores(g)).map((x) => x + 3),
      });
      const a = await run(join(root, "shifted"));
      assert.equal(a.m.n, 30);
      assert.ok(a.m.pearson > 1 - 1e-5, `pearson ${a.m.pearson}`);
      assert.ok(a.m.spearman > 1 - 1e-9, `spearman ${a.m.spearman}`);
      assert.ok(a.m.rmse_shifted < 1e-4, `rmse ${a.m.rmse_shifted}`);
      assert.ok(Math.abs(a.m.shift - 3) < 1e-4, `shift ${a.m.shift}`);
      assert.deepEqual(Object.keys(a.scatter).sort(), ["pmi", "score"]);
      assert.equal(a.scatter.pmi.length, 30);
      a.scatter.pmi.forEach((p: number, k: number) =>
        assert.ok(Math.abs(p - a.scatter.score[k] - 3) < 1e-4)
      );
      assert.equal(a.doc.protocol.name, "pmi-fidelity");
      // Weighted by exp(PMI) and restricted to PMI > -3: perfect too. No exact p(y) in this
      // dataset: no conditional fidelity, and the protocol says why.
      assert.ok(a.m.pearson_weighted > 1 - 1e-5, `weighted pearson ${a.m.pearson_weighted}`);
      assert.ok(a.m.rmse_shifted_weighted < 1e-4, `weighted rmse ${a.m.rmse_shifted_weighted}`);
      assert.equal(a.m.kl_image_to_text, undefined);
      assert.match(a.doc.protocol.conditional, /not computed: the dataset gives no exact p\(y\)/);

      // With p(y) (pmi.json captionLogProb): s = PMI - 3 implies the true conditionals.
      // log p(y) by text (columns with the same text must agree).
      const logPyOf = (texts: string[]) => {
        const uniq = [...new Set(texts)];
        return texts.map((t) => -0.5 - 0.7 * uniq.indexOf(t));
      };
      await writeToyDataset(join(root, "shifted_py"), {
        pmi: async (g) => (await modelScores(g)).map((x) => x + 3),
        captionLogProb: logPyOf,
      });
      const k = await run(join(root, "shifted_py"));
      assert.ok(k.m.kl_image_to_text < 1e-8, `kl i2t ${k.m.kl_image_to_text}`);
      assert.ok(k.m.kl_text_to_image < 1e-8, `kl t2i ${k.m.kl_text_to_image}`);
      assert.match(k.doc.protocol.conditional, /p\(y\): pmi\.json captionLogProb/);
      await writeToyDataset(join(root, "bad_py"), {
        pmi: async (g) => (await modelScores(g)).map((x) => x + 3),
        captionLogProb: (texts) => texts.map((_, i) => (i === 0 ? 0.5 : -1)),
      });
      await assert.rejects(
        () => run(join(root, "bad_py")),
        (e: Error) => e instanceof StageInputError && /captionLogProb must be 5/.test(e.message),
      );
      // The toy grid repeats a text; giving its two columns different log p(y) is refused.
      let repeats = false;
      await writeToyDataset(join(root, "bad_py2"), {
        pmi: async (g) => (await modelScores(g)).map((x) => x + 3),
        captionLogProb: (texts) => {
          repeats = new Set(texts).size < texts.length;
          return texts.map((_, i) => -1 - i);
        },
      });
      assert.ok(repeats, "the toy grid should repeat a caption text");
      await assert.rejects(
        () => run(join(root, "bad_py2")),
        (e: Error) => e instanceof StageInputError && /same text .* different/.test(e.message),
      );

      // Random PMI: the metrics are pmiFidelity(model logits, PMI).
      const rng = new Rng(9);
      let pmi: Float32Array = new Float32Array(0);
      await writeToyDataset(join(root, "random"), {
        pmi: async (g) => {
          await modelScores(g);
          return pmi = Float32Array.from(logits, () => rng.float() * 6 - 3);
        },
      });
      const b = await run(join(root, "random"), { scatter_points: 10 });
      const want = pmiFidelity(logits, pmi);
      const wantW = weightedFidelity(logits, pmi, pmi.map(Math.exp));
      const above = [...pmi.keys()].filter((i) => pmi[i] > -3);
      const wantR = pmiFidelity(above.map((i) => logits[i]), above.map((i) => pmi[i]));
      for (
        const [k, w] of [
          ["pearson_weighted", wantW.pearson],
          ["rmse_shifted_weighted", wantW.rmse],
          ["pearson_restricted", wantR.pearson],
          ["rmse_shifted_restricted", wantR.rmse],
          ["n_restricted", above.length],
        ] as const
      ) {
        assert.ok(Math.abs(b.m[k] - w) < 1e-4, `${k}: ${b.m[k]} vs ${w}`);
      }
      for (
        const [k, w] of [["pearson", want.pearson], ["spearman", want.spearman], [
          "rmse_shifted",
          want.rmse,
        ]] as const
      ) {
        assert.ok(Math.abs(b.m[k] - w) < 1e-4, `${k}: ${b.m[k]} vs ${w}`);
      }
      assert.equal(b.scatter.pmi.length, 10);
      assert.equal(b.scatter.score.length, 10);
      // The same random PMI with p(y): the KLs are conditionalFidelity of the model's logits.
      let gridTexts: string[] = [];
      await writeToyDataset(join(root, "random_py"), {
        pmi: () => Promise.resolve(pmi),
        captionLogProb: (texts) => logPyOf(gridTexts = texts),
      });
      const c = await run(join(root, "random_py"));
      const cols = 5;
      const uniq = [...new Set(gridTexts)];
      const wantKl = conditionalFidelity({
        rows: pmi.length / cols,
        cols,
        pmi,
        score: logits,
        text: Int32Array.from(gridTexts, (t) => uniq.indexOf(t)),
        logPy: uniq.map((t) => logPyOf(gridTexts)[gridTexts.indexOf(t)]),
      });
      assert.ok(Math.abs(c.m.kl_image_to_text - wantKl.imageToText) < 1e-4, "kl i2t");
      assert.ok(Math.abs(c.m.kl_text_to_image - wantKl.textToImage) < 1e-4, "kl t2i");
      assert.ok(wantKl.imageToText > 0.05 && wantKl.textToImage > 0.05);

      // A dataset without a PMI grid.
      await writeToyDataset(join(root, "none"));
      await assert.rejects(
        () => run(join(root, "none")),
        (e: Error) => e instanceof StageInputError && /pmi\.json/.test(e.message),
      );
    } finally {
      for (const f of cleanups) await f();
      await Deno.remove(root, { recursive: true });
    }
  });
}

Deno.test("pmi stage: exact p(y) of a revealed synthetic dataset, rebuilt from its generator", async () => {
  const params = synthetic.params.parse({
    counts: { train: 10, val: 5, test: 30 },
    captions_per_image: 1,
    grid_images: 20,
    grid_captions: 30,
    mention: { size: 0.6 },
    attribute_noise: 0.1,
  });
  const ctx = await makeContext({ params, seed: 2 });
  try {
    await synthetic.run(ctx);
    const path = join(ctx.outDir, "pmi.json");
    const doc = JSON.parse(await Deno.readTextFile(path));
    assert.equal(doc.captionLogProb, undefined, "the revealed world's pmi.json is unchanged");
    const bytes = await Deno.readFile(join(ctx.outDir, "pmi.f32"));
    const pmi = new Float32Array(bytes.buffer.slice(bytes.byteOffset));
    const { meta } = await openDataset(ctx.outDir);
    const got = captionLogProbs(path, doc, pmi, meta);
    assert.ok("logPy" in got, JSON.stringify(got));
    // The generator's params come from dataset.json (here not the defaults).
    const model = new SceneModel({ mention: params.mention, attribute_noise: 0.1 });
    doc.captions.forEach((c: { text: string }, j: number) =>
      assert.equal(got.logPy[j], model.captionLogProb(c.text))
    );
    // A grid that the generator does not reproduce is refused.
    pmi[7] += 0.5;
    assert.throws(
      () => captionLogProbs(path, doc, pmi, meta),
      (e: Error) => e instanceof StageInputError && /pmi\.f32 has/.test(e.message),
    );
    // Another source: no p(y), no error.
    assert.ok("missing" in captionLogProbs(path, doc, pmi, { ...meta, source: "toy" }));
  } finally {
    await ctx.cleanup();
  }
});
