/** Heavy part of the embed stage: batched, streamed encoding of one split. */
import { join } from "node:path";
import { type StageContext, StageInputError, type StageResult } from "../../pipeline/stage.ts";
import { openDataset } from "../lib/dataset/read.ts";
import type { BackendName } from "../lib/tf/backend.ts";
import { EmbeddingsWriter } from "../lib/eval/embeddings.ts";
import { encodeImageBatch, encodeTextBatch, openModel } from "../lib/model/encode.ts";
import type { EmbedParams } from "./stage.ts";

export async function run(ctx: StageContext<EmbedParams>): Promise<StageResult> {
  const p = ctx.params;
  const { model: modelIn, data } = ctx.inputs;
  if (!modelIn || !data) throw new StageInputError("embed needs the inputs `model` and `data`");
  const ds = await openDataset(data.dir);
  const split = ds.split(p.split);
  const n = p.max_images > 0 ? Math.min(p.max_images, split.numImages) : split.numImages;
  if (n === 0) {
    throw new StageInputError(
      `split "${p.split}" of ${join(data.dir, "dataset.json")} has no images`,
      join(data.dir, "dataset.json"),
    );
  }
  const nc = split.captionOffsets[n];

  const m = await openModel(modelIn.dir, (ctx.facets.backend ?? p.backend) as BackendName);
  const cfg = m.model.config;
  const im = ds.meta.image;
  if (
    im.height !== cfg.image.height || im.width !== cfg.image.widthPx ||
    im.channels !== cfg.image.channels
  ) {
    throw new StageInputError(
      `dataset images are ${im.height}x${im.width}x${im.channels}, the model expects ` +
        `${cfg.image.height}x${cfg.image.widthPx}x${cfg.image.channels}`,
      join(data.dir, "dataset.json"),
    );
  }
  ctx.log(
    `backend ${m.backend.backend} ${m.backend.version}; ${cfg.similarity.name} model, M=${m.M} ` +
      `N=${m.N} ` +
      `d=${m.dim}; split ${p.split}: ${n} of ${split.numImages} images, ${nc} captions`,
  );

  const labels = split.labels;
  const sim = m.similarity;
  const w = await EmbeddingsWriter.create(ctx.outDir, {
    M: m.M,
    N: m.N,
    dim: m.dim,
    labels: labels !== undefined,
    probe: (sets) => sim.sim.probeFeatures(sets, sim.params, sim.values),
    probeDoc: sim.sim.probeDoc,
  });
  const t0 = performance.now();
  try {
    const bs = p.batch_size;
    const buf = new Uint8Array(bs * split.imageBytes);
    ctx.progress.start(n + nc, "embed");
    for (let s = 0; s < n; s += bs) {
      ctx.signal.throwIfAborted();
      const b = Math.min(bs, n - s);
      const pixels = await split.readImages(s, b, buf);
      const e = await encodeImageBatch(m, pixels.subarray(0, b * split.imageBytes), b);
      await w.addImages(e.points, e.logits, labels?.slice(s, s + b));
      ctx.progress.update(s + b);
    }
    const texts = split.captions;
    for (let s = 0; s < nc; s += bs) {
      ctx.signal.throwIfAborted();
      const b = Math.min(bs, nc - s);
      const batch = texts.slice(s, s + b);
      const e = await encodeTextBatch(m, batch.map((c) => c.text));
      await w.addCaptions(
        e.points,
        e.logits,
        Int32Array.from(batch, (c) => c.image),
        batch.map((c) => c.text),
      );
      ctx.progress.update(n + s + b);
    }
    ctx.progress.stop();
  } catch (e) {
    w.close();
    throw e;
  } finally {
    m.model.dispose();
  }
  const seconds = (performance.now() - t0) / 1000;
  const training = m.header.training ?? {};
  await w.finish({
    similarity: sim.record,
    split: p.split,
    counts: { images: n, captions: nc, split_images: split.numImages },
    M: m.M,
    N: m.N,
    dim: m.dim,
    has_labels: labels !== undefined,
    class_names: ds.meta.classNames ?? null,
    model: {
      digest: modelIn.digest,
      points: m.M === 1 && m.N === 1 ? "single" : cfg.points,
      embed_dim: m.dim,
      ...(typeof training.steps === "number" ? { steps: training.steps } : {}),
    },
    dataset: { source: ds.meta.source, digest: data.digest, image: im },
  });
  ctx.log(`encoded ${n} images and ${nc} captions in ${seconds.toFixed(1)} s`);
  return {
    metrics: { images: n, captions: nc },
    info: {
      backend: m.backend.backend,
      version: m.backend.version,
      threads: m.backend.threads,
      seconds,
      items_per_s: (n + nc) / Math.max(seconds, 1e-9),
    },
  };
}
