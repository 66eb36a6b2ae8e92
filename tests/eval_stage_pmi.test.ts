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
import { pmiFidelity } from "../stages/lib/eval/pmi.ts";
import { Rng } from "../stages/lib/random.ts";
import { encodeImages, encodeTexts } from "../stages/lib/model/io.ts";
import { StageInputError } from "../pipeline/stage.ts";
import { readJson, saveRandomModel, stageContext, writeToyDataset } from "./eval_stage_helpers.ts";

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
