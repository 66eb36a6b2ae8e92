/**
 * How far from low rank is a synthetic world's PMI where InfoNCE looks? For the occluded world
 * of `prepare/synthetic` (stages/lib/synthetic/occlusion.ts) with the given params, the exact
 * PMI matrix over image classes x caption structures, centred per row and column (InfoNCE is
 * blind to per-image and per-caption shifts) and weighted by p(x) p(y) (the pairs a contrastive
 * batch draws), and the RMS error (nats) of its best rank-d approximation for several d
 * (Eckart-Young on the weighted matrix). A world whose residual is 0 at d can be fitted exactly
 * by d-dimensional dot products plus shifts; the README quotes this for experiments/pmi-rank.yaml.
 *
 *   deno run -A bench/pmi_residuals.ts HIDE CORRELATION ARCHETYPES NOISE MENTION
 *   deno run -A bench/pmi_residuals.ts 0.6 0.99 270 0.02 0.8   # pmi-rank's high-rank world
 *   deno run -A bench/pmi_residuals.ts 0.6 0 270 0.02 0.8      # its low-rank control
 */
import { OccludedWorld } from "../stages/lib/synthetic/occlusion.ts";
import { singularValues } from "../stages/lib/spectrum.ts";

const [hide, correlation, archetypes, noise, m] = Deno.args.map(Number);
const mention = { shape: m, colour: m, size: m, position: m };
const w = new OccludedWorld({ mention, attribute_noise: noise }, { hide, correlation, archetypes });
const nS = w.scene.numCaptionStructures;
const { classes, data } = w.occlusion.pmiMatrix();
const nX = classes.length;
const pc = Float64Array.from(classes, (c) => w.occlusion.classProb[c]);
const ps = Float64Array.from(w.occlusion.logPs, Math.exp);
const r = new Float64Array(nX), k = new Float64Array(nS);
let mean = 0;
for (let i = 0; i < nX; i++) {
  for (let j = 0; j < nS; j++) {
    const v = data[i * nS + j];
    r[i] += ps[j] * v;
    k[j] += pc[i] * v;
    mean += pc[i] * ps[j] * v;
  }
}
const a = new Float64Array(nX * nS);
for (let i = 0; i < nX; i++) {
  for (let j = 0; j < nS; j++) {
    a[i * nS + j] = Math.sqrt(pc[i] * ps[j]) * (data[i * nS + j] - r[i] - k[j] + mean);
  }
}
const sv = singularValues(a, nX, nS);
const total = Math.sqrt(sv.reduce((s, x) => s + x * x, 0));
const residual: Record<number, number> = {};
for (const d of [4, 8, 16, 24, 32, 48, 64]) {
  let t = 0;
  for (let i = d; i < sv.length; i++) t += sv[i] ** 2;
  residual[d] = Number(Math.sqrt(t).toFixed(3));
}
console.log(JSON.stringify({
  params: { hide, correlation, archetypes, attribute_noise: noise, mention: m },
  image_classes: nX,
  caption_structures: nS,
  mutual_information: Number(w.occlusion.mutualInformation().toFixed(3)),
  weighted_centred_rms: Number(total.toFixed(3)),
  residual_rms_at_d: residual,
}));
