/**
 * The occluded world of `prepare/synthetic` (param `occlusion`; issue 14): every image hides
 * each attribute independently with probability `hide`, and shows which ones it hides (render.ts,
 * `renderOccluded`). What an image x reveals is its *class* c(x) = (which attributes are
 * hidden, the values of the visible ones); its nuisance says nothing about the hidden values, so
 * the posterior over latents is exact and non-degenerate:
 *
 *     p(z | x) = p(z | c) = p(z) [z agrees with c's visible values] / sum_{z' agrees} p(z'),
 *
 * and, captions being drawn from p(y | z) as in the revealed world (x and y independent given z),
 *
 *     PMI(x, y) = log sum_z p(z | c(x)) p(s(y) | z) - log p(s(y)),
 *
 * a log of a mixture: not additive over attributes once two correlated attributes are hidden
 * together. exp(PMI) = sum_z p(z | c) (p(s | z) / p(s)) keeps rank <= |Z| = 540; PMI does not.
 *
 * The prior mixes the revealed world's prior with a uniform distribution over a fixed list of
 * "archetype" scenes (the rank knob, `correlation`):
 *
 *     p(z) = (1 - correlation) p_revealed(z) + correlation [z in A] / |A|.
 *
 * At correlation 0 the attributes are only weakly coupled (each shape's favourite colour, large
 * objects in the centre), hiding one attribute says little about another and PMI is nearly
 * additive; towards 1 the scene is mostly one of the archetypes, so the visible attributes
 * narrow the hidden ones down to a few joint values and PMI becomes a log of a few-component
 * mixture that varies with what is visible. |Z| stays 540 throughout.
 *
 * `OcclusionModel` is generic (any attribute sizes, prior and caption likelihood table) so that
 * tests can check it on small worlds computed by hand; `OccludedWorld` binds it to the scene
 * model of model.ts.
 */
import { labelSeed, Rng } from "../random.ts";
import { decodeLatent, decodeOptional, type ModelOptions, SceneModel } from "./scene_model.ts";

export interface OcclusionParams {
  /** Probability that an image hides each attribute (independently), in [0, 1). */
  hide: number;
  /** Weight of the archetypes in the prior, in [0, 1): the rank knob. */
  correlation: number;
  /** Number of archetype scenes. */
  archetypes: number;
}

/** The archetype list is fixed (this seed, not the stage seed): the world is part of the params. */
export const ARCHETYPE_SEED = labelSeed(0, "synthetic", "occlusion", "archetypes");

/**
 * The archetype latents: the first `count` latent indices of a permutation of 0..numLatents-1
 * drawn with `ARCHETYPE_SEED`, sorted (so a smaller list is a subset of a larger one).
 */
export function archetypeLatents(numLatents: number, count: number): Int32Array {
  if (!(Number.isInteger(count) && count >= 1 && count <= numLatents)) {
    throw new RangeError(`archetypes must be an integer in [1, ${numLatents}], got ${count}`);
  }
  const perm = new Rng(ARCHETYPE_SEED).shuffle(
    Int32Array.from({ length: numLatents }, (_, i) => i),
  );
  return perm.slice(0, count).sort();
}

/** (1 - correlation) base + correlation * uniform(archetypes), base normalised first. */
export function mixturePrior(
  base: ArrayLike<number>,
  archetypes: ArrayLike<number>,
  correlation: number,
): Float64Array {
  if (!(correlation >= 0 && correlation <= 1)) {
    throw new RangeError(`correlation must be in [0, 1], got ${correlation}`);
  }
  let total = 0;
  for (let i = 0; i < base.length; i++) total += base[i];
  const p = new Float64Array(base.length);
  for (let i = 0; i < base.length; i++) p[i] = (1 - correlation) * (base[i] / total);
  for (let k = 0; k < archetypes.length; k++) p[archetypes[k]] += correlation / archetypes.length;
  return p;
}

/**
 * Image classes, posteriors and exact PMI of an occluded world. Latents and caption
 * structures use the mixed-radix indices of model.ts (first attribute most significant); an
 * image class uses the caption-structure radix, with -1 meaning "hidden" (so a fully visible
 * class has the index of the caption structure that names every attribute of its latent).
 */
export class OcclusionModel {
  readonly sizes: number[];
  readonly numLatents: number;
  readonly numStructures: number;
  readonly numClasses: number;
  readonly prior: Float64Array;
  readonly hide: number;
  /** log p(s | z), [s * numLatents + z] (as SceneModel). */
  readonly logPsGivenZ: Float64Array;
  readonly logPs: Float64Array;
  /** p(class), over all numClasses (0 where impossible). */
  readonly classProb: Float64Array;
  /** p(s | z), [z * numStructures + s]. */
  #lik: Float64Array;

  /**
   * `logPsGivenZ` is [s * numLatents + z]; `logPs` the matching log p(s) (computed from the prior
   * when omitted). `prior` need not be normalised.
   */
  constructor(
    sizes: readonly number[],
    prior: ArrayLike<number>,
    logPsGivenZ: ArrayLike<number>,
    hide: number,
    logPs?: ArrayLike<number>,
  ) {
    if (!(hide >= 0 && hide < 1)) throw new RangeError(`hide must be in [0, 1), got ${hide}`);
    this.sizes = [...sizes];
    this.hide = hide;
    this.numLatents = sizes.reduce((a, b) => a * b, 1);
    this.numClasses = sizes.reduce((a, b) => a * (b + 1), 1);
    const nZ = this.numLatents;
    if (prior.length !== nZ) throw new RangeError(`prior has ${prior.length} entries, not ${nZ}`);
    if (logPsGivenZ.length % nZ !== 0) throw new RangeError("logPsGivenZ is not [s x z]");
    const nS = (this.numStructures = logPsGivenZ.length / nZ);
    let total = 0;
    for (let z = 0; z < nZ; z++) total += prior[z];
    this.prior = Float64Array.from(prior, (w) => w / total);
    this.logPsGivenZ = Float64Array.from(logPsGivenZ);
    this.#lik = new Float64Array(nZ * nS);
    for (let s = 0; s < nS; s++) {
      for (let z = 0; z < nZ; z++) this.#lik[z * nS + s] = Math.exp(this.logPsGivenZ[s * nZ + z]);
    }
    if (logPs) {
      this.logPs = Float64Array.from(logPs);
    } else {
      this.logPs = new Float64Array(nS);
      for (let s = 0; s < nS; s++) {
        let p = 0;
        for (let z = 0; z < nZ; z++) p += this.prior[z] * this.#lik[z * nS + s];
        this.logPs[s] = Math.log(p);
      }
    }
    this.classProb = new Float64Array(this.numClasses);
    for (let z = 0; z < nZ; z++) {
      for (let mask = 0; mask < 1 << sizes.length; mask++) {
        this.classProb[this.classOf(z, mask)] += this.maskProb(mask) * this.prior[z];
      }
    }
  }

  /** Values of latent z, one per attribute. */
  latent(zi: number): number[] {
    return decodeLatent(zi, this.sizes);
  }

  /** p(mask): bit a of `mask` set = attribute a hidden. */
  maskProb(mask: number): number {
    let p = 1;
    for (let a = 0; a < this.sizes.length; a++) p *= (mask >> a) & 1 ? this.hide : 1 - this.hide;
    return p;
  }

  /** The class of an image of latent `zi` that hides the attributes of `mask`. */
  classOf(zi: number, mask: number): number {
    const z = this.latent(zi);
    let c = 0;
    for (let a = 0; a < this.sizes.length; a++) {
      c = c * (this.sizes[a] + 1) + ((mask >> a) & 1 ? 0 : z[a] + 1);
    }
    return c;
  }

  /** Per attribute: -1 when hidden, else the visible value. */
  classValues(ci: number): number[] {
    return decodeOptional(ci, this.sizes);
  }

  /** p(z | class): the latents that agree with the visible values, and their probabilities. */
  posterior(ci: number): { latents: Int32Array; probs: Float64Array } {
    const v = this.classValues(ci);
    const latents: number[] = [];
    const probs: number[] = [];
    let total = 0;
    for (let z = 0; z < this.numLatents; z++) {
      const zv = this.latent(z);
      if (v.some((x, a) => x >= 0 && x !== zv[a])) continue;
      latents.push(z);
      probs.push(this.prior[z]);
      total += this.prior[z];
    }
    if (!(total > 0)) throw new RangeError(`class ${ci} has probability 0`);
    return { latents: Int32Array.from(latents), probs: Float64Array.from(probs, (p) => p / total) };
  }

  /** Exact PMI(class, s) for every caption structure s (nats). */
  pmiRow(ci: number, out = new Float64Array(this.numStructures)): Float64Array {
    const nS = this.numStructures;
    const nZ = this.numLatents;
    const { latents, probs } = this.posterior(ci);
    if (latents.length === 1) {
      // z revealed: the revealed world's formula, bit for bit.
      const z = latents[0];
      for (let s = 0; s < nS; s++) out[s] = this.logPsGivenZ[s * nZ + z] - this.logPs[s];
      return out;
    }
    out.fill(0);
    for (let k = 0; k < latents.length; k++) {
      const w = probs[k];
      const row = latents[k] * nS;
      for (let s = 0; s < nS; s++) out[s] += w * this.#lik[row + s];
    }
    for (let s = 0; s < nS; s++) out[s] = Math.log(out[s]) - this.logPs[s];
    return out;
  }

  /** Exact PMI(class, s). */
  pmi(ci: number, si: number): number {
    return this.pmiRow(ci)[si];
  }

  /** Indices of the classes with p(class) > 0, ascending. */
  possibleClasses(): Int32Array {
    const out: number[] = [];
    for (let c = 0; c < this.numClasses; c++) if (this.classProb[c] > 0) out.push(c);
    return Int32Array.from(out);
  }

  /** The exact PMI matrix, row-major [possible class x caption structure]. */
  pmiMatrix(): { classes: Int32Array; data: Float64Array } {
    const classes = this.possibleClasses();
    const nS = this.numStructures;
    const data = new Float64Array(classes.length * nS);
    classes.forEach((c, r) => this.pmiRow(c, data.subarray(r * nS, (r + 1) * nS)));
    return { classes, data };
  }

  /** I(X; Y) = sum_c p(c) sum_s p(s | c) PMI(c, s), nats. */
  mutualInformation(): number {
    let mi = 0;
    const row = new Float64Array(this.numStructures);
    for (let c = 0; c < this.numClasses; c++) {
      const pc = this.classProb[c];
      if (!(pc > 0)) continue;
      this.pmiRow(c, row);
      for (let s = 0; s < this.numStructures; s++) {
        const v = row[s];
        mi += pc * Math.exp(v + this.logPs[s]) * v;
      }
    }
    return mi;
  }
}

/** The occluded world on the scene model: its prior, captions (model.ts) and occlusion. */
export class OccludedWorld {
  /** The scene model with the mixture prior (sampling, captions, log p(s)). */
  readonly scene: SceneModel;
  readonly occlusion: OcclusionModel;
  readonly archetypes: Int32Array;
  readonly params: OcclusionParams;

  constructor(options: Omit<ModelOptions, "prior">, params: OcclusionParams) {
    if (!(params.correlation >= 0 && params.correlation < 1)) {
      throw new RangeError(`correlation must be in [0, 1), got ${params.correlation}`);
    }
    const base = new SceneModel(options);
    this.params = params;
    this.archetypes = archetypeLatents(base.numLatents, params.archetypes);
    // At correlation 0 the revealed world's model itself (its prior, bit for bit).
    this.scene = params.correlation === 0 ? base : new SceneModel({
      ...options,
      prior: mixturePrior(base.prior, this.archetypes, params.correlation),
    });
    this.occlusion = new OcclusionModel(
      this.scene.sizes,
      this.scene.prior,
      this.scene.logPsGivenZ,
      params.hide,
      this.scene.logPs,
    );
  }

  /** Draws which attributes an image hides (bit a = attribute a). */
  sampleMask(rng: Rng): number {
    let mask = 0;
    for (let a = 0; a < this.scene.sizes.length; a++) {
      if (rng.bernoulli(this.params.hide)) mask |= 1 << a;
    }
    return mask;
  }
}
