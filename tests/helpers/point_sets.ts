/** Random weighted point sets for the scoring tests. */
import type { PointSets } from "../../stages/lib/eval/scoring.ts";
import { Rng } from "../../stages/lib/random.ts";

/** n random sets of P unit points in R^d; the last `pad` points of each set are padding. */
export function randomSets(n: number, P: number, d: number, seed: number, pad = 0): PointSets {
  const r = new Rng(seed);
  const data = new Float32Array(n * P * d);
  for (let q = 0; q < n * P; q++) {
    let s = 0;
    for (let k = 0; k < d; k++) {
      const g = r.float() * 2 - 1;
      data[q * d + k] = g;
      s += g * g;
    }
    for (let k = 0; k < d; k++) data[q * d + k] /= Math.sqrt(s);
  }
  const logits = new Float32Array(n * P).map((_, k) =>
    k % P >= P - pad ? -Infinity : r.float() * 4 - 2
  );
  return { n, points: P, dim: d, data, logits };
}
