/**
 * COCO caption annotations and Karpathy's split file: parsing (with errors that name the file)
 * and the assembly of train/val/test, including the refusal of any train/val image that is
 * also a test image.
 */
import { join } from "node:path";
import { DataError, isNotFound } from "../../lib/dataset/errors.ts";
import { labelSeed, Rng } from "../../lib/random.ts";
import type { SplitName } from "../../lib/dataset/format.ts";
import type { SplitSource } from "./stage.ts";

export interface CocoImage {
  id: number;
  /** Absolute path of the JPEG. */
  file: string;
  /** Every caption, whitespace-normalised, in annotation-id order. */
  captions: string[];
}

export interface CaptionFile {
  path: string;
  folder: string;
  images: Map<number, CocoImage>;
  captions: number;
  /** Captions that were empty after whitespace normalisation (dropped). */
  emptyCaptions: number;
  /** Images listed without any caption (left out of every split). */
  uncaptioned: number;
}

export interface KarpathyEntry {
  cocoid: number;
  split: "train" | "val" | "test" | "restval";
  filename: string;
}

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (isNotFound(err)) throw new DataError(path, `${what} not found`, { cause: err });
    throw new DataError(path, `cannot read ${what}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new DataError(
      path,
      `invalid JSON in ${what} (${(err as Error).message}); the file is damaged or truncated`,
      { cause: err },
    );
  }
}

const isId = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** A file name that stays inside its folder. */
function safeName(name: unknown): name is string {
  return typeof name === "string" && name.length > 0 && !name.includes("/") &&
    !name.includes("\\") && name !== "." && name !== "..";
}

export function normaliseCaption(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

/** Reads `captions_<split><year>.json`; image files are looked up in `folder`. */
export async function readCaptionFile(path: string, folder: string): Promise<CaptionFile> {
  const json = await readJson(path, "COCO caption annotations");
  const o = json as { images?: unknown; annotations?: unknown };
  if (
    typeof json !== "object" || json === null || !Array.isArray(o.images) ||
    !Array.isArray(o.annotations)
  ) {
    throw new DataError(
      path,
      'expected COCO caption annotations: an object with "images" and "annotations" arrays',
    );
  }
  const images = new Map<number, CocoImage>();
  const raw = new Map<number, [number, string][]>();
  o.images.forEach((im: unknown, i: number) => {
    const r = im as { id?: unknown; file_name?: unknown };
    if (typeof im !== "object" || im === null || !isId(r.id)) {
      throw new DataError(path, `images[${i}]: expected an object with an integer "id"`);
    }
    if (!safeName(r.file_name)) {
      throw new DataError(path, `images[${i}] (id ${r.id}): bad "file_name"`);
    }
    if (images.has(r.id)) throw new DataError(path, `images[${i}]: image id ${r.id} repeats`);
    images.set(r.id, { id: r.id, file: join(folder, r.file_name), captions: [] });
    raw.set(r.id, []);
  });
  let captions = 0;
  let emptyCaptions = 0;
  o.annotations.forEach((a: unknown, j: number) => {
    const r = a as { id?: unknown; image_id?: unknown; caption?: unknown };
    if (
      typeof a !== "object" || a === null || !isId(r.image_id) || typeof r.caption !== "string"
    ) {
      throw new DataError(
        path,
        `annotations[${j}]: expected an object with an integer "image_id" and a string "caption"`,
      );
    }
    const list = raw.get(r.image_id);
    if (!list) {
      throw new DataError(path, `annotations[${j}]: image_id ${r.image_id} is not in "images"`);
    }
    const text = normaliseCaption(r.caption);
    if (text === "") {
      emptyCaptions++;
      return;
    }
    list.push([isId(r.id) ? r.id : j, text]);
    captions++;
  });
  let uncaptioned = 0;
  for (const [id, list] of raw) {
    if (list.length === 0) {
      images.delete(id);
      uncaptioned++;
      continue;
    }
    list.sort((a, b) => a[0] - b[0]);
    images.get(id)!.captions = list.map((c) => c[1]);
  }
  return { path, folder, images, captions, emptyCaptions, uncaptioned };
}

const KARPATHY_SPLITS = new Set(["train", "val", "test", "restval"]);

/** Reads Karpathy's `dataset_coco.json` (only cocoid, split and filename are used). */
export async function readKarpathy(path: string): Promise<KarpathyEntry[]> {
  const json = await readJson(path, "Karpathy split file");
  const o = json as { images?: unknown };
  if (typeof json !== "object" || json === null || !Array.isArray(o.images)) {
    throw new DataError(path, 'expected Karpathy\'s dataset_coco.json: an object with "images"');
  }
  const seen = new Map<number, number>();
  return o.images.map((im: unknown, i: number) => {
    const r = im as { cocoid?: unknown; split?: unknown; filename?: unknown };
    if (typeof im !== "object" || im === null || !isId(r.cocoid)) {
      throw new DataError(path, `images[${i}]: expected an object with an integer "cocoid"`);
    }
    if (typeof r.split !== "string" || !KARPATHY_SPLITS.has(r.split)) {
      throw new DataError(
        path,
        `images[${i}] (cocoid ${r.cocoid}): "split" must be train, val, test or restval`,
      );
    }
    const filename = typeof r.filename === "string" ? r.filename : "";
    const m = /(\d{12})\.jpg$/.exec(filename);
    if (m && Number(m[1]) !== r.cocoid) {
      throw new DataError(
        path,
        `images[${i}]: filename ${filename} does not match cocoid ${r.cocoid}`,
      );
    }
    const prev = seen.get(r.cocoid);
    if (prev !== undefined) {
      throw new DataError(path, `images[${i}]: cocoid ${r.cocoid} repeats images[${prev}]`);
    }
    seen.set(r.cocoid, i);
    return { cocoid: r.cocoid, split: r.split as KarpathyEntry["split"], filename };
  });
}

export interface AssembleOptions {
  sources: SplitSource;
  train: CaptionFile;
  val: CaptionFile;
  karpathy?: { path: string; entries: KarpathyEntry[] };
  valSize: number;
  maxImages: Partial<Record<SplitName, number>>;
  seed: number;
}

export interface Assembled {
  splits: Record<SplitName, CocoImage[]>;
  /** Human-readable origin of each split (recorded in dataset.json). */
  origin: Record<SplitName, string>;
  /** Images per split before `max_images`. */
  available: Record<SplitName, number>;
}

/** Builds the three splits, refuses train/val images that are test images, subsets. */
export function assembleSplits(o: AssembleOptions): Assembled {
  const byId = (a: CocoImage, b: CocoImage) => a.id - b.id;
  const official = (f: CaptionFile) => [...f.images.values()].sort(byId);
  const k = o.karpathy;
  const fromKarpathy = (wanted: KarpathyEntry["split"][]): CocoImage[] => {
    if (!k) throw new Error("unreachable: karpathy split without the file"); // zod refines it
    const out: CocoImage[] = [];
    k.entries.forEach((e, i) => {
      if (!wanted.includes(e.split)) return;
      const im = o.val.images.get(e.cocoid) ?? o.train.images.get(e.cocoid);
      if (!im) {
        throw new DataError(
          k.path,
          `images[${i}]: cocoid ${e.cocoid} has no captions in ${o.train.path} or ${o.val.path}` +
            " (is this Karpathy's dataset_coco.json for COCO?)",
        );
      }
      out.push(im);
    });
    return out;
  };

  const src = o.sources;
  const origin = {} as Record<SplitName, string>;
  const sourceFile = {} as Record<SplitName, string>;
  let train: CocoImage[];
  if (src.train === "karpathy") {
    train = fromKarpathy(["train", "restval"]);
    origin.train = "karpathy train+restval";
    sourceFile.train = k!.path;
  } else {
    train = official(o.train);
    origin.train = "official train";
    sourceFile.train = o.train.path;
  }
  let test: CocoImage[];
  if (src.test === "karpathy") {
    test = fromKarpathy(["test"]);
    origin.test = "karpathy test";
    sourceFile.test = k!.path;
  } else {
    test = official(o.val);
    origin.test = "official val";
    sourceFile.test = o.val.path;
  }
  let val: CocoImage[];
  if (src.val === "karpathy") {
    val = fromKarpathy(["val"]);
    origin.val = "karpathy val";
    sourceFile.val = k!.path;
  } else {
    if (o.valSize > train.length) {
      throw new DataError(
        sourceFile.train,
        `val_size ${o.valSize} exceeds the ${train.length} images of the train pool`,
      );
    }
    const marked = choose(train.length, o.valSize, labelSeed(o.seed, "coco", "val"));
    val = train.filter((_, i) => marked[i]);
    train = train.filter((_, i) => !marked[i]);
    origin.val = `${o.valSize} images carved from the ${origin.train} pool (seeded)`;
    sourceFile.val = sourceFile.train;
  }
  const splits: Record<SplitName, CocoImage[]> = { train, val, test };
  checkNoLeak(splits, sourceFile, origin);

  const available = { train: train.length, val: val.length, test: test.length };
  for (const name of ["train", "val", "test"] as const) {
    const max = o.maxImages[name];
    const list = splits[name];
    if (max === undefined || max >= list.length) continue;
    const marked = choose(list.length, max, labelSeed(o.seed, "coco", name, "subset"));
    splits[name] = list.filter((_, i) => marked[i]);
    origin[name] += `, seeded subset of ${max}`;
  }
  return { splits, origin, available };
}

/** Marks `size` of `n` items, chosen with a seeded shuffle (a prefix of one permutation). */
function choose(n: number, size: number, seed: number): Uint8Array {
  const order = new Int32Array(n).map((_, i) => i);
  new Rng(seed).shuffle(order);
  const marked = new Uint8Array(n);
  for (let j = 0; j < size; j++) marked[order[j]] = 1;
  return marked;
}

/**
 * Refuses any image id shared by two splits (train/test and val/test leak test images into
 * training or model selection; train/val makes validation meaningless), and repeats.
 */
export function checkNoLeak(
  splits: Record<SplitName, CocoImage[]>,
  sourceFile: Record<SplitName, string>,
  origin: Record<SplitName, string>,
): void {
  const ids = {} as Record<SplitName, Set<number>>;
  for (const name of ["train", "val", "test"] as const) {
    ids[name] = new Set(splits[name].map((im) => im.id));
    if (ids[name].size !== splits[name].length) {
      throw new DataError(sourceFile[name], `the ${name} split lists an image twice`);
    }
  }
  const pairs: [SplitName, SplitName][] = [["train", "test"], ["val", "test"], ["train", "val"]];
  for (const [a, b] of pairs) {
    const shared = [...ids[a]].filter((id) => ids[b].has(id));
    if (shared.length === 0) continue;
    const files = sourceFile[a] === sourceFile[b]
      ? sourceFile[a]
      : `${sourceFile[a]} and ${sourceFile[b]}`;
    throw new DataError(
      sourceFile[b],
      `${shared.length} of the ${ids[a].size} ${a} images (${origin[a]}) are also ${b} images ` +
        `(${origin[b]}), e.g. image ids ${shared.slice(0, 5).join(", ")} (from ${files}); ` +
        (b === "test"
          ? "training or validating on test images would leak them. Karpathy's test images lie " +
            "inside train2017: with `splits.test: karpathy` use `splits.train: karpathy` " +
            "(train+restval), or test on `official_val` without the Karpathy file"
          : "train and val must not share images"),
    );
  }
}
