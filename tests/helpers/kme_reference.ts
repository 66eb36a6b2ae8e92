/**
 * The KME score as the naive direct double sum in f64, for tests only (it underflows for tiny
 * sigma2, which the LSE form of the engines does not):
 *   log( sum_ij alpha_i beta_j exp((<u_i, v_j> - 1) / sigma2) ),
 * alpha = softmax(image point scores), beta = softmax(caption point scores); padding points
 * (score -Infinity) get weight 0.
 */
import type { PointSets } from "../../stages/lib/similarity/similarity.ts";

export function kmeScoreReference(
  images: PointSets,
  i: number,
  captions: PointSets,
  c: number,
  sigma2: number,
): number {
  const d = images.dim;
  const softmax = (logits: Float32Array, o: number, n: number) => {
    let mx = -Infinity;
    for (let k = 0; k < n; k++) mx = Math.max(mx, logits[o + k]);
    const w = new Float64Array(n);
    let s = 0;
    for (let k = 0; k < n; k++) s += w[k] = Math.exp(logits[o + k] - mx);
    return w.map((x) => x / s);
  };
  const alpha = softmax(images.logits, i * images.points, images.points);
  const beta = softmax(captions.logits, c * captions.points, captions.points);
  let total = 0;
  for (let m = 0; m < images.points; m++) {
    for (let n = 0; n < captions.points; n++) {
      let dot = 0;
      for (let k = 0; k < d; k++) {
        dot += images.data[(i * images.points + m) * d + k] *
          captions.data[(c * captions.points + n) * d + k];
      }
      total += alpha[m] * beta[n] * Math.exp((dot - 1) / sigma2);
    }
  }
  return Math.log(total);
}
