/**
 * Every evaluation result carries a `protocol`: a plain JSON object that says exactly how the
 * numbers were computed (metric names, K values, tie rule, split, counts), so that a metrics
 * file can be read without the code. The evaluation stages write it next to the numbers.
 */
export interface Protocol {
  /** Protocol family, e.g. "retrieval", "linear-probe", "zero-shot", "pmi-fidelity". */
  name: string;
  /** Version of this description; bump when a rule changes meaning. */
  version: number;
  [key: string]: unknown;
}

/** Summary of a count vector (e.g. captions per image) for protocol descriptions. */
export function countSummary(counts: ArrayLike<number>): {
  min: number;
  max: number;
  mean: number;
  histogram: Record<string, number>;
} {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  const histogram: Record<string, number> = {};
  for (let i = 0; i < counts.length; i++) {
    const v = counts[i];
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
    histogram[String(v)] = (histogram[String(v)] ?? 0) + 1;
  }
  if (counts.length === 0) return { min: 0, max: 0, mean: 0, histogram };
  return { min, max, mean: sum / counts.length, histogram };
}
