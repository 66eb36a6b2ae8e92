/**
 * The zero-shot stage with a random tiny model (cpu backend) on the toy dataset (8 colour
 * classes): its metrics equal an independent computation from the model's training logits
 * (tfjs) with the documented pooling: CLIP normalise(mean normalised prompt embeddings), KME
 * log mean_t exp s(x, prompt_t). Embeddings of another model are refused.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import embedStage, { EmbedParams } from "../stages/embed/stage.ts";
import stage, { DEFAULT_TEMPLATES, ZeroShotParams } from "../stages/zero-shot/stage.ts";
import { fillTemplate } from "../stages/zero-shot/run.ts";
import { StageInputError } from "../pipeline/stage.ts";
import { encodeImages, encodeTexts } from "../stages/lib/model/io.ts";
import { TOY_COLOURS, toySplit } from "../stages/lib/model/toy.ts";
import {
  handle,
  readJson,
  saveRandomModel,
  stageContext,
  writeToyDataset,
} from "./eval_stage_helpers.ts";

Deno.test("zero-shot: templates fill {class} and the article {a}", () => {
  assert.equal(fillTemplate("a photo of {a} {class}.", "ankle boot"), "a photo of an ankle boot.");
  assert.equal(fillTemplate("{a} {class}", "circle"), "a circle");
  assert.throws(() => ZeroShotParams.parse({ templates: ["no placeholder"] }));
});

for (const similarity of ["kme", "clip"] as const) {
  Deno.test(`zero-shot stage (${similarity}) equals the pooled training similarity`, async () => {
    const root = await Deno.makeTempDir({ prefix: "eval-zeroshot-" });
    const cleanups: (() => Promise<void>)[] = [];
    try {
      const n = 40;
      const data = join(root, "data");
      await writeToyDataset(data, { n });
      const { model, vocab } = await saveRandomModel(join(root, "model"), similarity, {}, 11);
      cleanups.push(() => Promise.resolve(model.dispose()));
      const e = await stageContext(EmbedParams.parse({ backend: "cpu" }), {
        model: handle(join(root, "model"), "model-1"),
        data,
      }, { backend: "cpu" });
      cleanups.push(e.cleanup);
      await embedStage.run(e);

      const params = ZeroShotParams.parse({ backend: "cpu" });
      const ctx = await stageContext(params, {
        model: handle(join(root, "model"), "model-1"),
        embeddings: e.outDir,
        data,
      }, { backend: "cpu" });
      cleanups.push(ctx.cleanup);
      const res = await stage.run(ctx);
      const m = res!.metrics as Record<string, number>;
      const doc = await readJson(join(ctx.outDir, "metrics.json"));
      assert.deepEqual(doc.protocol.templates, DEFAULT_TEMPLATES);
      assert.equal(doc.protocol.name, "zero-shot");

      // Independent: model logits of every image x every prompt, pooled per class.
      const classes = TOY_COLOURS.map(([c]) => c), K = classes.length, T = DEFAULT_TEMPLATES.length;
      const prompts = classes.flatMap((c) => DEFAULT_TEMPLATES.map((t) => fillTemplate(t, c)));
      const s = toySplit(n, 3);
      const labels = s.captions.filter((_, k) => k % 2 === 0).map((c) =>
        classes.indexOf(c.text.split(" ")[1])
      );
      const pi = encodeImages(model, s.images, n);
      const pt = encodeTexts(model, vocab, prompts);
      let scores: Float64Array;
      if (similarity === "kme") {
        const lg = model.logits(pi, pt);
        const v = await lg.data();
        lg.dispose();
        scores = new Float64Array(n * K);
        for (let i = 0; i < n; i++) {
          for (let k = 0; k < K; k++) {
            let mx = -Infinity, sum = 0;
            for (let t = 0; t < T; t++) mx = Math.max(mx, v[i * K * T + k * T + t]);
            for (let t = 0; t < T; t++) sum += Math.exp(v[i * K * T + k * T + t] - mx);
            scores[i * K + k] = mx + Math.log(sum / T);
          }
        }
      } else {
        const u = await pi.points.data(), p = await pt.points.data();
        const d = 16, scale = Math.exp((await model.params.get("logit_scale").data())[0]);
        scores = new Float64Array(n * K);
        for (let k = 0; k < K; k++) {
          const c = new Float64Array(d);
          for (let t = 0; t < T; t++) {
            const o = (k * T + t) * d;
            const norm = Math.hypot(...p.subarray(o, o + d));
            for (let j = 0; j < d; j++) c[j] += p[o + j] / norm / T;
          }
          const cn = Math.hypot(...c);
          for (let i = 0; i < n; i++) {
            let dot = 0;
            for (let j = 0; j < d; j++) dot += u[i * d + j] * c[j] / cn;
            scores[i * K + k] = scale * dot;
          }
        }
      }
      tf.dispose([pi.points, pi.weights, pt.points, pt.weights]);
      let top1 = 0, top5 = 0, minGap = Infinity;
      const hit = new Array(K).fill(0), count = new Array(K).fill(0);
      for (let i = 0; i < n; i++) {
        const own = scores[i * K + labels[i]];
        let rank = 1;
        for (let k = 0; k < K; k++) {
          if (k === labels[i]) continue;
          const x = scores[i * K + k];
          if (x >= own) rank++;
          minGap = Math.min(minGap, Math.abs(x - own));
        }
        count[labels[i]]++;
        if (rank === 1) {
          top1++;
          hit[labels[i]]++;
        }
        if (rank <= 5) top5++;
      }
      // The comparison is meaningful only if no two class scores are within float noise.
      assert.ok(minGap > 1e-4, `class scores too close to compare: ${minGap}`);
      const present = count.map((c, k) => [c, k]).filter(([c]) => c > 0);
      const mpcr = (100 * present.reduce((a, [c, k]) => a + hit[k] / c, 0)) / present.length;
      assert.ok(
        Math.abs(m.top1 - (100 * top1) / n) < 1e-9,
        `top1 ${m.top1} vs ${(100 * top1) / n}`,
      );
      assert.ok(
        Math.abs(m.top5 - (100 * top5) / n) < 1e-9,
        `top5 ${m.top5} vs ${(100 * top5) / n}`,
      );
      assert.ok(Math.abs(m.mean_per_class_recall - mpcr) < 1e-9);

      // Embeddings made by another model are refused.
      const bad = await stageContext(params, {
        model: handle(join(root, "model"), "another-model"),
        embeddings: e.outDir,
        data,
      }, { backend: "cpu" });
      cleanups.push(bad.cleanup);
      await assert.rejects(
        () => stage.run(bad),
        (err: Error) => err instanceof StageInputError && /another model/.test(err.message),
      );
    } finally {
      for (const f of cleanups) await f();
      await Deno.remove(root, { recursive: true });
    }
  });
}
