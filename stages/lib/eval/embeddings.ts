/**
 * The embeddings format `kme-embeddings/1` (written by the `embed` stage, read by retrieval,
 * linear-probe and zero-shot; see docs/evaluation.md, "Embeddings files"):
 *
 *   embeddings.json        header (format, similarity and its scalars, split, counts, shapes...)
 *   images.points.f32      [n, M, dim]  unit points per image (CLIP: M = 1, the embedding)
 *   images.logits.f32      [n, M]       weight logits (-Infinity = padding; CLIP: 0)
 *   images.pooled.f32      [n, dim]     pooled feature: CLIP's embedding; KME / WPSE: the
 *                                       alpha-weighted mean of the points (not re-normalised)
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
import {
  type ClipSpec,
  createParallelScorer,
  createScorer,
  type KmeSpec,
  type PointSets,
  type ScorerSpec,
} from "./scoring.ts";
import type { BlockScorer } from "./retrieval.ts";

export const EMBEDDINGS_FORMAT = "kme-embeddings/1";
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

export const POOLING_DOC = "clip: the embedding itself (M = 1); kme / wpse: sum_i alpha_i u_i " +
  "with alpha = softmax(weight logits), padding excluded (not re-normalised)";

export type SimilarityName = "clip" | "kme" | "wpse";

export interface EmbeddingsHeader {
  format: typeof EMBEDDINGS_FORMAT;
  similarity: SimilarityName;
  /** CLIP / WPSE: exp(t) after the clamp. */
  logit_scale: number | null;
  /** KME / WPSE: sigma^2 after the clamp. */
  sigma2: number | null;
  split: string;
  /** Images and captions stored (after max_images). */
  counts: { images: number; captions: number; split_images: number; distinct_texts?: number };
  /** Points per image (M), per caption (N), point dimension. */
  M: number;
  N: number;
  dim: number;
  has_labels: boolean;
  class_names: string[] | null;
  pooling: string;
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

/** Streams batches of point sets into the files of one embeddings folder. */
export class EmbeddingsWriter {
  private sinks: Record<keyof typeof EMB_FILES, Sink | undefined>;
  private textIds = new Map<string, number>();
  images = 0;
  captions = 0;

  private constructor(
    readonly dir: string,
    readonly shape: { M: number; N: number; dim: number; labels: boolean },
    sinks: Record<keyof typeof EMB_FILES, Sink | undefined>,
  ) {
    this.sinks = sinks;
  }

  static async create(
    dir: string,
    shape: { M: number; N: number; dim: number; labels: boolean },
  ): Promise<EmbeddingsWriter> {
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
    await this.sinks.imagePooled!.write(poolPoints(points, logits, b, M, dim));
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
    header: Omit<EmbeddingsHeader, "format" | "files" | "byte_order" | "pooling">,
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
      [EMB_FILES.imagePooled]: { dtype: "float32", shape: [n, dim] },
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
      pooling: POOLING_DOC,
      byte_order: "little",
      files,
    };
    await Deno.writeTextFile(join(this.dir, EMBEDDINGS_JSON), JSON.stringify(full, null, 2) + "\n");
    return full;
  }
}

/**
 * Pooled features [b, dim]: sum_m softmax(logits)_m * points_m per set (f64 accumulation);
 * padding (-Infinity) gets weight 0. With M = 1 (CLIP) this is the point itself.
 */
export function poolPoints(
  points: Float32Array,
  logits: Float32Array,
  b: number,
  M: number,
  dim: number,
): Float32Array {
  const out = new Float32Array(b * dim);
  const w = new Float64Array(M);
  const acc = new Float64Array(dim);
  for (let i = 0; i < b; i++) {
    let mx = -Infinity;
    for (let m = 0; m < M; m++) mx = Math.max(mx, logits[i * M + m]);
    if (!Number.isFinite(mx)) throw new Error(`set ${i} has no finite weight logit`);
    let s = 0;
    for (let m = 0; m < M; m++) s += w[m] = Math.exp(logits[i * M + m] - mx);
    acc.fill(0);
    for (let m = 0; m < M; m++) {
      const a = w[m] / s;
      if (a === 0) continue;
      const o = (i * M + m) * dim;
      for (let k = 0; k < dim; k++) acc[k] += a * points[o + k];
    }
    for (let k = 0; k < dim; k++) out[i * dim + k] = acc[k];
  }
  return out;
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
    out.pooled = await readArray(dir, EMB_FILES.imagePooled, Float32Array, n * h.dim);
  }
  if (want.labels && h.has_labels) {
    out.labels = await readArray(dir, EMB_FILES.imageLabels, Int32Array, n);
  }
  return out;
}

/** "clip scale=14.2" / "kme sigma2=0.05" / "wpse sigma2=.. scale=..": for protocols. */
export type SimilarityHeader = Pick<
  EmbeddingsHeader,
  "similarity" | "logit_scale" | "sigma2" | "dim"
>;

export function similarityDescription(h: SimilarityHeader): string {
  if (h.similarity === "clip") return `clip logit_scale=${h.logit_scale}`;
  if (h.similarity === "kme") return `kme sigma2=${h.sigma2}`;
  return `wpse sigma2=${h.sigma2} logit_scale=${h.logit_scale}`;
}

/**
 * The scorer spec of the training similarity for image point sets x caption point sets
 * (captions may be zero-shot classes). CLIP uses the single point as the embedding.
 */
export function scorerSpecFor(
  h: SimilarityHeader,
  images: PointSets,
  captions: PointSets,
): ScorerSpec {
  if (h.similarity === "clip") {
    if (images.points !== 1 || captions.points !== 1) {
      throw new RangeError(
        `clip embeddings need one point per input (${images.points}, ${captions.points})`,
      );
    }
    const spec: ClipSpec = {
      kind: "clip",
      images: images.data,
      captions: captions.data,
      dim: h.dim,
      scale: h.logit_scale ?? 1,
    };
    return spec;
  }
  if (!(h.sigma2 !== null && h.sigma2 > 0)) throw new RangeError(`${h.similarity}: sigma2 missing`);
  const spec: KmeSpec = { kind: h.similarity, images, captions, sigma2: h.sigma2 };
  if (h.similarity === "wpse") spec.scale = h.logit_scale ?? 1;
  return spec;
}

/** A scorer with a close(): in-thread, or Web Workers when the work is large enough to pay. */
export interface ClosableScorer extends BlockScorer {
  readonly description: string;
  close(): void;
}

/**
 * Picks the in-thread scorer for small jobs and `workers` Web Workers (0 = one per core) for
 * KME / WPSE jobs above about 2e9 multiply-adds (a few seconds single-threaded). Both give
 * bit-identical scores (docs/evaluation.md, section 1).
 */
export async function makeScorer(spec: ScorerSpec, workers = 0): Promise<ClosableScorer> {
  const cores = workers > 0 ? workers : (navigator.hardwareConcurrency ?? 1);
  let work = 0;
  if (spec.kind !== "clip") {
    work = spec.images.n * spec.captions.n * spec.images.points * spec.captions.points *
      spec.images.dim;
  }
  if (cores > 1 && work > 2e9) {
    return await createParallelScorer(spec, { workers: cores });
  }
  const s = createScorer(spec);
  return Object.assign(s, { close() {} });
}
