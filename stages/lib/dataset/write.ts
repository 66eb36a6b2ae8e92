/**
 * Streaming writer of the packed dataset format (docs/dataset-format.md). Images, captions and
 * labels go to disk through 1 MiB buffers and are hashed on the way, so memory stays bounded
 * whatever the dataset size. Await each call before the next one (the writer is sequential).
 */
import { createHash, type Hash } from "node:crypto";
import { join } from "node:path";
import { DataError } from "./errors.ts";
import {
  captionsFile,
  type DatasetMeta,
  DatasetMetaSchema,
  FORMAT,
  imageBytes,
  imagesFile,
  type ImageShape,
  ImageShapeSchema,
  labelsFile,
  META_FILE,
  type SplitName,
  SPLITS,
} from "./format.ts";

export interface DatasetWriterOptions {
  source: string;
  description?: string;
  image: ImageShape;
  classNames?: string[];
  superclasses?: Record<string, string[]>;
  extra?: Record<string, unknown>;
}

const BUFFER_BYTES = 1 << 20;
const encoder = new TextEncoder();

/** An append-only file with a write buffer, a running SHA-256 and a byte count. */
class Sink {
  readonly name: string;
  size = 0;
  #file: Deno.FsFile;
  #buf = new Uint8Array(BUFFER_BYTES);
  #used = 0;
  #hash: Hash = createHash("sha256");
  #closed = false;

  private constructor(name: string, file: Deno.FsFile) {
    this.name = name;
    this.#file = file;
  }

  static async open(dir: string, name: string): Promise<Sink> {
    const file = await Deno.open(join(dir, name), { write: true, create: true, truncate: true });
    return new Sink(name, file);
  }

  async write(bytes: Uint8Array): Promise<void> {
    if (this.#used + bytes.length > this.#buf.length) await this.flush();
    if (bytes.length >= this.#buf.length) {
      await this.#writeAll(bytes);
    } else {
      this.#buf.set(bytes, this.#used);
      this.#used += bytes.length;
    }
  }

  async flush(): Promise<void> {
    if (this.#used === 0) return;
    const chunk = this.#buf.subarray(0, this.#used);
    await this.#writeAll(chunk);
    this.#used = 0;
  }

  async #writeAll(bytes: Uint8Array): Promise<void> {
    this.#hash.update(bytes);
    this.size += bytes.length;
    let off = 0;
    while (off < bytes.length) off += await this.#file.write(bytes.subarray(off));
  }

  /** Flushes, closes and returns the SHA-256 (hex). */
  async close(): Promise<string> {
    await this.flush();
    this.#closed = true;
    this.#file.close();
    return this.#hash.digest("hex");
  }

  abort(): void {
    if (!this.#closed) {
      this.#closed = true;
      this.#file.close();
    }
  }
}

interface SplitState {
  images: Sink;
  captions: Sink;
  labels?: Sink;
  /** Undefined until the first image decides whether the split has labels. */
  hasLabels?: boolean;
  numImages: number;
  numCaptions: number;
}

export class DatasetWriter {
  readonly dir: string;
  readonly options: DatasetWriterOptions;
  readonly bytesPerImage: number;
  #splits = new Map<SplitName, SplitState>();
  #extraFiles = new Map<string, { size: number; sha256: string }>();
  #finished = false;
  #labelScratch = new Uint8Array(4);

  private constructor(dir: string, options: DatasetWriterOptions) {
    this.dir = dir;
    this.options = options;
    this.bytesPerImage = imageBytes(options.image);
  }

  /** Creates `dir` if needed; files of an earlier dataset there are overwritten. */
  static async create(dir: string, options: DatasetWriterOptions): Promise<DatasetWriter> {
    ImageShapeSchema.parse(options.image);
    await Deno.mkdir(dir, { recursive: true });
    return new DatasetWriter(dir, options);
  }

  async #split(name: SplitName): Promise<SplitState> {
    if (this.#finished) throw new Error("DatasetWriter: already finished");
    let s = this.#splits.get(name);
    if (!s) {
      if (!(SPLITS as readonly string[]).includes(name)) {
        throw new RangeError(`DatasetWriter: unknown split "${name}"`);
      }
      s = {
        images: await Sink.open(this.dir, imagesFile(name)),
        captions: await Sink.open(this.dir, captionsFile(name)),
        numImages: 0,
        numCaptions: 0,
      };
      this.#splits.set(name, s);
    }
    return s;
  }

  /**
   * Appends one image (uint8, HWC, exactly height*width*channels bytes) with its captions and
   * optional integer label. Within a split either every image has a label or none has.
   */
  async add(
    split: SplitName,
    pixels: Uint8Array,
    captions: readonly string[],
    label?: number,
  ): Promise<number> {
    const s = await this.#split(split);
    if (pixels.length !== this.bytesPerImage) {
      throw new RangeError(
        `DatasetWriter: image has ${pixels.length} bytes, expected ${this.bytesPerImage}`,
      );
    }
    const hasLabel = label !== undefined;
    if (s.hasLabels === undefined) {
      s.hasLabels = hasLabel;
      if (hasLabel) s.labels = await Sink.open(this.dir, labelsFile(split));
    } else if (s.hasLabels !== hasLabel) {
      throw new Error(`DatasetWriter: split "${split}" mixes labelled and unlabelled images`);
    }
    const index = s.numImages;
    await s.images.write(pixels);
    for (const text of captions) {
      await s.captions.write(encoder.encode(JSON.stringify({ image: index, text }) + "\n"));
    }
    if (hasLabel) {
      const n = this.options.classNames?.length;
      if (!Number.isInteger(label) || label < -2147483648 || label > 2147483647) {
        throw new RangeError(`DatasetWriter: label ${label} is not an int32`);
      }
      if (n !== undefined && (label < 0 || label >= n)) {
        throw new RangeError(`DatasetWriter: label ${label} outside classNames (0..${n - 1})`);
      }
      new DataView(this.#labelScratch.buffer).setInt32(0, label, true);
      await s.labels!.write(this.#labelScratch);
    }
    s.numImages++;
    s.numCaptions += captions.length;
    return index;
  }

  /** Writes an extra file (e.g. pmi.json) into the dataset folder and lists it in `files`. */
  async addFile(name: string, content: Uint8Array | string): Promise<void> {
    if (this.#finished) throw new Error("DatasetWriter: already finished");
    if (name === META_FILE || name.includes("/") || name.includes("\\") || name.startsWith(".")) {
      throw new RangeError(`DatasetWriter: bad extra file name "${name}"`);
    }
    const bytes = typeof content === "string" ? encoder.encode(content) : content;
    await Deno.writeFile(join(this.dir, name), bytes);
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    this.#extraFiles.set(name, { size: bytes.length, sha256 });
  }

  /** Number of images written so far to a split. */
  count(split: SplitName): number {
    return this.#splits.get(split)?.numImages ?? 0;
  }

  /** Closes every file and writes dataset.json (last, so its presence marks completion). */
  async finish(extra?: Record<string, unknown>): Promise<DatasetMeta> {
    for (const name of SPLITS) await this.#split(name); // empty splits still get their files
    this.#finished = true;
    const files: Record<string, { size: number; sha256: string }> = {};
    const splits = {} as DatasetMeta["splits"];
    for (const name of SPLITS) {
      const s = this.#splits.get(name)!;
      for (const sink of [s.images, s.captions, s.labels]) {
        if (!sink) continue;
        const sha256 = await sink.close(); // flushes: read `size` after it
        files[sink.name] = { size: sink.size, sha256 };
      }
      splits[name] = { images: s.numImages, captions: s.numCaptions, labels: s.hasLabels === true };
    }
    for (const [name, f] of this.#extraFiles) files[name] = f;
    const sortedFiles: DatasetMeta["files"] = {};
    for (const name of Object.keys(files).sort()) sortedFiles[name] = files[name];

    const o = this.options;
    const mergedExtra = o.extra || extra ? { ...o.extra, ...extra } : undefined;
    const meta: DatasetMeta = {
      format: FORMAT,
      source: o.source,
      ...(o.description !== undefined ? { description: o.description } : {}),
      image: { height: o.image.height, width: o.image.width, channels: o.image.channels },
      splits,
      ...(o.classNames ? { classNames: o.classNames } : {}),
      ...(o.superclasses ? { superclasses: o.superclasses } : {}),
      files: sortedFiles,
      ...(mergedExtra ? { extra: mergedExtra } : {}),
    };
    const checked = DatasetMetaSchema.safeParse(meta);
    if (!checked.success) {
      throw new DataError(join(this.dir, META_FILE), `invalid metadata: ${checked.error.message}`);
    }
    await Deno.writeTextFile(join(this.dir, META_FILE), JSON.stringify(meta, null, 2) + "\n");
    return meta;
  }

  /** Closes open files without writing dataset.json (for error paths). */
  abort(): void {
    this.#finished = true;
    for (const s of this.#splits.values()) {
      s.images.abort();
      s.captions.abort();
      s.labels?.abort();
    }
  }
}
