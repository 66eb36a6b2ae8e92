/** Heavy part of the retrieval stage: chunked scoring, ranks, metrics and rank files. */
import { join } from "node:path";
import { type StageContext, StageInputError, type StageResult } from "../../pipeline/stage.ts";
import { readEmbeddings } from "../lib/eval/embeddings.ts";
import { describeSimilarity, scorerFor } from "../lib/eval/similarity_scoring.ts";
import { loadSimilarity } from "../lib/similarity/registry.ts";
import { cocoRetrieval, retrievalMetricNames } from "../lib/eval/retrieval/mod.ts";
import { resolveKmeEngine } from "../lib/eval/engine_param.ts";
import { loadOpenBlas } from "../lib/eval/openblas.ts";
import type { RetrievalParams } from "./stage.ts";

export { METRICS_FILE } from "../lib/eval/metrics_file.ts";
import { writeMetricsFile } from "../lib/eval/metrics_file.ts";
export const RANKS_I2T = "ranks_i2t.i32";
export const RANKS_T2I = "ranks_t2i.i32";
export const CAPTION_IMAGE = "caption_image.i32";

function bytes(a: Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export async function run(ctx: StageContext<RetrievalParams>): Promise<StageResult> {
  const p = ctx.params;
  const input = ctx.inputs.embeddings;
  if (!input) throw new StageInputError("retrieval needs the input `embeddings`");
  const emb = await readEmbeddings(input.dir, { images: true, captions: true });
  if (p.duplicate_texts === "text" && !emb.captionText) {
    throw new StageInputError(
      `${join(input.dir, "embeddings.json")}: no captions.text.i32; duplicate_texts: text needs it`,
      join(input.dir, "embeddings.json"),
    );
  }
  const h = emb.header;
  const captionImage = emb.captionImage!;
  const perImage = new Int32Array(h.counts.images);
  for (const i of captionImage) perImage[i]++;
  const bare = perImage.indexOf(0);
  if (bare >= 0) {
    throw new StageInputError(
      `${join(input.dir, "captions.image.i32")}: image ${bare} has no caption; retrieval needs ` +
        "at least one caption per image",
      join(input.dir, "captions.image.i32"),
    );
  }
  const sim = await loadSimilarity(h.similarity);
  let openblas: string | undefined;
  let backend: "wasm" | "blas" | undefined;
  if (sim.sim.scoring.kind === "kernel") {
    backend = (ctx.facets.kme_engine ?? resolveKmeEngine(p.kme_engine)) as "wasm" | "blas";
    // Loaded here first so that a missing library fails clearly, not inside a worker.
    if (backend === "blas") openblas = loadOpenBlas().config;
  }
  const scorer = await scorerFor(sim, emb.images!, emb.captions!, { backend, workers: p.workers });
  ctx.log(
    `${h.counts.images} images x ${h.counts.captions} captions (split ${h.split}); ` +
      `scorer: ${scorer.description}`,
  );
  const t0 = performance.now();
  let started = false;
  let r;
  try {
    r = await cocoRetrieval(scorer, captionImage, {
      nImages: h.counts.images,
      foldSize: p.fold_size,
      duplicateTextRule: p.duplicate_texts,
      captionText: p.duplicate_texts === "text" ? emb.captionText : undefined,
      imageBlock: p.image_block,
      captionBlock: p.caption_block,
      split: h.split,
      similarity: describeSimilarity(sim),
      onProgress: (done, total) => {
        if (!started) ctx.progress.start(total, "retrieval blocks");
        started = true;
        ctx.progress.update(done);
      },
    });
  } finally {
    scorer.close();
    if (started) ctx.progress.stop();
  }
  const seconds = (performance.now() - t0) / 1000;
  const metrics: Record<string, number> = retrievalMetricNames(r["5k"]);
  if (r["1k"]) Object.assign(metrics, retrievalMetricNames(r["1k"], "1k_"));
  const protocol = {
    ...r["5k"].protocol,
    metricNames: "i2t_/t2i_ R@K (percent), median_rank, mean_rank (1-based); rsum; the 1k " +
      "protocol's fold means carry the prefix 1k_",
    scorer: scorer.description,
    ...(openblas ? { openblas } : {}),
    "1k": r["1k"]?.protocol ?? { skipped: r.protocol1kSkipped },
    ranksFiles: {
      [RANKS_I2T]: "int32 little-endian, one 1-based rank per image (5k/all protocol)",
      [RANKS_T2I]: "int32 little-endian, one 1-based rank per caption instance (5k/all)",
      [CAPTION_IMAGE]: "int32 little-endian, the image of each caption (bootstrap clusters)",
    },
  };
  await writeMetricsFile(ctx.outDir, "retrieval", protocol, metrics, {
    folds_1k: r["1k"]?.folds.map((f) => retrievalMetricNames(f)) ?? null,
  });
  await Deno.writeFile(join(ctx.outDir, RANKS_I2T), bytes(r["5k"].ranks.imageToText));
  await Deno.writeFile(join(ctx.outDir, RANKS_T2I), bytes(r["5k"].ranks.textToImage));
  await Deno.writeFile(join(ctx.outDir, CAPTION_IMAGE), bytes(captionImage));
  ctx.log(
    `R@1 i2t ${metrics["i2t_R@1"].toFixed(2)} t2i ${metrics["t2i_R@1"].toFixed(2)}, rsum ` +
      `${metrics.rsum.toFixed(2)} (${seconds.toFixed(1)} s)`,
  );
  return { metrics, info: { scorer: scorer.description, seconds } };
}
