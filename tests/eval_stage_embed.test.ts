/**
 * The embed stage on a toy dataset with a random tiny model (cpu backend): files, shapes and
 * header; points equal a direct forward pass; streaming in small batches equals one batch;
 * pooled = alpha-weighted mean; max_images prefix; scores from the stored embeddings (eval
 * scorer) equal the model's own training logits.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import stage, { EmbedParams } from "../stages/embed/stage.ts";
import { readEmbeddings } from "../stages/lib/eval/embeddings.ts";
import { scorerFor } from "../stages/lib/eval/similarity_scoring.ts";
import { loadSimilarity } from "../stages/lib/similarity/registry.ts";
import { softmaxWeightedMeans } from "../stages/lib/similarity/point_sets.ts";
import { encodeImages, encodeTexts } from "../stages/lib/model/io.ts";
import { toySplit } from "../stages/lib/model/toy.ts";
import { saveRandomModel, stageContext, writeToyDataset } from "./eval_stage_helpers.ts";

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue; // also -Infinity == -Infinity
    m = Math.max(m, Math.abs(a[i] - b[i]));
  }
  return m;
}

async function embed(dataDir: string, modelDir: string, params: Partial<EmbedParams>) {
  const ctx = await stageContext(EmbedParams.parse({ backend: "cpu", ...params }), {
    model: modelDir,
    data: dataDir,
  }, { backend: "cpu" });
  const res = await stage.run(ctx);
  return { ctx, res };
}

for (const similarity of ["kme", "clip"] as const) {
  Deno.test(`embed stage (${similarity}): stored point sets equal the model's forward pass`, async () => {
    const root = await Deno.makeTempDir({ prefix: "eval-embed-" });
    const cleanups: (() => Promise<void>)[] = [];
    try {
      const data = join(root, "data");
      await writeToyDataset(data, { n: 20 });
      const { model, vocab } = await saveRandomModel(join(root, "model"), similarity);
      cleanups.push(() => Promise.resolve(model.dispose()));

      // Small batches (streamed over 4 image batches and 7 caption batches) vs one batch.
      const a = await embed(data, join(root, "model"), { batch_size: 6 });
      const b = await embed(data, join(root, "model"), { batch_size: 64 });
      cleanups.push(a.ctx.cleanup, b.ctx.cleanup);
      assert.deepEqual(a.res!.metrics, { images: 20, captions: 40 });
      const files = [...Deno.readDirSync(a.ctx.outDir)].map((e) => e.name).sort();
      assert.deepEqual(files, [
        "captions.image.i32",
        "captions.logits.f32",
        "captions.points.f32",
        "captions.text.i32",
        "embeddings.json",
        "images.labels.i32",
        "images.logits.f32",
        "images.points.f32",
        "images.pooled.f32",
      ]);
      const ea = await readEmbeddings(a.ctx.outDir);
      const eb = await readEmbeddings(b.ctx.outDir);
      const h = ea.header;
      const M = similarity === "clip" ? 1 : 16, N = similarity === "clip" ? 1 : 8;
      assert.equal(h.format, "kme-embeddings/2");
      assert.equal(h.similarity.name, similarity);
      assert.deepEqual(h.similarity.params, model.config.similarity.params);
      assert.deepEqual([h.M, h.N, h.dim], [M, N, 16]);
      assert.deepEqual(h.counts, {
        images: 20,
        captions: 40,
        split_images: 20,
        distinct_texts: new Set(toySplit(20, 3).captions.map((c) => c.text)).size,
      });
      assert.equal(h.has_labels, true);
      assert.equal(h.class_names?.length, 8);
      assert.equal(h.files["images.points.f32"].shape.join(), `20,${M},16`);
      const v = h.similarity.values!;
      if (similarity === "clip") {
        assert.ok(
          v.logit_scale > 14 && v.logit_scale < 14.3 && !("sigma2" in v),
          JSON.stringify(v),
        );
      } else {assert.ok(
          Math.abs(v.sigma2 - 0.07) < 1e-6 && !("logit_scale" in v),
          JSON.stringify(v),
        );}
      assert.deepEqual(h.probe, { dim: 16, features: model.sim.probeDoc });
      assert.ok(maxAbsDiff(ea.images!.data, eb.images!.data) < 1e-5);
      assert.ok(maxAbsDiff(ea.captions!.logits, eb.captions!.logits) < 1e-5);

      // Against a direct forward pass over the whole split.
      const s = toySplit(20, 3);
      const ps = encodeImages(model, s.images, 20);
      const pt = encodeTexts(model, vocab, s.captions.map((c) => c.text));
      assert.ok(maxAbsDiff(ea.images!.data, await ps.points.data()) < 1e-5);
      assert.ok(maxAbsDiff(ea.images!.logits, await ps.weights.data()) < 1e-5);
      assert.ok(maxAbsDiff(ea.captions!.data, await pt.points.data()) < 1e-5);
      assert.ok(maxAbsDiff(ea.captions!.logits, await pt.weights.data()) < 1e-5);
      if (similarity === "kme") {
        // Padding tokens of the captions are marked -Infinity (toy captions have < 8 words).
        assert.ok(ea.captions!.logits.some((x) => x === -Infinity));
      }
      assert.deepEqual([...ea.captionImage!], s.captions.map((c) => c.image));
      // Text ids: equal texts get equal ids, in order of first occurrence.
      const texts = s.captions.map((c) => c.text);
      assert.deepEqual([...ea.captionText!], texts.map((t) => [...new Set(texts)].indexOf(t)));
      assert.deepEqual([...ea.labels!], [...(await readEmbeddings(b.ctx.outDir)).labels!]);
      assert.ok(
        maxAbsDiff(
          ea.pooled!,
          softmaxWeightedMeans({
            n: 20,
            points: M,
            dim: 16,
            data: ea.images!.data,
            logits: ea.images!.logits,
          }),
        ) === 0,
      );
      if (similarity === "clip") assert.deepEqual(ea.pooled, ea.images!.data);

      // The evaluation scorer on the stored sets == the model's training logits.
      const logits = model.logits(ps, pt);
      const want = await logits.data();
      const sc = await scorerFor(await loadSimilarity(h.similarity), ea.images!, ea.captions!);
      const got = await sc.scoreBlock(0, 20, 0, 40);
      sc.close();
      const scale = Math.max(...Array.from(want, Math.abs));
      assert.ok(maxAbsDiff(got, want) < 1e-4 * Math.max(1, scale), `${maxAbsDiff(got, want)}`);
      tf.dispose([ps.points, ps.weights, pt.points, pt.weights, logits]);

      // max_images: a prefix of the split with its captions.
      const c = await embed(data, join(root, "model"), { max_images: 5, split: "test" });
      cleanups.push(c.ctx.cleanup);
      const ec = await readEmbeddings(c.ctx.outDir);
      assert.deepEqual(ec.header.counts.images, 5);
      assert.deepEqual(ec.header.counts.captions, 10);
      assert.ok(maxAbsDiff(ec.images!.data, ea.images!.data.subarray(0, 5 * M * 16)) < 1e-5);
    } finally {
      for (const f of cleanups) await f();
      await Deno.remove(root, { recursive: true });
    }
  });
}
