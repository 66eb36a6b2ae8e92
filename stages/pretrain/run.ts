/** Heavy part of the pretrain stage: opens the dataset, builds the model, trains, saves. */
import { join } from "node:path";
import { type StageContext, StageInputError, type StageResult } from "../../pipeline/stage.ts";
import { openDataset } from "../lib/dataset/read.ts";
import { type BackendName, initBackend } from "../lib/tf/backend.ts";
import { BatchSource } from "../lib/model/data.ts";
import { saveModel } from "../lib/model/io.ts";
import { ContrastiveModel, type ModelConfig } from "../lib/model/model.ts";
import { keySeed } from "../lib/random.ts";
import { infoNce } from "../lib/model/loss.ts";
import { builtinOf, fileSha256, isModulePath, loadSimilarity } from "../lib/similarity/registry.ts";
import type { SimilarityRecord } from "../lib/similarity/similarity.ts";
import { type LogRecord, train, type TrainOptions } from "../lib/model/train.ts";
import { Vocab } from "../lib/model/vocab.ts";
import { formatDuration, project } from "./projection.ts";
import type { PretrainParams } from "./stage.ts";

export const LOG_FILE = "train_log.jsonl";

/**
 * The similarity as the model records it: a built-in's own params (picked out of pretrain's,
 * which refineParams resolved), or a plugin's `similarity_params` with its module and code digest.
 */
export function similarityRecordOf(
  p: PretrainParams,
  modules: Record<string, { path: string; digest: string }>,
): SimilarityRecord {
  if (isModulePath(p.similarity)) {
    const m = modules.similarity;
    if (!m) throw new Error(`similarity module ${p.similarity} was not resolved by the engine`);
    const module = { path: m.path, digest: m.digest, sha256: fileSha256(m.path) };
    return { name: p.similarity, module, params: p.similarity_params };
  }
  const b = builtinOf(p.similarity);
  if (!b) throw new Error(`unknown similarity '${p.similarity}'`);
  const all = p as unknown as Record<string, unknown>;
  const params = Object.fromEntries(Object.keys(b.sim.params.shape).map((k) => [k, all[k]]));
  return { name: p.similarity, params };
}

export function modelConfigFromParams(
  p: PretrainParams,
  image: { height: number; width: number; channels: number },
  vocabSize: number,
  similarity: SimilarityRecord,
): ModelConfig {
  return {
    similarity,
    embedDim: p.embed_dim,
    image: {
      height: image.height,
      widthPx: image.width,
      channels: image.channels,
      patch: p.patch,
      width: p.vision_width,
      depth: p.vision_depth,
      heads: p.vision_heads,
      mlp: p.vision_mlp,
    },
    text: {
      maxLen: p.max_len,
      vocabSize,
      width: p.text_width,
      depth: p.text_depth,
      heads: p.text_heads,
      mlp: p.text_mlp,
    },
    points: p.points,
    numQueries: p.num_queries,
  };
}

export function trainOptionsFromParams(p: PretrainParams): TrainOptions {
  return {
    steps: p.steps,
    lr: p.lr,
    warmup: p.warmup,
    minLrRatio: p.min_lr_ratio,
    weightDecay: p.weight_decay,
    beta1: p.beta1,
    beta2: p.beta2,
    eps: p.eps,
    gradClip: p.grad_clip,
    logEvery: p.log_every,
    checkpointEvery: p.checkpoint_every,
  };
}

export async function run(ctx: StageContext<PretrainParams>): Promise<StageResult> {
  const p = ctx.params;
  const data = ctx.inputs.data;
  if (data === undefined) throw new StageInputError("pretrain needs the input `data`");
  const ds = await openDataset(data.dir);
  const trainSplit = ds.split("train");
  const im = ds.meta.image;
  if (im.height % p.patch !== 0 || im.width % p.patch !== 0) {
    throw new StageInputError(
      `images are ${im.height}x${im.width}, not divisible by patch ${p.patch}`,
      join(data.dir, "dataset.json"),
    );
  }

  const backendName = (ctx.facets.backend ?? p.backend) as BackendName;
  const be = await initBackend(backendName);
  const tf = be.tf;
  ctx.log(
    `backend ${be.backend} ${be.version}, threads ${be.threads}` +
      (be.adapter ? `, adapter ${be.adapter}` : ""),
  );

  const vocab = Vocab.build(trainSplit.captions.map((c) => c.text), {
    maxSize: p.vocab_size,
    minCount: p.min_count,
  });
  const record = similarityRecordOf(p, ctx.modules);
  const { sim } = await loadSimilarity(record);
  const config = modelConfigFromParams(p, im, vocab.size, record);
  const imageBytes = im.height * im.width * im.channels;
  let source: BatchSource;
  try {
    source = new BatchSource(trainSplit, vocab, {
      batchSize: p.batch_size,
      maxLen: p.max_len,
      seed: keySeed(ctx.seed, 2),
      imageBytes,
      cacheBytes: p.cache_mb * 2 ** 20,
    });
  } catch (e) {
    throw new StageInputError(`train split: ${(e as Error).message}`, data.dir);
  }
  if (await source.preload()) {
    ctx.log(`train split cached in memory (${trainSplit.numImages} images)`);
  }

  const model = ContrastiveModel.create(config, keySeed(ctx.seed, 1), sim);
  ctx.log(
    `${p.similarity} model: ${model.params.count()} parameters, vocabulary ${vocab.size}, ` +
      `${source.usable.length} captioned images, ${source.batchesPerEpoch} batches/epoch`,
  );
  const ckptDir = join(ctx.scratch, "checkpoint");
  const logPath = join(ctx.scratch, LOG_FILE);
  const o = trainOptionsFromParams(p);
  const validate = validation(tf, model, ds.split("val"), vocab, p, imageBytes);
  if (p.val_batches > 0 && !validate) {
    ctx.log(`val split has fewer than ${p.batch_size} captioned images: no validation loss`);
  }
  try {
    ctx.progress.start(p.steps, "pretrain");
    let logRecords = 0;
    const progressEvery = Math.max(
      p.log_every,
      Math.ceil(p.steps / 10 / p.log_every) * p.log_every,
    );
    const result = await train({
      model,
      source,
      options: o,
      checkpointDir: ckptDir,
      logPath,
      signal: ctx.signal,
      log: ctx.log,
      onCheckpoint: async (step) => {
        await ctx.resumePoint?.(`checkpoint at step ${step} of ${p.steps}`);
      },
      ...(validate && validate.every > 0 ? { validate } : {}),
      onStep: (step, loss, sps) =>
        ctx.progress.update(step, { loss: loss.toFixed(4), "samples/s": sps.toFixed(1) }),
      onLog: (rec) => {
        // About ten lines in the stage's log (kme log, the dashboard): step, loss, val_loss.
        if (rec.step % progressEvery === 0 || rec.step === p.steps) {
          ctx.log(
            `step ${rec.step}/${p.steps}: loss ${rec.loss.toFixed(4)}` +
              (rec.val_loss !== undefined ? `, val_loss ${rec.val_loss.toFixed(4)}` : "") +
              `, ${rec.samples_per_s.toFixed(1)} samples/s`,
          );
        }
        if (++logRecords !== 2) return;
        const pr = project(p.steps, rec.step, p.batch_size, rec.samples_per_s);
        ctx.log(
          `projected: ${formatDuration(pr.totalS)} for ${p.steps} steps, ` +
            `${formatDuration(pr.remainingS)} to go (${rec.samples_per_s.toFixed(1)} samples/s ` +
            `over the last ${p.log_every} steps, on ${be.backend})`,
        );
      },
    });
    ctx.progress.stop();

    // Loss curve from the whole log (including steps run before a resume).
    const logged = (await Deno.readTextFile(logPath)).split("\n").filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l) as LogRecord);

    const metrics: Record<string, number | number[]> = {
      final_loss: result.finalLoss,
      last_loss: result.lastLoss,
      steps: result.steps,
      samples_per_s: result.samplesPerSec,
      loss_curve: logged.map((r) => r.loss),
      ...result.scalars,
    };
    if (validate) {
      // The last step's validation is in the log unless validation ran only at the end.
      const last = logged.at(-1);
      const val = last?.step === result.steps && last.val_loss !== undefined
        ? last.val_loss
        : await validate.loss();
      if (val !== undefined) metrics.val_loss = val;
    }
    await saveModel(ctx.outDir, model, vocab, {
      steps: result.steps,
      final_loss: result.finalLoss,
      backend: be.backend,
      backend_version: be.version,
      seed: ctx.seed,
    });
    // The published curve leaves out the timings (kept in the scratch log and the manifest's
    // metrics): out/ must be the same bytes for the same weights, or early cutoff breaks and
    // every stage below a retrain reruns (issue 17).
    await Deno.writeTextFile(
      join(ctx.outDir, LOG_FILE),
      logged.map(({ elapsed_s: _e, samples_per_s: _s, ...r }) => JSON.stringify(r) + "\n")
        .join(""),
    );
    return {
      metrics,
      info: {
        backend: be.backend,
        version: be.version,
        threads: be.threads,
        ...(be.adapter ? { adapter: be.adapter } : {}),
        tfjs_core: tf.version_core,
        parameters: model.params.count(),
        vocab_size: vocab.size,
        resumed_from: result.resumedFrom,
      },
    };
  } finally {
    model.dispose();
  }
}

/** The interval between validations: `val_every`, or about ten over the run on log steps. */
export function validationEvery(p: PretrainParams): number {
  if (p.val_every !== undefined) return p.val_every;
  return Math.max(p.log_every, Math.ceil(p.steps / 10 / p.log_every) * p.log_every);
}

/**
 * Mean InfoNCE loss over up to `val_batches` fixed batches of the val split: the same batches at
 * every call and for every model. Undefined when `val_batches` is 0 or the split is smaller than
 * one batch.
 */
function validation(
  tf: typeof import("@tensorflow/tfjs-core"),
  model: ContrastiveModel,
  split: import("../lib/model/data.ts").SplitLike,
  vocab: Vocab,
  p: PretrainParams,
  imageBytes: number,
): { every: number; loss(): Promise<number> } | undefined {
  if (p.val_batches === 0) return undefined;
  let src: BatchSource;
  try {
    src = new BatchSource(split, vocab, {
      batchSize: p.batch_size,
      maxLen: p.max_len,
      seed: 0x7a1, // fixed: every model is scored on the same val batches
      imageBytes,
    });
  } catch {
    return undefined; // val split smaller than one batch
  }
  const im = model.config.image;
  const n = Math.min(p.val_batches, src.batchesPerEpoch);
  const loss = async () => {
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const b = await src.batch(i);
      const t = tf.tidy(() => {
        const x = tf.tensor4d(b.images, [b.size, im.height, im.widthPx, im.channels], "int32");
        const ids = tf.tensor2d(b.ids, [b.size, p.max_len], "int32");
        return infoNce(model.logits(model.encodeImages(x), model.encodeTexts(ids)));
      });
      sum += (await t.data())[0];
      t.dispose();
    }
    return sum / n;
  };
  return { every: validationEvery(p), loss };
}
