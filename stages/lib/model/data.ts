/**
 * Seeded, resumable batch order for contrastive training.
 *
 * An epoch is a permutation of the split's images that have at least one caption; it depends
 * only on (seed, epoch). Each epoch yields floor(n / batchSize) batches (the remainder is left
 * out, so no image appears twice in a batch). For every image of a batch one of its captions is
 * drawn from keyedRng(seed, ..., step). Hence the batch of global step s is a pure function of
 * (seed, s): the data cursor is the step number, and resuming needs no other state.
 */
import { keyedRng, keySeed, permutation } from "../random.ts";
import type { Vocab } from "./vocab.ts";

/** The part of the dataset reader's Split that training uses. */
export interface SplitLike {
  numImages: number;
  captions: { image: number; text: string }[];
  readImages(start: number, count: number): Promise<Uint8Array>;
}

export interface Batch {
  /** [size, H, W, C] uint8, row-major. */
  images: Uint8Array;
  /** [size, maxLen] token ids. */
  ids: Int32Array;
  size: number;
  /** Image indices in the split (for debugging and tests). */
  imageIndex: Int32Array;
}

export interface BatchSourceOptions {
  batchSize: number;
  maxLen: number;
  seed: number;
  /** Bytes of one image (H*W*C). */
  imageBytes: number;
  /** Load the whole split into memory when it is at most this many bytes (default 1 GiB). */
  cacheBytes?: number;
}

export interface Cursor {
  epoch: number;
  /** Batch index within the epoch. */
  index: number;
}

export class BatchSource {
  readonly batchSize: number;
  readonly maxLen: number;
  readonly batchesPerEpoch: number;
  /** Images with at least one caption, ascending. */
  readonly usable: Int32Array;
  private readonly split: SplitLike;
  private readonly vocab: Vocab;
  readonly seed: number;
  private readonly imageBytes: number;
  private readonly captionsOf: string[][];
  private cache: Uint8Array | undefined;
  private readonly cacheBytes: number;
  private perm: { epoch: number; order: Int32Array } | undefined;

  constructor(split: SplitLike, vocab: Vocab, opts: BatchSourceOptions) {
    this.split = split;
    this.vocab = vocab;
    this.batchSize = opts.batchSize;
    this.maxLen = opts.maxLen;
    this.seed = opts.seed >>> 0;
    this.imageBytes = opts.imageBytes;
    this.cacheBytes = opts.cacheBytes ?? 2 ** 30;
    this.captionsOf = Array.from({ length: split.numImages }, () => []);
    for (const c of split.captions) {
      if (c.image < 0 || c.image >= split.numImages) {
        throw new RangeError(`caption refers to image ${c.image} of ${split.numImages}`);
      }
      this.captionsOf[c.image].push(c.text);
    }
    this.usable = Int32Array.from(
      this.captionsOf.flatMap((caps, i) => (caps.length > 0 ? [i] : [])),
    );
    this.batchesPerEpoch = Math.floor(this.usable.length / this.batchSize);
    if (this.batchesPerEpoch < 1) {
      throw new RangeError(
        `batch size ${this.batchSize} exceeds the ${this.usable.length} captioned training images`,
      );
    }
  }

  /** Reads the whole split into memory if it fits the cache budget. */
  async preload(): Promise<boolean> {
    const total = this.split.numImages * this.imageBytes;
    if (total > this.cacheBytes) return false;
    if (this.cache === undefined) {
      const out = new Uint8Array(total);
      const chunk = Math.max(1, Math.floor((64 << 20) / this.imageBytes));
      for (let s = 0; s < this.split.numImages; s += chunk) {
        const n = Math.min(chunk, this.split.numImages - s);
        out.set(await this.split.readImages(s, n), s * this.imageBytes);
      }
      this.cache = out;
    }
    return true;
  }

  cursor(step: number): Cursor {
    return { epoch: Math.floor(step / this.batchesPerEpoch), index: step % this.batchesPerEpoch };
  }

  private order(epoch: number): Int32Array {
    if (this.perm?.epoch !== epoch) {
      const p = permutation(this.usable.length, keySeed(this.seed, 0x0e90c), epoch);
      this.perm = { epoch, order: p.map((i) => this.usable[i]) };
    }
    return this.perm.order;
  }

  /** Image indices and caption texts of global step `step` (pure function of seed and step). */
  plan(step: number): { images: Int32Array; texts: string[] } {
    const { epoch, index } = this.cursor(step);
    const order = this.order(epoch);
    const images = order.slice(index * this.batchSize, (index + 1) * this.batchSize);
    const rng = keyedRng(this.seed, 0xca9, step);
    const texts = Array.from(images, (img) => {
      const caps = this.captionsOf[img];
      return caps[caps.length === 1 ? 0 : rng.int(caps.length)];
    });
    return { images, texts };
  }

  async batch(step: number): Promise<Batch> {
    const { images: idx, texts } = this.plan(step);
    const n = idx.length;
    const ib = this.imageBytes;
    const images = new Uint8Array(n * ib);
    for (let i = 0; i < n; i++) {
      const k = idx[i];
      const src = this.cache !== undefined
        ? this.cache.subarray(k * ib, (k + 1) * ib)
        : await this.split.readImages(k, 1);
      images.set(src, i * ib);
    }
    return { images, ids: this.vocab.encodeBatch(texts, this.maxLen), size: n, imageIndex: idx };
  }
}
