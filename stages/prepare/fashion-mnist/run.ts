/** Heavy part of prepare/fashion-mnist. */
import type { StageContext, StageResult } from "../../../pipeline/stage.ts";
import { DataError } from "../../lib/dataset/errors.ts";
import { DatasetWriter } from "../../lib/dataset/write.ts";
import type { SplitName } from "../../lib/dataset/format.ts";
import { labelSeed, Rng } from "../../lib/random.ts";
import { type IdxArray, readIdx } from "./idx.ts";
import { type FashionMnistParams, type FileKey, FILES, inputPath } from "./stage.ts";

/** Label i's name (the dataset's own names, lower-cased). */
export const CLASS_NAMES = [
  "t-shirt/top",
  "trouser",
  "pullover",
  "dress",
  "coat",
  "sandal",
  "shirt",
  "sneaker",
  "bag",
  "ankle boot",
];
/** Label i's caption phrase, with article. */
export const CLASS_PHRASES = [
  "a t-shirt",
  "a pair of trousers",
  "a pullover",
  "a dress",
  "a coat",
  "a sandal",
  "a shirt",
  "a sneaker",
  "a bag",
  "an ankle boot",
];
export const SUPERCLASSES: Record<string, string[]> = {
  tops: ["t-shirt/top", "pullover", "coat", "shirt"],
  bottoms: ["trouser"],
  dresses: ["dress"],
  footwear: ["sandal", "sneaker", "ankle boot"],
  bags: ["bag"],
};
const SIDE = 28;

export const INSTALL_HINT = " (install Fashion-MNIST with `apt-get install -y " +
  "dataset-fashion-mnist`, which puts it in /usr/share/datasets/fashion-mnist, or set the " +
  "stage's `root` param to a folder holding " + Object.values(FILES).join(", ") + ")";

export async function run(ctx: StageContext<FashionMnistParams>): Promise<StageResult> {
  const p = ctx.params;
  const path = (key: FileKey) => ctx.externals[key] ?? inputPath(p.root, key);
  try {
    const info = await Deno.stat(p.root);
    if (!info.isDirectory) throw new DataError(p.root, `is not a folder${INSTALL_HINT}`);
  } catch (err) {
    if (err instanceof DataError) throw err;
    if (!ctx.externals.trainImages) {
      throw new DataError(p.root, `Fashion-MNIST folder not found${INSTALL_HINT}`, {
        cause: err,
      });
    }
  }

  const train = await readPair(path("trainImages"), path("trainLabels"));
  const test = await readPair(path("testImages"), path("testLabels"));
  ctx.signal.throwIfAborted();

  // Stratified, seeded validation carve: each class gives its share (largest remainder).
  const valSet = carveValidation(train.labels, p.val_size, labelSeed(ctx.seed, "fashion", "val"));
  const trainIdx: number[] = [];
  const valIdx: number[] = [];
  for (let i = 0; i < train.labels.length; i++) (valSet[i] ? valIdx : trainIdx).push(i);

  const superOf = CLASS_NAMES.map((c) =>
    Object.keys(SUPERCLASSES).find((s) => SUPERCLASSES[s].includes(c))!
  );
  const writer = await DatasetWriter.create(ctx.outDir, {
    source: "fashion-mnist",
    description: "Fashion-MNIST (Zalando) from the Debian package; val carved from train " +
      "(stratified); captions from class-name templates.",
    image: { height: p.image_size, width: p.image_size, channels: p.channels },
    classNames: CLASS_NAMES,
    superclasses: SUPERCLASSES,
  });
  const out = new Uint8Array(p.image_size * p.image_size * p.channels);
  const pad = Math.floor((p.image_size - SIDE) / 2);
  const identity = p.image_size === SIDE && p.channels === 1;
  const total = trainIdx.length + valIdx.length + test.labels.length;
  let done = 0;
  ctx.progress.start(total, "images");
  const jobs: [SplitName, IdxPair, number[] | null][] = [
    ["train", train, trainIdx],
    ["val", train, valIdx],
    ["test", test, null],
  ];
  try {
    for (const [split, src, indices] of jobs) {
      const rng = new Rng(labelSeed(ctx.seed, "fashion", split, "captions"));
      const n = indices ? indices.length : src.labels.length;
      const order = Array.from({ length: p.templates.length }, (_, k) => k);
      for (let k = 0; k < n; k++) {
        if ((done & 1023) === 0) {
          ctx.signal.throwIfAborted();
          ctx.progress.update(done);
        }
        const i = indices ? indices[k] : k;
        const label = src.labels[i];
        const img = src.images.subarray(i * SIDE * SIDE, (i + 1) * SIDE * SIDE);
        let pixels: Uint8Array;
        if (identity) {
          pixels = img;
        } else {
          out.fill(0);
          for (let y = 0; y < SIDE; y++) {
            for (let x = 0; x < SIDE; x++) {
              const v = img[y * SIDE + x];
              const o = ((y + pad) * p.image_size + (x + pad)) * p.channels;
              for (let c = 0; c < p.channels; c++) out[o + c] = v;
            }
          }
          pixels = out;
        }
        // captions_per_image distinct templates: a partial Fisher-Yates shuffle.
        const captions: string[] = [];
        for (let c = 0; c < p.captions_per_image; c++) {
          const j = c + rng.int(order.length - c);
          [order[c], order[j]] = [order[j], order[c]];
          captions.push(
            p.templates[order[c]]
              .replaceAll("{class}", CLASS_PHRASES[label])
              .replaceAll("{superclass}", superOf[label]),
          );
        }
        await writer.add(split, pixels, captions, label);
        done++;
      }
    }
    ctx.progress.update(done);
    ctx.progress.stop();
    await writer.finish({
      fashionMnist: {
        valFromTrain: p.val_size,
        trainIndices: "train and val keep the original order of the 60k training images",
        padding: pad,
      },
    });
  } catch (err) {
    writer.abort();
    throw err;
  }
  ctx.log(
    `prepare/fashion-mnist: train ${trainIdx.length}, val ${valIdx.length}, test ` +
      `${test.labels.length} images`,
  );
  return {
    metrics: {
      train: trainIdx.length,
      val: valIdx.length,
      test: test.labels.length,
      captions: total * p.captions_per_image,
    },
  };
}

interface IdxPair {
  images: Uint8Array;
  labels: Uint8Array;
}

async function readPair(imagesPath: string, labelsPath: string): Promise<IdxPair> {
  const images: IdxArray = await readIdx(imagesPath, 3, INSTALL_HINT);
  const labels: IdxArray = await readIdx(labelsPath, 1, INSTALL_HINT);
  const [n, rows, cols] = images.dims;
  if (rows !== SIDE || cols !== SIDE) {
    throw new DataError(imagesPath, `images are ${rows}x${cols}, expected ${SIDE}x${SIDE}`);
  }
  if (labels.dims[0] !== n) {
    throw new DataError(
      labelsPath,
      `has ${labels.dims[0]} labels for ${n} images in ${imagesPath}`,
    );
  }
  for (let i = 0; i < n; i++) {
    if (labels.data[i] >= CLASS_NAMES.length) {
      throw new DataError(labelsPath, `label ${labels.data[i]} of item ${i} is not in 0..9`);
    }
  }
  return { images: images.data, labels: labels.data };
}

/** Marks `size` items for validation, stratified by label with largest-remainder quotas. */
export function carveValidation(labels: Uint8Array, size: number, seed: number): Uint8Array {
  const n = labels.length;
  if (size > n) throw new RangeError(`val_size ${size} exceeds ${n} training images`);
  const byClass: number[][] = [];
  for (let i = 0; i < n; i++) (byClass[labels[i]] ??= []).push(i);
  const classes = byClass.map((_, c) => c).filter((c) => byClass[c]);
  const exact = classes.map((c) => (size * byClass[c].length) / n);
  const quota = exact.map(Math.floor);
  let left = size - quota.reduce((a, b) => a + b, 0);
  const byRemainder = classes.map((_, k) => k).sort((a, b) =>
    (exact[b] - quota[b]) - (exact[a] - quota[a]) || a - b
  );
  for (const k of byRemainder) {
    if (left === 0) break;
    quota[k]++;
    left--;
  }
  const rng = new Rng(seed);
  const marked = new Uint8Array(n);
  classes.forEach((c, k) => {
    const members = rng.shuffle(byClass[c].slice());
    for (let j = 0; j < quota[k]; j++) marked[members[j]] = 1;
  });
  return marked;
}
