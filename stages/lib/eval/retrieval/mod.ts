/**
 * Cross-modal retrieval (image->text, text->image) by streaming over the score matrix; the
 * definitions and the algorithm are in evaluate.ts. One module per part: scores.ts (where scores
 * come from), relevance.ts (which pairs count), ranks.ts (the streaming passes), metrics.ts
 * (R@K and ranks), evaluate.ts (the protocols: whole split, COCO's 1k folds).
 */
export type { BlockScorer, ScoreBlockFn, ScoreSource } from "./scores.ts";
export { matrixScorer } from "./scores.ts";
export type {
  DirectionMetrics,
  FoldedRetrievalResult,
  RetrievalMetrics,
  RetrievalResult,
} from "./metrics.ts";
export { directionMetrics, hitDifferenceUnits, retrievalMetricNames } from "./metrics.ts";
export type { CocoRetrievalOptions, CocoRetrievalResult, RetrievalOptions } from "./evaluate.ts";
export type { DuplicateTextRule } from "./relevance.ts";
export { cocoRetrieval, evaluateRetrieval } from "./evaluate.ts";
