/**
 * Cross-modal retrieval metrics (image->text and text->image), computed by streaming over the
 * [images x captions] score matrix in blocks, so memory stays O(images + captions + block).
 *
 * Definitions (1-based ranks; see docs/evaluation.md):
 * - A pair (image i, caption c) is *relevant* when c is one of i's captions (rule "instance"),
 *   or, with rule "text", when i owns a caption with the same text id as c.
 * - image->text: query = image i. best = the highest score among i's relevant captions.
 *   rank = 1 + #{irrelevant captions c' : S[i, c'] >= best}. Hit@K iff rank <= K, i.e. ANY
 *   relevant caption is in the top K.
 * - text->image: query = caption instance c. own = the highest score among c's relevant
 *   images (with rule "instance": its one image). rank = 1 + #{irrelevant images i' :
 *   S[i', c] >= own}.
 * - Ties are pessimistic: a competitor whose score equals the best relevant score is counted
 *   as ranked ahead of it. Ties among relevant items do not matter (only the best one counts).
 * - NaN scores are rejected (an error), since any rank given to them would be arbitrary.
 *
 * Streaming algorithm (two phases, exact):
 * 1. Score only the relevant pairs (nC pairs for rule "instance") and keep, per image, the
 *    best relevant score and, per caption, the best relevant-image score.
 * 2. Stream the full matrix in blocks. In each block count, per row, the entries >= that
 *    image's best and, per column, the entries >= that caption's own score; then subtract the
 *    relevant pairs that fall inside the block (they were counted by the same comparisons).
 *    Counts are additive over blocks, so block size and order do not change the result.
 * Each score of phase 2 is compared only with thresholds from phase 1, never with itself, so
 * the result is well defined even when a scorer's values depend (in the last bit) on the
 * block shape; with the pair-deterministic scorers in scoring.ts, the chunked path equals the
 * full-matrix path exactly.
 */
import { countSummary, type Protocol } from "./protocol.ts";

/** Scores of images [imageStart, +imageCount) x captions [captionStart, +captionCount), row-major. */
export type ScoreBlockFn = (
  imageStart: number,
  imageCount: number,
  captionStart: number,
  captionCount: number,
) => Float32Array | Promise<Float32Array>;

export interface BlockScorer {
  readonly nImages: number;
  readonly nCaptions: number;
  scoreBlock: ScoreBlockFn;
  /** Optional fast path for scattered pairs (the relevant pairs of phase 1). */
  scorePairs?(images: Int32Array, captions: Int32Array): Float32Array | Promise<Float32Array>;
}

/** A full row-major [nImages x nCaptions] matrix, a block callback, or a scorer object. */
export type ScoreSource = Float32Array | ScoreBlockFn | BlockScorer;

/**
 * How identical caption texts attached to different images are treated:
 * - "instance": each caption instance belongs to exactly one image (`captionImage`); an
 *   identical text attached to another image is an ordinary competitor (and, scoring the
 *   same, outranks under the pessimistic tie rule). The usual COCO practice.
 * - "text": relevance by text identity (`captionText` required): caption c is relevant to
 *   every image that owns a caption with the same text id. Each instance is still one
 *   text->image query.
 */
export type DuplicateTextRule = "instance" | "text";

export interface RetrievalOptions {
  /** Recall cut-offs; default [1, 5, 10]. rsum sums R@K over these K in both directions. */
  ks?: number[];
  /** Number of images; default: matrix length / nCaptions, scorer.nImages, or max(captionImage)+1. */
  nImages?: number;
  /** Text identity per caption instance (same id = same text); needed for rule "text". */
  captionText?: Int32Array;
  /** Default "text" when captionText is given, otherwise "instance". */
  duplicateTextRule?: DuplicateTextRule;
  /** Block shape for streaming (default 256 images x 2048 captions). */
  imageBlock?: number;
  captionBlock?: number;
  /** Blocks requested at once from an async scorer (default 4). */
  concurrency?: number;
  /** Free-form label recorded in the protocol (e.g. "karpathy-test", "val2017"). */
  split?: string;
  /** Recorded in the protocol (e.g. "kme sigma2=0.05", "clip scale=100"). */
  similarity?: string;
  /** Called after each block with (blocks done, total blocks). */
  onProgress?: (done: number, total: number) => void;
}

export interface DirectionMetrics {
  /** Number of queries. */
  n: number;
  /** Recall@K in percent (0-100), keyed by K. */
  recall: Record<number, number>;
  /** numpy-style median of the 1-based ranks (mean of the two middle values when n is even). */
  medianRank: number;
  meanRank: number;
}

export interface RetrievalMetrics {
  imageToText: DirectionMetrics;
  textToImage: DirectionMetrics;
  /** Sum of recall@K (percent) over the K values, both directions (R@1+5+10: max 600). */
  rsum: number;
}

export interface RetrievalResult extends RetrievalMetrics {
  protocol: Protocol;
  /** Per-query 1-based ranks: imageToText[i] per image, textToImage[c] per caption. */
  ranks: { imageToText: Int32Array; textToImage: Int32Array };
}

export interface FoldedRetrievalResult extends RetrievalMetrics {
  protocol: Protocol;
  /** Per-fold metrics; the top-level numbers are their means. */
  folds: RetrievalResult[];
}

const DEFAULT_KS = [1, 5, 10];

/** A contiguous sub-problem: images [i0, i1) with captions [c0, c1). */
interface Group {
  i0: number;
  i1: number;
  c0: number;
  c1: number;
}

/** Relevant pairs, by caption: images img[off[c] .. off[c+1]) (ascending). */
interface Relevance {
  off: Int32Array;
  img: Int32Array;
}

/** Wraps a full row-major matrix as a BlockScorer (copies blocks; for tests and small cases). */
export function matrixScorer(
  matrix: Float32Array,
  nImages: number,
  nCaptions: number,
): BlockScorer {
  if (matrix.length !== nImages * nCaptions) {
    throw new RangeError(`matrix has ${matrix.length} entries, expected ${nImages}x${nCaptions}`);
  }
  return {
    nImages,
    nCaptions,
    scoreBlock(i0, ni, c0, nc) {
      const out = new Float32Array(ni * nc);
      for (let r = 0; r < ni; r++) {
        out.set(matrix.subarray((i0 + r) * nCaptions + c0, (i0 + r) * nCaptions + c0 + nc), r * nc);
      }
      return out;
    },
    scorePairs(images, captions) {
      const out = new Float32Array(images.length);
      for (let p = 0; p < images.length; p++) out[p] = matrix[images[p] * nCaptions + captions[p]];
      return out;
    },
  };
}

function toScorer(src: ScoreSource, nCaptions: number, nImagesOpt?: number): BlockScorer {
  if (src instanceof Float32Array) {
    const nI = nImagesOpt ?? src.length / nCaptions;
    if (!Number.isInteger(nI)) {
      throw new RangeError(`score matrix length ${src.length} is not a multiple of ${nCaptions}`);
    }
    return matrixScorer(src, nI, nCaptions);
  }
  if (typeof src === "function") {
    if (nImagesOpt === undefined) throw new Error("options.nImages is required with a callback");
    return { nImages: nImagesOpt, nCaptions, scoreBlock: src };
  }
  if (src.nCaptions !== nCaptions) {
    throw new RangeError(`scorer has ${src.nCaptions} captions, captionImage has ${nCaptions}`);
  }
  if (nImagesOpt !== undefined && nImagesOpt !== src.nImages) {
    throw new RangeError(`scorer has ${src.nImages} images, options.nImages is ${nImagesOpt}`);
  }
  return src;
}

function validateCaptionImage(captionImage: Int32Array, nImages: number): void {
  const has = new Uint8Array(nImages);
  for (let c = 0; c < captionImage.length; c++) {
    const i = captionImage[c];
    if (!(i >= 0 && i < nImages)) {
      throw new RangeError(`captionImage[${c}] = ${i} is outside [0, ${nImages})`);
    }
    has[i] = 1;
  }
  const missing = has.indexOf(0);
  if (missing >= 0) {
    throw new Error(`image ${missing} has no caption: every image must have at least one`);
  }
}

/** Global relevance CSR by caption. */
function buildRelevance(
  captionImage: Int32Array,
  rule: DuplicateTextRule,
  captionText?: Int32Array,
): Relevance {
  const nC = captionImage.length;
  if (rule === "instance") {
    const off = new Int32Array(nC + 1);
    for (let c = 0; c <= nC; c++) off[c] = c;
    return { off, img: Int32Array.from(captionImage) };
  }
  if (!captionText || captionText.length !== nC) {
    throw new Error(`duplicateTextRule "text" needs captionText with ${nC} entries`);
  }
  const owners = new Map<number, number[]>();
  for (let c = 0; c < nC; c++) {
    const t = captionText[c];
    let list = owners.get(t);
    if (!list) owners.set(t, list = []);
    list.push(captionImage[c]);
  }
  const sorted = new Map<number, number[]>();
  for (const [t, list] of owners) sorted.set(t, [...new Set(list)].sort((a, b) => a - b));
  const off = new Int32Array(nC + 1);
  for (let c = 0; c < nC; c++) off[c + 1] = off[c] + sorted.get(captionText[c])!.length;
  const img = new Int32Array(off[nC]);
  for (let c = 0; c < nC; c++) img.set(sorted.get(captionText[c])!, off[c]);
  return { off, img };
}

/** Restricts relevance to pairs inside one group of a partition. */
function restrictRelevance(rel: Relevance, groups: Group[], nC: number): Relevance {
  const groupOfCaption = new Int32Array(nC).fill(-1);
  groups.forEach((g, k) => groupOfCaption.fill(k, g.c0, g.c1));
  const off = new Int32Array(nC + 1);
  const img: number[] = [];
  for (let c = 0; c < nC; c++) {
    const g = groupOfCaption[c] >= 0 ? groups[groupOfCaption[c]] : undefined;
    for (let p = rel.off[c]; p < rel.off[c + 1]; p++) {
      const i = rel.img[p];
      if (g && i >= g.i0 && i < g.i1) img.push(i);
    }
    off[c + 1] = img.length;
  }
  return { off, img: Int32Array.from(img) };
}

/** Per-evaluation streaming state (all arrays global-indexed). */
class RankState {
  readonly bestI: Float64Array;
  readonly ownT: Float64Array;
  readonly cntI: Int32Array;
  readonly cntT: Int32Array;

  constructor(
    readonly groups: Group[],
    readonly rel: Relevance,
    nI: number,
    nC: number,
  ) {
    this.bestI = new Float64Array(nI).fill(-Infinity);
    this.ownT = new Float64Array(nC).fill(-Infinity);
    this.cntI = new Int32Array(nI);
    this.cntT = new Int32Array(nC);
  }

  /** Phase 1: `pairScore(c, i)` gives the (already computed) score of a relevant pair. */
  setThresholds(pairScore: (c: number, i: number) => number): void {
    const { off, img } = this.rel;
    for (let c = 0; c < this.ownT.length; c++) {
      for (let p = off[c]; p < off[c + 1]; p++) {
        const i = img[p];
        const v = pairScore(c, i);
        if (v !== v) throw new Error(`score of (image ${i}, caption ${c}) is NaN`);
        if (v > this.ownT[c]) this.ownT[c] = v;
        if (v > this.bestI[i]) this.bestI[i] = v;
      }
    }
    // A best relevant score of -Infinity leaves the threshold at -Infinity: every competitor
    // ties or beats it, which is the pessimistic answer.
  }

  /** Phase 2: one block of scores (rows i0.., columns c0..). */
  addBlock(blk: Float32Array, i0: number, ni: number, c0: number, nc: number): void {
    const { bestI, ownT, cntI, cntT } = this;
    const { off, img } = this.rel;
    for (const g of this.groups) {
      const r0 = Math.max(i0, g.i0), r1 = Math.min(i0 + ni, g.i1);
      const s0 = Math.max(c0, g.c0), s1 = Math.min(c0 + nc, g.c1);
      if (r0 >= r1 || s0 >= s1) continue;
      for (let i = r0; i < r1; i++) {
        const thr = bestI[i];
        const base = (i - i0) * nc - c0;
        let cnt = 0;
        for (let c = s0; c < s1; c++) {
          const v = blk[base + c];
          if (v >= thr) cnt++;
          if (v >= ownT[c]) cntT[c]++;
        }
        cntI[i] += cnt;
      }
      // Remove the relevant pairs counted above.
      for (let c = s0; c < s1; c++) {
        for (let p = off[c]; p < off[c + 1]; p++) {
          const i = img[p];
          if (i < r0 || i >= r1) continue;
          const v = blk[(i - i0) * nc + (c - c0)];
          if (v >= bestI[i]) cntI[i]--;
          if (v >= ownT[c]) cntT[c]--;
        }
      }
    }
  }
}

function checkNaN(blk: Float32Array, i0: number, c0: number, nc: number): void {
  for (let k = 0; k < blk.length; k++) {
    const v = blk[k];
    if (v !== v) {
      throw new Error(
        `score of (image ${i0 + Math.floor(k / nc)}, caption ${c0 + (k % nc)}) is NaN`,
      );
    }
  }
}

/** Scores all relevant pairs of `rel` (phase 1). Returns scores aligned with rel.img. */
async function scoreRelevantPairs(scorer: BlockScorer, rel: Relevance): Promise<Float32Array> {
  const nC = rel.off.length - 1;
  const P = rel.img.length;
  const caps = new Int32Array(P);
  for (let c = 0; c < nC; c++) caps.fill(c, rel.off[c], rel.off[c + 1]);
  if (scorer.scorePairs) {
    const s = await scorer.scorePairs(rel.img, caps);
    if (s.length !== P) throw new Error(`scorePairs returned ${s.length} scores, expected ${P}`);
    return s;
  }
  // Group runs of the same image with consecutive captions into 1-row blocks.
  const out = new Float32Array(P);
  let p = 0;
  while (p < P) {
    let q = p + 1;
    while (q < P && rel.img[q] === rel.img[p] && caps[q] === caps[q - 1] + 1) q++;
    const blk = await scorer.scoreBlock(rel.img[p], 1, caps[p], q - p);
    if (blk.length !== q - p) {
      throw new Error(`scoreBlock returned ${blk.length}, expected ${q - p}`);
    }
    out.set(blk, p);
    p = q;
  }
  return out;
}

/** Streams the whole matrix once, feeding every block to all states. */
async function streamBlocks(
  scorer: BlockScorer,
  states: RankState[],
  opts: RetrievalOptions,
): Promise<void> {
  const nI = scorer.nImages, nC = scorer.nCaptions;
  const bi = Math.max(1, opts.imageBlock ?? 256);
  const bc = Math.max(1, opts.captionBlock ?? 2048);
  const concurrency = Math.max(1, opts.concurrency ?? 4);
  const blocks: [number, number, number, number][] = [];
  for (let i0 = 0; i0 < nI; i0 += bi) {
    for (let c0 = 0; c0 < nC; c0 += bc) {
      blocks.push([i0, Math.min(bi, nI - i0), c0, Math.min(bc, nC - c0)]);
    }
  }
  let next = 0, done = 0;
  const consume = (blk: Float32Array, b: [number, number, number, number]) => {
    const [i0, ni, c0, nc] = b;
    if (blk.length !== ni * nc) {
      throw new Error(`scoreBlock(${i0}, ${ni}, ${c0}, ${nc}) returned ${blk.length} scores`);
    }
    checkNaN(blk, i0, c0, nc);
    for (const st of states) st.addBlock(blk, i0, ni, c0, nc);
    done++;
    opts.onProgress?.(done, blocks.length);
  };
  const inFlight = new Map<number, Promise<[number, Float32Array]>>();
  while (next < blocks.length || inFlight.size > 0) {
    while (next < blocks.length && inFlight.size < concurrency) {
      const id = next++;
      const b = blocks[id];
      const r = scorer.scoreBlock(b[0], b[1], b[2], b[3]);
      if (r instanceof Promise) inFlight.set(id, r.then((blk) => [id, blk]));
      else consume(r, b);
    }
    if (inFlight.size > 0) {
      const [id, blk] = await Promise.race(inFlight.values());
      inFlight.delete(id);
      consume(blk, blocks[id]);
    }
  }
}

/** numpy.median of integer ranks. */
function median(values: Int32Array): number {
  if (values.length === 0) return NaN;
  const s = Int32Array.from(values).sort();
  const h = s.length >> 1;
  return s.length % 2 === 1 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/** Recall@K (percent), median and mean rank of 1-based ranks. */
export function directionMetrics(ranks: Int32Array, ks: number[] = DEFAULT_KS): DirectionMetrics {
  const recall: Record<number, number> = {};
  let sum = 0;
  for (let q = 0; q < ranks.length; q++) sum += ranks[q];
  for (const k of ks) {
    let hits = 0;
    for (let q = 0; q < ranks.length; q++) if (ranks[q] <= k) hits++;
    recall[k] = ranks.length === 0 ? NaN : (100 * hits) / ranks.length;
  }
  return {
    n: ranks.length,
    recall,
    medianRank: median(ranks),
    meanRank: ranks.length === 0 ? NaN : sum / ranks.length,
  };
}

function rsumOf(i2t: DirectionMetrics, t2i: DirectionMetrics, ks: number[]): number {
  let s = 0;
  for (const k of ks) s += i2t.recall[k] + t2i.recall[k];
  return s;
}

function resolveRule(opts: RetrievalOptions): DuplicateTextRule {
  return opts.duplicateTextRule ?? (opts.captionText ? "text" : "instance");
}

function baseProtocol(
  opts: RetrievalOptions,
  ks: number[],
  rule: DuplicateTextRule,
  nI: number,
  captionImage: Int32Array,
  rel?: Relevance,
): Protocol {
  const perImage = new Int32Array(nI);
  for (let c = 0; c < captionImage.length; c++) perImage[captionImage[c]]++;
  let sharedTexts = 0;
  if (rel) {
    for (let c = 0; c < captionImage.length; c++) {
      if (rel.off[c + 1] - rel.off[c] > 1) sharedTexts++;
    }
  }
  return {
    name: "retrieval",
    version: 1,
    similarity: opts.similarity ?? "unspecified",
    split: opts.split ?? "unspecified",
    ks,
    rankBase: 1,
    recallUnit: "percent",
    imageToText: "query = image; rank of its best-ranked relevant caption among all captions; " +
      "hit@K if any relevant caption is in the top K",
    textToImage: "query = caption instance; rank of its (best) relevant image among all images",
    tieRule: "pessimistic: a competitor scoring >= the best relevant score is ranked ahead",
    duplicateTextRule: rule,
    captionInstancesWithSeveralRelevantImages: sharedTexts,
    median: "numpy median of 1-based ranks (mean of the two middle values for even n)",
    rsum: `sum of R@{${ks.join(",")}} over both directions`,
    counts: {
      images: nI,
      captions: captionImage.length,
      captionsPerImage: countSummary(perImage),
    },
  };
}

interface Partition {
  groups: Group[];
}

async function runPartitions(
  scores: ScoreSource,
  captionImage: Int32Array,
  partitions: Partition[],
  opts: RetrievalOptions,
): Promise<{ scorer: BlockScorer; states: RankState[]; rel: Relevance; rule: DuplicateTextRule }> {
  const nC = captionImage.length;
  const scorer = toScorer(scores, nC, opts.nImages ?? inferImages(scores, captionImage));
  const nI = scorer.nImages;
  validateCaptionImage(captionImage, nI);
  const rule = resolveRule(opts);
  const rel = buildRelevance(captionImage, rule, opts.captionText);
  const pairScores = await scoreRelevantPairs(scorer, rel);
  const states = partitions.map((part) => {
    const r = part.groups.length === 1 && part.groups[0].i0 === 0 && part.groups[0].i1 === nI &&
        part.groups[0].c0 === 0 && part.groups[0].c1 === nC
      ? rel
      : restrictRelevance(rel, part.groups, nC);
    const st = new RankState(part.groups, r, nI, nC);
    return st;
  });
  // Thresholds from the global relevant-pair scores (a restricted relevance is a subset).
  const lookup = (c: number, i: number) => {
    for (let p = rel.off[c]; p < rel.off[c + 1]; p++) if (rel.img[p] === i) return pairScores[p];
    throw new Error("internal: relevant pair not found");
  };
  for (const st of states) st.setThresholds(lookup);
  await streamBlocks(scorer, states, opts);
  return { scorer, states, rel, rule };
}

function inferImages(scores: ScoreSource, captionImage: Int32Array): number | undefined {
  if (scores instanceof Float32Array) return scores.length / captionImage.length;
  if (typeof scores === "function") {
    let m = -1;
    for (let c = 0; c < captionImage.length; c++) if (captionImage[c] > m) m = captionImage[c];
    return m + 1;
  }
  return scores.nImages;
}

function resultFor(
  st: RankState,
  g: Group,
  ks: number[],
  protocol: Protocol,
): RetrievalResult {
  const i2t = new Int32Array(g.i1 - g.i0);
  for (let i = g.i0; i < g.i1; i++) i2t[i - g.i0] = 1 + st.cntI[i];
  const t2i = new Int32Array(g.c1 - g.c0);
  for (let c = g.c0; c < g.c1; c++) t2i[c - g.c0] = 1 + st.cntT[c];
  const imageToText = directionMetrics(i2t, ks);
  const textToImage = directionMetrics(t2i, ks);
  return {
    protocol,
    imageToText,
    textToImage,
    rsum: rsumOf(imageToText, textToImage, ks),
    ranks: { imageToText: i2t, textToImage: t2i },
  };
}

/**
 * Retrieval over all images and all captions (one pass over the score matrix).
 * `captionImage[c]` is the image of caption instance c; images may have any number >= 1.
 */
export async function evaluateRetrieval(
  scores: ScoreSource,
  captionImage: Int32Array,
  opts: RetrievalOptions = {},
): Promise<RetrievalResult> {
  const ks = opts.ks ?? DEFAULT_KS;
  const nC = captionImage.length;
  const nI = opts.nImages ?? inferImages(scores, captionImage)!;
  const all: Group = { i0: 0, i1: nI, c0: 0, c1: nC };
  const { states, rel, rule } = await runPartitions(
    scores,
    captionImage,
    [{ groups: [all] }],
    opts,
  );
  return resultFor(states[0], all, ks, baseProtocol(opts, ks, rule, nI, captionImage, rel));
}

export interface CocoRetrievalOptions extends RetrievalOptions {
  /** Images per fold of the "1k" protocol (default 1000). */
  foldSize?: number;
}

export interface CocoRetrievalResult {
  "5k": RetrievalResult;
  /** null when the image count is not a multiple (>= 2) of foldSize; see `protocol1kSkipped`. */
  "1k": FoldedRetrievalResult | null;
  protocol1kSkipped?: string;
}

/**
 * COCO protocols in one pass over the matrix: "5k" = all images and captions; "1k" = the mean
 * over folds of `foldSize` consecutive images with their captions (5 folds for 5,000 images).
 * The captions of each fold must be a contiguous range (sort captions by image).
 */
export async function cocoRetrieval(
  scores: ScoreSource,
  captionImage: Int32Array,
  opts: CocoRetrievalOptions = {},
): Promise<CocoRetrievalResult> {
  const ks = opts.ks ?? DEFAULT_KS;
  const nC = captionImage.length;
  const nI = opts.nImages ?? inferImages(scores, captionImage)!;
  const foldSize = opts.foldSize ?? 1000;
  const all: Group = { i0: 0, i1: nI, c0: 0, c1: nC };
  let folds: Group[] | null = null;
  let skipped: string | undefined;
  if (nI % foldSize === 0 && nI / foldSize >= 2) {
    folds = foldGroups(captionImage, nI, foldSize);
  } else {
    skipped = `${nI} images is not a multiple (>= 2) of the fold size ${foldSize}`;
  }
  const parts: Partition[] = [{ groups: [all] }];
  if (folds) parts.push({ groups: folds });
  const { states, rel, rule } = await runPartitions(scores, captionImage, parts, opts);
  const proto5k = baseProtocol(opts, ks, rule, nI, captionImage, rel);
  proto5k.protocol = `${nI} images vs all ${nC} captions ("5k" when 5,000 images)`;
  const r5k = resultFor(states[0], all, ks, proto5k);
  if (!folds) return { "5k": r5k, "1k": null, protocol1kSkipped: skipped };
  const foldResults = folds.map((g, f) => {
    const p = baseProtocol(
      opts,
      ks,
      rule,
      g.i1 - g.i0,
      captionImage.subarray(g.c0, g.c1).map((i) => i - g.i0),
    );
    p.fold = { index: f, images: [g.i0, g.i1], captions: [g.c0, g.c1] };
    delete p.captionInstancesWithSeveralRelevantImages;
    return resultFor(states[1], g, ks, p);
  });
  const mean = meanMetrics(foldResults, ks);
  const proto1k: Protocol = {
    ...baseProtocol(opts, ks, rule, nI, captionImage, restrictRelevance(rel, folds, nC)),
    protocol: `mean over ${folds.length} folds of ${foldSize} consecutive images with their ` +
      "captions; each fold is ranked independently; every metric (recalls, median and mean " +
      "rank, rsum) is the unweighted mean of the per-fold values",
    folds: folds.length,
    foldSize,
  };
  return { "5k": r5k, "1k": { protocol: proto1k, ...mean, folds: foldResults } };
}

function foldGroups(captionImage: Int32Array, nI: number, foldSize: number): Group[] {
  const nF = nI / foldSize;
  const groups: Group[] = [];
  for (let f = 0; f < nF; f++) {
    const i0 = f * foldSize, i1 = i0 + foldSize;
    let c0 = -1, c1 = -1, count = 0;
    for (let c = 0; c < captionImage.length; c++) {
      const i = captionImage[c];
      if (i >= i0 && i < i1) {
        if (c0 < 0) c0 = c;
        c1 = c + 1;
        count++;
      }
    }
    if (count === 0 || c1 - c0 !== count) {
      throw new Error(
        `fold ${f} (images ${i0}..${i1 - 1}): its captions are not a contiguous range; ` +
          "sort captions by image for the 1k protocol",
      );
    }
    groups.push({ i0, i1, c0, c1 });
  }
  return groups;
}

function meanMetrics(results: RetrievalMetrics[], ks: number[]): RetrievalMetrics {
  const avg = (f: (r: RetrievalMetrics) => number) =>
    results.reduce((s, r) => s + f(r), 0) / results.length;
  const dir = (pick: (r: RetrievalMetrics) => DirectionMetrics): DirectionMetrics => {
    const recall: Record<number, number> = {};
    for (const k of ks) recall[k] = avg((r) => pick(r).recall[k]);
    return {
      n: results.reduce((s, r) => s + pick(r).n, 0),
      recall,
      medianRank: avg((r) => pick(r).medianRank),
      meanRank: avg((r) => pick(r).meanRank),
    };
  };
  return {
    imageToText: dir((r) => r.imageToText),
    textToImage: dir((r) => r.textToImage),
    rsum: avg((r) => r.rsum),
  };
}

/**
 * Flat metric names, as the retrieval stage records them: i2t_R@1 ... i2t_median_rank,
 * i2t_mean_rank, t2i_..., rsum (e.g. {"i2t_R@1": 52.1, ..., "rsum": 410.2}).
 */
export function retrievalMetricNames(m: RetrievalMetrics, prefix = ""): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [tag, d] of [["i2t", m.imageToText], ["t2i", m.textToImage]] as const) {
    for (const [k, v] of Object.entries(d.recall)) out[`${prefix}${tag}_R@${k}`] = v;
    out[`${prefix}${tag}_median_rank`] = d.medianRank;
    out[`${prefix}${tag}_mean_rank`] = d.meanRank;
  }
  out[`${prefix}rsum`] = m.rsum;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Per-query paired differences (what `diff` resamples; the statistics are in
// stages/lib/stats/intervals.ts)

/**
 * Per-unit differences of R@K(B) - R@K(A) in percent points, for two models ranked on the same
 * queries: per unit, 100 * (hits of B - hits of A) and the unit's query count, so that
 * sum(diff) / sum(size) is the R@K difference. A unit is a query, or with `clusters` (one id per
 * query, e.g. each caption's image for text->image) all the queries of a cluster, numbered in
 * order of first appearance, so correlated queries move together when resampled.
 */
export function hitDifferenceUnits(
  ranksA: Int32Array,
  ranksB: Int32Array,
  k: number,
  clusters?: Int32Array,
): { diff: Float64Array; size: Float64Array } {
  const n = ranksA.length;
  if (ranksB.length !== n) {
    throw new RangeError(`rank arrays differ in length: ${n} vs ${ranksB.length}`);
  }
  if (n === 0) throw new RangeError("no queries");
  if (clusters && clusters.length !== n) {
    throw new RangeError("clusters must have one id per query");
  }
  const unitOf = new Int32Array(n);
  let units = n;
  if (clusters) {
    const ids = new Map<number, number>();
    for (let q = 0; q < n; q++) {
      if (!ids.has(clusters[q])) ids.set(clusters[q], ids.size);
      unitOf[q] = ids.get(clusters[q])!;
    }
    units = ids.size;
  } else {
    for (let q = 0; q < n; q++) unitOf[q] = q;
  }
  const diff = new Float64Array(units), size = new Float64Array(units);
  for (let q = 0; q < n; q++) {
    diff[unitOf[q]] += 100 * ((ranksB[q] <= k ? 1 : 0) - (ranksA[q] <= k ? 1 : 0));
    size[unitOf[q]]++;
  }
  return { diff, size };
}
