/**
 * Reader of the packed dataset format (docs/dataset-format.md).
 *
 * `openDataset` reads dataset.json, the captions and the labels (small) and checks every file's
 * size; images stay on disk and `readImages` reads just the requested range with a seek, so
 * memory is bounded by the batch, not the dataset. Any missing or corrupt file is reported as a
 * `DataError` naming the file.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { DataError, isNotFound } from "./errors.ts";
import {
  captionsFile,
  type DatasetMeta,
  DatasetMetaSchema,
  imageBytes,
  imagesFile,
  labelsFile,
  META_FILE,
  metaProblem,
  type SplitName,
  SPLITS,
} from "./format.ts";

export type { DatasetMeta, ImageShape, SplitName } from "./format.ts";
export { DataError } from "./errors.ts";

export interface Caption {
  /** Index of the image in its split. */
  image: number;
  text: string;
}

export interface Split {
  name: SplitName;
  numImages: number;
  /** All captions, grouped by (non-decreasing) image index. */
  captions: Caption[];
  /**
   * captionOffsets[i] .. captionOffsets[i + 1] is the range of image i's captions in
   * `captions` (length numImages + 1).
   */
  captionOffsets: Int32Array;
  /** One int32 per image, when the split has labels. */
  labels?: Int32Array;
  /** Bytes of one image (height * width * channels). */
  imageBytes: number;
  /**
   * Images start .. start + count - 1 as one uint8 NHWC array. Reads only that byte range of
   * the images file. `into` (at least count * imageBytes long) avoids an allocation.
   */
  readImages(start: number, count: number, into?: Uint8Array): Promise<Uint8Array>;
}

export interface Dataset {
  dir: string;
  meta: DatasetMeta;
  split(name: SplitName): Split;
}

export interface OpenOptions {
  /** Also hash the image files and extra files against dataset.json (reads them fully). */
  verify?: boolean;
}

export async function openDataset(dir: string, options: OpenOptions = {}): Promise<Dataset> {
  const meta = await readMeta(dir);
  const splits = new Map<SplitName, Split>();
  for (const name of SPLITS) splits.set(name, await openSplit(dir, meta, name, options));
  // Extra files (pmi.json...): they must exist with the listed size.
  const known = new Set<string>();
  for (const name of SPLITS) {
    known.add(imagesFile(name)).add(captionsFile(name)).add(labelsFile(name));
  }
  for (const [file, f] of Object.entries(meta.files)) {
    if (known.has(file)) continue;
    await checkSize(join(dir, file), f.size);
    if (options.verify) await checkHash(join(dir, file), f.sha256);
  }
  return {
    dir,
    meta,
    split(name: SplitName): Split {
      const s = splits.get(name);
      if (!s) throw new RangeError(`unknown split "${name}" (expected ${SPLITS.join(", ")})`);
      return s;
    },
  };
}

/** Reads and validates dataset.json. */
export async function readMeta(dir: string): Promise<DatasetMeta> {
  const path = join(dir, META_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (isNotFound(err)) {
      throw new DataError(path, "missing: not a packed dataset (no dataset.json)", { cause: err });
    }
    throw new DataError(path, `cannot read: ${(err as Error).message}`, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new DataError(path, `invalid JSON: ${(err as Error).message}`, { cause: err });
  }
  const parsed = DatasetMetaSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues
      .map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`)
      .join("; ");
    throw new DataError(path, `invalid dataset metadata: ${issues}`);
  }
  const problem = metaProblem(parsed.data);
  if (problem) throw new DataError(path, `inconsistent dataset metadata: ${problem}`);
  return parsed.data;
}

async function openSplit(
  dir: string,
  meta: DatasetMeta,
  name: SplitName,
  options: OpenOptions,
): Promise<Split> {
  const sm = meta.splits[name];
  const bpi = imageBytes(meta.image);
  const imagesPath = join(dir, imagesFile(name));
  const imagesMeta = meta.files[imagesFile(name)];
  await checkSize(imagesPath, sm.images * bpi);
  if (options.verify) await checkHash(imagesPath, imagesMeta.sha256);

  const capPath = join(dir, captionsFile(name));
  const capBytes = await readChecked(capPath, meta.files[captionsFile(name)]);
  const { captions, offsets } = parseCaptions(capPath, capBytes, sm.images, sm.captions);

  let labels: Int32Array | undefined;
  if (sm.labels) {
    const labPath = join(dir, labelsFile(name));
    const bytes = await readChecked(labPath, meta.files[labelsFile(name)]);
    if (bytes.length !== sm.images * 4) {
      throw new DataError(labPath, `has ${bytes.length} bytes, expected ${sm.images * 4}`);
    }
    labels = new Int32Array(sm.images);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const nClasses = meta.classNames?.length;
    for (let i = 0; i < sm.images; i++) {
      const v = view.getInt32(i * 4, true);
      if (nClasses !== undefined && (v < 0 || v >= nClasses)) {
        throw new DataError(labPath, `label ${v} of image ${i} is outside 0..${nClasses - 1}`);
      }
      labels[i] = v;
    }
  }

  const numImages = sm.images;
  return {
    name,
    numImages,
    captions,
    captionOffsets: offsets,
    ...(labels ? { labels } : {}),
    imageBytes: bpi,
    async readImages(start: number, count: number, into?: Uint8Array): Promise<Uint8Array> {
      if (
        !Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 ||
        start + count > numImages
      ) {
        throw new RangeError(
          `readImages(${start}, ${count}) outside split "${name}" of ${numImages} images`,
        );
      }
      const n = count * bpi;
      if (into && into.length < n) {
        throw new RangeError(`readImages: buffer of ${into.length} bytes, need ${n}`);
      }
      const out = into ? into.subarray(0, n) : new Uint8Array(n);
      if (n === 0) return out;
      let file: Deno.FsFile;
      try {
        file = await Deno.open(imagesPath, { read: true });
      } catch (err) {
        throw new DataError(imagesPath, `cannot open: ${(err as Error).message}`, { cause: err });
      }
      try {
        await file.seek(start * bpi, Deno.SeekMode.Start);
        let off = 0;
        while (off < n) {
          const got = await file.read(out.subarray(off));
          if (got === null) {
            throw new DataError(
              imagesPath,
              `truncated: ended inside image ${start + Math.floor(off / bpi)}`,
            );
          }
          off += got;
        }
      } finally {
        file.close();
      }
      return out;
    },
  };
}

async function checkSize(path: string, expected: number): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (err) {
    if (isNotFound(err)) throw new DataError(path, "missing", { cause: err });
    throw new DataError(path, `cannot stat: ${(err as Error).message}`, { cause: err });
  }
  if (!info.isFile) throw new DataError(path, "is not a regular file");
  if (info.size !== expected) {
    throw new DataError(
      path,
      `has ${info.size} bytes, expected ${expected} (truncated or not this dataset's file)`,
    );
  }
}

/** Reads a whole (small) file and checks its size and SHA-256 against dataset.json. */
async function readChecked(
  path: string,
  f: { size: number; sha256: string },
): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (err) {
    if (isNotFound(err)) throw new DataError(path, "missing", { cause: err });
    throw new DataError(path, `cannot read: ${(err as Error).message}`, { cause: err });
  }
  if (bytes.length !== f.size) {
    throw new DataError(path, `has ${bytes.length} bytes, expected ${f.size}`);
  }
  const digest = createHash("sha256").update(bytes).digest("hex");
  if (digest !== f.sha256) {
    throw new DataError(path, `SHA-256 mismatch (corrupt): ${digest} != ${f.sha256}`);
  }
  return bytes;
}

/** Streams a file through SHA-256 and compares with the expected digest. */
export async function checkHash(path: string, expected: string): Promise<void> {
  const hash = createHash("sha256");
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (err) {
    if (isNotFound(err)) throw new DataError(path, "missing", { cause: err });
    throw new DataError(path, `cannot open: ${(err as Error).message}`, { cause: err });
  }
  try {
    const buf = new Uint8Array(1 << 20);
    for (;;) {
      const n = await file.read(buf);
      if (n === null) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    file.close();
  }
  const digest = hash.digest("hex");
  if (digest !== expected) {
    throw new DataError(path, `SHA-256 mismatch (corrupt): ${digest} != ${expected}`);
  }
}

function parseCaptions(
  path: string,
  bytes: Uint8Array,
  numImages: number,
  numCaptions: number,
): { captions: Caption[]; offsets: Int32Array } {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (err) {
    throw new DataError(path, "is not valid UTF-8", { cause: err });
  }
  if (text.length > 0 && !text.endsWith("\n")) {
    throw new DataError(path, "truncated: last line has no newline");
  }
  const lines = text.length === 0 ? [] : text.slice(0, -1).split("\n");
  if (lines.length !== numCaptions) {
    throw new DataError(path, `has ${lines.length} captions, dataset.json says ${numCaptions}`);
  }
  const captions: Caption[] = new Array(lines.length);
  const offsets = new Int32Array(numImages + 1);
  let prev = 0;
  for (let i = 0; i < lines.length; i++) {
    let rec: unknown;
    try {
      rec = JSON.parse(lines[i]);
    } catch (err) {
      throw new DataError(path, `line ${i + 1}: invalid JSON`, { cause: err });
    }
    const r = rec as { image?: unknown; text?: unknown };
    if (
      typeof rec !== "object" || rec === null || !Number.isInteger(r.image) ||
      typeof r.text !== "string"
    ) {
      throw new DataError(path, `line ${i + 1}: expected {"image": int, "text": string}`);
    }
    const image = r.image as number;
    if (image < 0 || image >= numImages) {
      throw new DataError(path, `line ${i + 1}: image ${image} outside 0..${numImages - 1}`);
    }
    if (image < prev) {
      throw new DataError(
        path,
        `line ${i + 1}: captions not grouped by image (${image} < ${prev})`,
      );
    }
    prev = image;
    offsets[image + 1]++;
    captions[i] = { image, text: r.text as string };
  }
  for (let i = 0; i < numImages; i++) offsets[i + 1] += offsets[i];
  return { captions, offsets };
}
