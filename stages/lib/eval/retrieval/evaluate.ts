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
import { countSummary, type Protocol } from "../protocol.ts";
import type { BlockScorer } from "./scores.ts";
import type { DuplicateTextRule, Relevance } from "./relevance.ts";
import { type ScoreSource, toScorer } from "./scores.ts";
import {
  buildRelevance,
  type Group,
  restrictRelevance,
  validateCaptionImage,
} from "./relevance.ts";
import { RankState, scoreRelevantPairs, streamBlocks } from "./ranks.ts";
import {
  DEFAULT_KS,
  directionMetrics,
  type FoldedRetrievalResult,
  meanMetrics,
  type RetrievalResult,
  rsumOf,
} from "./metrics.ts";

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
