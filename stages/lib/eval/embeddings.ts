/**
 * The embeddings format `kme-embeddings/2` (written by the `embed` stage, read by retrieval,
 * linear-probe and zero-shot; see docs/evaluation.md, "Embeddings files"):
 *
 *   embeddings.json        header (format, the similarity record with its learned values, split,
 *                          counts, shapes...)
 *   images.points.f32      [n, M, dim]  unit points per image (one-point heads: M = 1)
 *   images.logits.f32      [n, M]       raw point scores (-Infinity = padding; one point: 0)
 *   images.pooled.f32      [n, P]       the similarity's linear-probe features (`probe` in the
 *                                       header: their dimension P and how they are made)
 *   images.labels.i32      [n]          class labels, when the split has them
 *   captions.points.f32    [nc, N, dim]
 *   captions.logits.f32    [nc, N]
 *   captions.image.i32     [nc]         index (in this file) of each caption's image
 *   captions.text.i32      [nc]         id of each caption's text (equal texts, equal ids;
 *                                       ids in order of first occurrence)
 *
 * All binaries are raw little-endian, no header. Plain TypeScript (no TensorFlow.js).
 */
import { join } from "node:path";
import { StageInputError } from "../../../pipeline/stage.ts";
import type { PointSets, SimilarityRecord } from "../similarity/similarity.ts";

export const EMBEDDINGS_FORMAT = "kme-embeddings/2";
export const EMBEDDINGS_JSON = "embeddings.json";
export const EMB_FILES = {
  imagePoints: "images.points.f32",
  imageLogits: "images.logits.f32",
  imagePooled: "images.pooled.f32",
  imageLabels: "images.labels.i32",
  captionPoints: "captions.points.f32",
  captionLogits: "captions.logits.f32",
  captionImage: "captions.image.i32",
  captionText: "captions.text.i32",
} as const;

export interface EmbeddingsHeader {
  format: typeof EMBEDDINGS_FORMAT;
  /** The training similarity, with its learned values: evaluation scores with exactly it. */
  similarity: SimilarityRecord;
  split: string;
  /** Images and captions stored (after max_images). */
  counts: { images: number; captions: number; split_images: number; distinct_texts?: number };
  /** Points per image (M), per caption (N), point dimension. */
  M: number;
  N: number;
  dim: number;
  has_labels: boolean;
  class_names: string[] | null;
  /** images.pooled.f32: dimension and the similarity's description of its probe features. */
  probe: { dim: number; features: string };
  byte_order: "little";
  /** The model entry's content digest (zero-shot checks that it encodes with the same model). */
  model: { digest: string; points: string; embed_dim: number; steps?: number };
  dataset: {
    source: string;
    digest: string;
    image: { height: number; width: number; channels: number };
  };
  files: Record<string, { dtype: "float32" | "int32"; shape: number[] }>;
}

// ---- writing (streamed) ---------------------------------------------------------------------

function bytesOf(a: Float32Array | Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error("embeddings files are little-endian; this host is big-endian");
}

/** Appends typed arrays to a file; nothing is kept in memory. */
class Sink {
  private constructor(readonly path: string, private readonly f: Deno.FsFile) {}
  written = 0;
  static async open(path: string): Promise<Sink> {
    return new Sink(path, await Deno.open(path, { write: true, create: true, truncate: true }));
  }
  async write(a: Float32Array | Int32Array): Promise<void> {
    const b = bytesOf(a);
    let off = 0;
    while (off < b.length) off += await this.f.write(b.subarray(off));
    this.written += a.length;
  }
  close(): void {
    this.f.close();
  }
}

export interface WriterShape {
  M: number;
  N: number;
  dim: number;
  labels: boolean;
  /** The similarity's linear-probe features of a batch of image sets. */
  probe(sets: PointSets): { dim: number; data: Float32Array };
  /** Their description, for the header. */
  probeDoc: string;
}

/** Streams batches of point sets into the files of one embeddings folder. */
export class EmbeddingsWriter {
  private sinks: Record<keyof typeof EMB_FILES, Sink | undefined>;
  private textIds = new Map<string, number>();
  private probeDim = 0;
  images = 0;
  captions = 0;

  private constructor(
    readonly dir: string,
    readonly shape: WriterShape,
    sinks: Record<keyof typeof EMB_FILES, Sink | undefined>,
  ) {
    this.sinks = sinks;
  }

  static async create(dir: string, shape: WriterShape): Promise<EmbeddingsWriter> {
    const sinks = {} as Record<keyof typeof EMB_FILES, Sink | undefined>;
    for (const [k, name] of Object.entries(EMB_FILES) as [keyof typeof EMB_FILES, string][]) {
      sinks[k] = k === "imageLabels" && !shape.labels
        ? undefined
        : await Sink.open(join(dir, name));
    }
    return new EmbeddingsWriter(dir, shape, sinks);
  }

  /** `points` [b, M, dim], `logits` [b, M]; labels [b] when the split has labels. */
  async addImages(points: Float32Array, logits: Float32Array, labels?: Int32Array): Promise<void> {
    const { M, dim } = this.shape;
    const b = logits.length / M;
    if (!Number.isInteger(b) || points.length !== b * M * dim) {
      throw new RangeError(`image batch: ${points.length} values / ${logits.length} logits`);
    }
    await this.sinks.imagePoints!.write(points);
    await this.sinks.imageLogits!.write(logits);
    const probe = this.shape.probe({ n: b, points: M, dim, data: points, logits });
    this.probeDim = probe.dim;
    await this.sinks.imagePooled!.write(probe.data);
    if (this.sinks.imageLabels) {
      if (!labels || labels.length !== b) throw new RangeError("image batch: labels missing");
      await this.sinks.imageLabels.write(labels);
    }
    this.images += b;
  }

  /**
   * `points` [b, N, dim], `logits` [b, N], `image` [b] (image index of each caption), `texts`
   * [b] (the caption texts, for the text ids).
   */
  async addCaptions(
    points: Float32Array,
    logits: Float32Array,
    image: Int32Array,
    texts: readonly string[],
  ): Promise<void> {
    const { N, dim } = this.shape;
    const b = image.length;
    if (points.length !== b * N * dim || logits.length !== b * N || texts.length !== b) {
      throw new RangeError(`caption batch: ${points.length} values / ${logits.length} logits`);
    }
    const ids = Int32Array.from(texts, (t) => {
      let id = this.textIds.get(t);
      if (id === undefined) this.textIds.set(t, id = this.textIds.size);
      return id;
    });
    await this.sinks.captionPoints!.write(points);
    await this.sinks.captionLogits!.write(logits);
    await this.sinks.captionImage!.write(image);
    await this.sinks.captionText!.write(ids);
    this.captions += b;
  }

  close(): void {
    for (const s of Object.values(this.sinks)) s?.close();
  }

  /** Closes the files and writes the header (last). */
  async finish(
    header: Omit<EmbeddingsHeader, "format" | "files" | "byte_order" | "probe">,
  ): Promise<EmbeddingsHeader> {
    this.close();
    const { M, N, dim } = this.shape;
    const n = this.images, nc = this.captions;
    if (header.counts.images !== n || header.counts.captions !== nc) {
      throw new Error(
        `embeddings: header says ${header.counts.images}/${header.counts.captions}, wrote ${n}/${nc}`,
      );
    }
    const files: EmbeddingsHeader["files"] = {
      [EMB_FILES.imagePoints]: { dtype: "float32", shape: [n, M, dim] },
      [EMB_FILES.imageLogits]: { dtype: "float32", shape: [n, M] },
      [EMB_FILES.imagePooled]: { dtype: "float32", shape: [n, this.probeDim] },
      [EMB_FILES.captionPoints]: { dtype: "float32", shape: [nc, N, dim] },
      [EMB_FILES.captionLogits]: { dtype: "float32", shape: [nc, N] },
      [EMB_FILES.captionImage]: { dtype: "int32", shape: [nc] },
      [EMB_FILES.captionText]: { dtype: "int32", shape: [nc] },
    };
    if (this.shape.labels) files[EMB_FILES.imageLabels] = { dtype: "int32", shape: [n] };
    const full: EmbeddingsHeader = {
      format: EMBEDDINGS_FORMAT,
      ...header,
      counts: { ...header.counts, distinct_texts: this.textIds.size },
      probe: { dim: this.probeDim, features: this.shape.probeDoc },
      byte_order: "little",
      files,
    };
    await Deno.writeTextFile(join(this.dir, EMBEDDINGS_JSON), JSON.stringify(full, null, 2) + "\n");
    return full;
  }
}

// ---- reading -------------------------------------------------------------------------------

export interface Embeddings {
  dir: string;
  header: EmbeddingsHeader;
  images?: PointSets;
  captions?: PointSets;
  captionImage?: Int32Array;
  /** Text id of each caption (equal texts, equal ids), when the file exists. */
  captionText?: Int32Array;
  pooled?: Float32Array;
  labels?: Int32Array;
}

export interface ReadParts {
  images?: boolean;
  captions?: boolean;
  pooled?: boolean;
  labels?: boolean;
}

export async function readEmbeddingsHeader(dir: string): Promise<EmbeddingsHeader> {
  const path = join(dir, EMBEDDINGS_JSON);
  let h: EmbeddingsHeader;
  try {
    h = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new StageInputError(
      `${path}: cannot read embeddings header (${(e as Error).message}); is this an embed output?`,
      path,
    );
  }
  if (h?.format !== EMBEDDINGS_FORMAT) {
    throw new StageInputError(
      `${path}: format is ${h?.format}, expected ${EMBEDDINGS_FORMAT}`,
      path,
    );
  }
  return h;
}

async function readArray<T extends Float32Array | Int32Array>(
  dir: string,
  name: string,
  ctor: { new (b: ArrayBuffer): T; BYTES_PER_ELEMENT: number },
  length: number,
): Promise<T> {
  const path = join(dir, name);
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new StageInputError(`${path}: cannot read (${(e as Error).message})`, path);
  }
  if (bytes.byteLength !== length * ctor.BYTES_PER_ELEMENT) {
    throw new StageInputError(
      `${path}: has ${bytes.byteLength} bytes, expected ${length * ctor.BYTES_PER_ELEMENT}`,
      path,
    );
  }
  // Copy into an aligned buffer of its own.
  const buf = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(buf).set(bytes);
  return new ctor(buf);
}

/** Reads the header and the requested parts (default: everything present). */
export async function readEmbeddings(dir: string, parts?: ReadParts): Promise<Embeddings> {
  const h = await readEmbeddingsHeader(dir);
  const want = parts ?? { images: true, captions: true, pooled: true, labels: true };
  const n = h.counts.images, nc = h.counts.captions;
  const out: Embeddings = { dir, header: h };
  if (want.images) {
    out.images = {
      n,
      points: h.M,
      dim: h.dim,
      data: await readArray(dir, EMB_FILES.imagePoints, Float32Array, n * h.M * h.dim),
      logits: await readArray(dir, EMB_FILES.imageLogits, Float32Array, n * h.M),
    };
  }
  if (want.captions) {
    out.captions = {
      n: nc,
      points: h.N,
      dim: h.dim,
      data: await readArray(dir, EMB_FILES.captionPoints, Float32Array, nc * h.N * h.dim),
      logits: await readArray(dir, EMB_FILES.captionLogits, Float32Array, nc * h.N),
    };
    out.captionImage = await readArray(dir, EMB_FILES.captionImage, Int32Array, nc);
    if (h.files[EMB_FILES.captionText]) {
      out.captionText = await readArray(dir, EMB_FILES.captionText, Int32Array, nc);
    }
    for (let c = 0; c < nc; c++) {
      const i = out.captionImage[c];
      if (!(i >= 0 && i < n) || (c > 0 && i < out.captionImage[c - 1])) {
        throw new StageInputError(
          `${join(dir, EMB_FILES.captionImage)}: caption ${c} has image ${i} (need 0..${
            n - 1
          }, non-decreasing)`,
          join(dir, EMB_FILES.captionImage),
        );
      }
    }
  }
  if (want.pooled) {
    out.pooled = await readArray(dir, EMB_FILES.imagePooled, Float32Array, n * h.probe.dim);
  }
  if (want.labels && h.has_labels) {
    out.labels = await readArray(dir, EMB_FILES.imageLabels, Int32Array, n);
  }
  return out;
}
