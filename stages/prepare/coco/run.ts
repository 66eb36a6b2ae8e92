/** Heavy part of prepare/coco: optional download, annotations, splits, decode, pack. */
import { basename, join, resolve } from "node:path";
import type { StageContext, StageResult } from "../../../pipeline/stage.ts";
import { DataError } from "../../lib/dataset/errors.ts";
import { type SplitName, SPLITS } from "../../lib/dataset/format.ts";
import { DatasetWriter } from "../../lib/dataset/write.ts";
import { assembleSplits, type CaptionFile, readCaptionFile, readKarpathy } from "./annotations.ts";
import { download, fileChecksum } from "./download.ts";
import { decodeInOrder } from "./images.ts";
import {
  type ArchiveRole,
  ARCHIVES,
  type CocoParams,
  type InputName,
  inputPaths,
  missingHint,
  splitSources,
} from "./stage.ts";
import { extractZip, listZip } from "./zip.ts";

export async function run(ctx: StageContext<CocoParams>): Promise<StageResult> {
  const p = ctx.params;
  const defaults = inputPaths(resolve(ctx.experimentDir, p.root), p.release);
  const path = (name: InputName) => ctx.externals[name] ?? defaults[name];
  let downloaded: Record<string, unknown> | undefined;
  if (p.download) downloaded = await ensureDownloaded(ctx);

  for (const name of Object.keys(defaults) as InputName[]) {
    const want = name.startsWith("images") ? "folder" : "file";
    const st = await Deno.stat(path(name)).catch(() => null);
    if (!st) throw new DataError(path(name), `${want} not found; ${missingHint(p)}`);
    if (want === "folder" ? !st.isDirectory : !st.isFile) {
      throw new DataError(path(name), `is not a ${want}; ${missingHint(p)}`);
    }
  }
  const [trainAnn, valAnn] = await Promise.all([
    readCaptionFile(path("annotations_train"), path("images_train")),
    readCaptionFile(path("annotations_val"), path("images_val")),
  ]);
  const karpathyPath = p.karpathy ? ctx.externals.karpathy ?? p.karpathy : undefined;
  const karpathy = karpathyPath
    ? { path: karpathyPath, entries: await readKarpathy(karpathyPath) }
    : undefined;
  ctx.signal.throwIfAborted();

  const sources = splitSources(p);
  const { splits, origin, available } = assembleSplits({
    sources,
    train: trainAnn,
    val: valAnn,
    karpathy,
    valSize: p.val_size,
    maxImages: p.max_images,
    seed: ctx.seed,
  });

  const writer = await DatasetWriter.create(ctx.outDir, {
    source: "coco",
    description: `MS-COCO ${p.release} captions (every caption of every image); train: ` +
      `${origin.train}; val: ${origin.val}; test: ${origin.test}. Images resized with sharp ` +
      `(${p.resize}) to ${p.image_size}x${p.image_size} RGB.`,
    image: { height: p.image_size, width: p.image_size, channels: 3 },
  });
  const total = SPLITS.reduce((n, s) => n + splits[s].length, 0);
  const window = Math.max(4, 2 * (navigator.hardwareConcurrency || 2));
  const opts = { size: p.image_size, resize: p.resize, failOn: p.fail_on };
  const perImage: Record<string, number> = {};
  let done = 0;
  const started = Date.now();
  ctx.progress.start(total, "images");
  try {
    for (const split of SPLITS) {
      const list = splits[split];
      let i = 0;
      for await (
        const pixels of decodeInOrder(list.map((im) => im.file), opts, window, ctx.signal)
      ) {
        const captions = list[i++].captions;
        perImage[captions.length] = (perImage[captions.length] ?? 0) + 1;
        await writer.add(split, pixels, captions);
        done++;
        const s = (Date.now() - started) / 1000;
        ctx.progress.update(done, { "img/s": s > 0 ? Math.round(done / s) : "-" });
      }
    }
    ctx.progress.stop();
    const ids = Object.fromEntries(SPLITS.map((s) => [s, splits[s].map((im) => im.id)]));
    await writer.addFile("image_ids.json", JSON.stringify(ids) + "\n");
    const describe = async (file: string) => ({
      file: basename(file),
      size: (await Deno.stat(file)).size,
      sha256: (await fileChecksum(file, "sha256")).slice("sha256:".length),
    });
    await writer.finish({
      coco: {
        release: p.release,
        splits: origin,
        available,
        sources: {
          annotations_train: await describe(trainAnn.path),
          annotations_val: await describe(valAnn.path),
          ...(karpathy ? { karpathy: await describe(karpathy.path) } : {}),
          images_train: basename(trainAnn.folder),
          images_val: basename(valAnn.folder),
        },
        annotations: {
          train: counts(trainAnn),
          val: counts(valAnn),
        },
        captions: "every caption of the image, whitespace collapsed and trimmed, ordered by " +
          "annotation id; empty captions dropped; images without captions left out",
        captionsPerImage: perImage,
        resize: {
          mode: p.resize,
          size: p.image_size,
          how: {
            center_crop: "shortest side resized to image_size (sharp, lanczos3), centre cropped",
            stretch: "both sides resized to image_size (aspect ratio not kept)",
            pad: "longest side resized to image_size, centred on black",
          }[p.resize],
          orientation: "EXIF orientation is not applied (as PIL/torchvision loaders)",
        },
        imageIds: "image_ids.json: COCO image id of every image, per split, in order",
        ...(downloaded ? { download: downloaded } : {}),
      },
    });
  } catch (err) {
    writer.abort();
    throw err;
  }
  const captions = Object.fromEntries(
    SPLITS.map((s) => [s, splits[s].reduce((n, im) => n + im.captions.length, 0)]),
  ) as Record<SplitName, number>;
  ctx.log(
    `prepare/coco: train ${splits.train.length}, val ${splits.val.length}, test ` +
      `${splits.test.length} images; ${captions.train + captions.val + captions.test} captions`,
  );
  return {
    metrics: {
      train: splits.train.length,
      val: splits.val.length,
      test: splits.test.length,
      captions: captions.train + captions.val + captions.test,
    },
  };
}

function counts(f: CaptionFile) {
  return {
    images: f.images.size,
    captions: f.captions,
    emptyCaptionsDropped: f.emptyCaptions,
    uncaptionedImages: f.uncaptioned,
  };
}

/** What must exist after extracting each archive. */
function extractedOutputs(root: string): Record<ArchiveRole, string[]> {
  const i = inputPaths(root, "2017");
  return {
    annotations: [i.annotations_train, i.annotations_val],
    train: [i.images_train],
    val: [i.images_val],
  };
}

/**
 * Downloads (resuming), verifies and extracts the three 2017 archives into `root`, unless a
 * marker says an archive with the same checksum was extracted there already.
 */
async function ensureDownloaded(ctx: StageContext<CocoParams>): Promise<Record<string, unknown>> {
  const p = ctx.params;
  const root = resolve(ctx.experimentDir, p.root);
  const dl = join(root, "downloads");
  await Deno.mkdir(dl, { recursive: true });
  const mirror = p.mirror.replace(/\/+$/, "");
  const outputs = extractedOutputs(root);
  const record: Record<string, unknown> = { mirror, archives: {} };
  for (const role of ["annotations", "val", "train"] as const) {
    const rel = ARCHIVES[role];
    const name = basename(rel);
    const archive = join(dl, name);
    const marker = join(dl, `${name}.extracted.json`);
    const url = `${mirror}/${rel}`;
    const checksum = p.checksums[role];
    (record.archives as Record<string, unknown>)[role] = { url, checksum };
    const mark = await Deno.readTextFile(marker).then(JSON.parse, () => null);
    const present = await Promise.all(
      outputs[role].map((o) => Deno.stat(o).then(() => 1, () => 0)),
    );
    if (mark?.checksum === checksum && present.every((x) => x === 1)) {
      ctx.log(`prepare/coco: ${name} already downloaded and extracted (${checksum})`);
      continue;
    }
    await Deno.remove(marker).catch(() => {});
    const bytes = await download({
      url,
      dest: archive,
      checksum,
      retries: p.retries,
      signal: ctx.signal,
      progress: ctx.progress,
      log: ctx.log,
    });
    ctx.log(`prepare/coco: ${name} verified (${checksum}; ${bytes} bytes fetched)`);
    let entries = await listZip(archive);
    if (role === "annotations") {
      const want = new Set(outputs.annotations.map((f) => `annotations/${basename(f)}`));
      entries = entries.filter((e) => want.has(e.name));
      if (entries.length !== want.size) {
        throw new DataError(archive, `does not contain ${[...want].join(" and ")}`);
      }
    } else if (!entries.some((e) => e.name.startsWith(`${role}2017/`))) {
      throw new DataError(archive, `has no ${role}2017/ folder`);
    }
    ctx.progress.start(entries.length, `extract ${name}`);
    const r = await extractZip(archive, root, entries, (d) => ctx.progress.update(d), ctx.signal);
    ctx.progress.stop();
    ctx.log(`prepare/coco: extracted ${r.written} files from ${name} (${r.skipped} were there)`);
    const tmp = `${marker}.tmp`;
    await Deno.writeTextFile(tmp, JSON.stringify({ url, checksum, entries: entries.length }));
    await Deno.rename(tmp, marker);
  }
  return record;
}
