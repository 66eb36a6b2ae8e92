/**
 * The generative model behind `prepare/synthetic`: a latent scene z = (size, colour, shape,
 * position) with a non-uniform, non-factorised prior p(z), and captions y ~ p(y | z) that
 * mention a random subset of the attributes, with attribute noise, synonyms and templates.
 * Image x is rendered from z with nuisance (jitter, rotation, tint, noise) drawn independently
 * of the caption, so x and y are independent given z, and z is a function of x; hence
 *
 *     PMI(x, y) = log p(y | z(x)) - log p(y),   p(y) = sum_z p(z) p(y | z),
 *
 * computed exactly by enumerating the latent space and the caption space.
 *
 * Captions are first drawn as a *structure* s (for each attribute: omitted, or the value it
 * mentions) and then worded (template, article, synonyms). The wording depends on s only, and
 * the map (s, wording) -> text is injective (`parse` inverts it), so text-level PMI equals
 * structure-level PMI: wording probabilities cancel from p(y | z) / p(y).
 */
import type { Rng } from "../random.ts";

export interface AttributeSpec {
  name: AttributeName;
  values: readonly string[];
  /** Unnormalised marginal weights of the prior. */
  weights: readonly number[];
  /** Caption phrases per value (synonyms; chosen uniformly). */
  phrases: readonly (readonly string[])[];
}

export type AttributeName = "size" | "colour" | "shape" | "position";

/** Attributes in caption order: "<size> <colour> <shape> <position>". */
export const ATTRIBUTES: readonly AttributeSpec[] = [
  {
    name: "size",
    values: ["small", "medium", "large"],
    weights: [0.3, 0.45, 0.25],
    phrases: [
      ["small", "tiny", "little"],
      ["medium", "medium-sized", "mid-sized"],
      ["large", "big", "huge"],
    ],
  },
  {
    name: "colour",
    values: ["red", "green", "blue", "yellow", "purple", "orange"],
    weights: [0.25, 0.2, 0.18, 0.15, 0.12, 0.1],
    phrases: [
      ["red", "crimson"],
      ["green", "emerald"],
      ["blue", "cobalt"],
      ["yellow", "golden"],
      ["purple", "violet"],
      ["orange", "amber"],
    ],
  },
  {
    name: "shape",
    values: ["circle", "square", "triangle", "star", "cross", "diamond"],
    weights: [0.28, 0.22, 0.18, 0.14, 0.1, 0.08],
    phrases: [
      ["circle", "disc"],
      ["square", "box"],
      ["triangle"],
      ["star"],
      ["cross", "plus sign"],
      ["diamond", "rhombus"],
    ],
  },
  {
    name: "position",
    values: ["centre", "top left", "top right", "bottom left", "bottom right"],
    weights: [0.3, 0.2, 0.15, 0.2, 0.15],
    phrases: [
      ["in the centre", "in the middle"],
      ["in the top left corner", "at the top left"],
      ["in the top right corner", "at the top right"],
      ["in the bottom left corner", "at the bottom left"],
      ["in the bottom right corner", "at the bottom right"],
    ],
  },
];

export const ATTR_INDEX: Record<AttributeName, number> = {
  size: 0,
  colour: 1,
  shape: 2,
  position: 3,
};

/** Noun used when the shape is not mentioned. */
export const GENERIC_NOUNS = ["object", "shape", "thing"] as const;
/** Caption templates; `{np}` is the noun phrase with its article. */
export const TEMPLATES = ["{np}", "a picture of {np}", "an image showing {np}", "there is {np}"];
const TEMPLATE_WEIGHTS = [0.4, 0.2, 0.2, 0.2];

/**
 * Couplings that make the prior non-factorised: p(z) is proportional to the product of the
 * marginal weights times these factors.
 */
/** Latent index -> one value per attribute (mixed radix, the first attribute most significant). */
export function decodeLatent(index: number, sizes: readonly number[]): number[] {
  const z = new Array<number>(sizes.length);
  for (let a = sizes.length - 1; a >= 0; a--) {
    z[a] = index % sizes[a];
    index = Math.floor(index / sizes[a]);
  }
  return z;
}

/**
 * Index -> per attribute -1 (absent) or a value, in the mixed radix (size + 1) per attribute:
 * how caption structures and occluded image classes are numbered.
 */
export function decodeOptional(index: number, sizes: readonly number[]): number[] {
  const v = new Array<number>(sizes.length);
  for (let a = sizes.length - 1; a >= 0; a--) {
    const r = sizes[a] + 1;
    v[a] = (index % r) - 1;
    index = Math.floor(index / r);
  }
  return v;
}

export function couplingFactor(z: readonly number[]): number {
  let f = 1;
  // Each shape has a favourite colour (circle-red, square-green, ..., diamond-orange).
  if (z[ATTR_INDEX.shape] === z[ATTR_INDEX.colour]) f *= 3;
  // Large objects prefer the centre.
  if (z[ATTR_INDEX.size] === 2 && z[ATTR_INDEX.position] === 0) f *= 2;
  return f;
}

export interface ModelOptions {
  /** Probability that a caption mentions each attribute. */
  mention: Record<AttributeName, number>;
  /** Probability that a mentioned attribute names a wrong value (uniform over the others). */
  attribute_noise: number;
  /**
   * Unnormalised prior weights over latent indices, replacing the built-in prior (marginal
   * weights x `couplingFactor`); used by the occluded world (occlusion.ts).
   */
  prior?: ArrayLike<number>;
}

export interface SampledCaption {
  /** Caption structure: per attribute -1 (omitted) or the mentioned value. */
  structure: number[];
  /** Index of the structure in the caption space. */
  index: number;
  text: string;
}

export class SceneModel {
  readonly options: ModelOptions;
  /** Number of values per attribute. */
  readonly sizes: number[];
  readonly numLatents: number;
  readonly numCaptionStructures: number;
  /** p(z) over latent indices. */
  readonly prior: Float64Array;
  /** log p(s | z), [structure * numLatents + z]. */
  readonly logPsGivenZ: Float64Array;
  /** log p(s). */
  readonly logPs: Float64Array;
  #priorCdf: Float64Array;
  #mention: number[];

  constructor(options: ModelOptions) {
    this.options = options;
    this.sizes = ATTRIBUTES.map((a) => a.values.length);
    this.#mention = ATTRIBUTES.map((a) => options.mention[a.name]);
    const eps = options.attribute_noise;
    if (!(eps > 0 && eps < 1)) throw new RangeError("attribute_noise must be in (0, 1)");
    this.numLatents = this.sizes.reduce((a, b) => a * b, 1);
    this.numCaptionStructures = this.sizes.reduce((a, b) => a * (b + 1), 1);

    // Prior.
    const given = options.prior;
    if (given && given.length !== this.numLatents) {
      throw new RangeError(`prior has ${given.length} weights, expected ${this.numLatents}`);
    }
    this.prior = new Float64Array(this.numLatents);
    let total = 0;
    for (let zi = 0; zi < this.numLatents; zi++) {
      let w: number;
      if (given) {
        w = given[zi];
        if (!(w >= 0 && Number.isFinite(w))) throw new RangeError(`prior weight ${zi} is ${w}`);
      } else {
        const z = this.latent(zi);
        w = couplingFactor(z);
        for (let a = 0; a < ATTRIBUTES.length; a++) w *= ATTRIBUTES[a].weights[z[a]];
      }
      this.prior[zi] = w;
      total += w;
    }
    if (!(total > 0)) throw new RangeError("prior weights sum to 0");
    this.#priorCdf = new Float64Array(this.numLatents);
    let acc = 0;
    for (let zi = 0; zi < this.numLatents; zi++) {
      this.prior[zi] /= total;
      acc += this.prior[zi];
      this.#priorCdf[zi] = acc;
    }

    // Per-attribute log factors: f[a][(m + 1) * K + t] = log p(mention m | true value t).
    const factors = ATTRIBUTES.map((_, a) => {
      const k = this.sizes[a];
      const q = this.#mention[a];
      const f = new Float64Array((k + 1) * k);
      for (let t = 0; t < k; t++) {
        f[t] = Math.log(1 - q);
        for (let m = 0; m < k; m++) {
          f[(m + 1) * k + t] = Math.log(q * (m === t ? 1 - eps : eps / (k - 1)));
        }
      }
      return f;
    });

    // Exact tables over the whole caption-structure x latent space.
    const nS = this.numCaptionStructures;
    const nZ = this.numLatents;
    this.logPsGivenZ = new Float64Array(nS * nZ);
    this.logPs = new Float64Array(nS);
    const latents = Array.from({ length: nZ }, (_, zi) => this.latent(zi));
    for (let si = 0; si < nS; si++) {
      const s = this.structure(si);
      let py = 0;
      for (let zi = 0; zi < nZ; zi++) {
        const z = latents[zi];
        let lp = 0;
        for (let a = 0; a < s.length; a++) lp += factors[a][(s[a] + 1) * this.sizes[a] + z[a]];
        this.logPsGivenZ[si * nZ + zi] = lp;
        py += this.prior[zi] * Math.exp(lp);
      }
      this.logPs[si] = Math.log(py);
    }
  }

  /** Latent values (one index per attribute) of latent index `zi` (mixed radix, size first). */
  latent(zi: number): number[] {
    return decodeLatent(zi, this.sizes);
  }

  latentIndex(z: readonly number[]): number {
    let zi = 0;
    for (let a = 0; a < this.sizes.length; a++) zi = zi * this.sizes[a] + z[a];
    return zi;
  }

  /** Caption structure of index `si` (per attribute -1 = omitted, else mentioned value). */
  structure(si: number): number[] {
    return decodeOptional(si, this.sizes);
  }

  structureIndex(s: readonly number[]): number {
    let si = 0;
    for (let a = 0; a < this.sizes.length; a++) si = si * (this.sizes[a] + 1) + (s[a] + 1);
    return si;
  }

  /** Exact PMI(z, s) = log p(s | z) - log p(s), in nats. */
  pmi(zi: number, si: number): number {
    return this.logPsGivenZ[si * this.numLatents + zi] - this.logPs[si];
  }

  /** Exact mutual information I(Z; Y) in nats (= E[PMI] over the joint). */
  mutualInformation(): number {
    let mi = 0;
    const nZ = this.numLatents;
    for (let si = 0; si < this.numCaptionStructures; si++) {
      for (let zi = 0; zi < nZ; zi++) {
        const lp = this.logPsGivenZ[si * nZ + zi];
        mi += this.prior[zi] * Math.exp(lp) * (lp - this.logPs[si]);
      }
    }
    return mi;
  }

  sampleLatent(rng: Rng): number {
    return rng.categoricalCdf(this.#priorCdf);
  }

  /** Draws a caption from p(y | z). */
  sampleCaption(rng: Rng, zi: number): SampledCaption {
    const z = this.latent(zi);
    const eps = this.options.attribute_noise;
    const s = new Array<number>(z.length);
    for (let a = 0; a < z.length; a++) {
      if (!rng.bernoulli(this.#mention[a])) {
        s[a] = -1;
      } else if (rng.bernoulli(eps)) {
        const other = rng.int(this.sizes[a] - 1);
        s[a] = other >= z[a] ? other + 1 : other;
      } else {
        s[a] = z[a];
      }
    }
    return { structure: s, index: this.structureIndex(s), text: wordCaption(s, rng) };
  }

  /** Structure of a caption text, or undefined when it is not a caption of this model. */
  parse(text: string): number[] | undefined {
    const all = parseAll(text);
    return all.length === 1 ? all[0] : undefined;
  }

  /**
   * Exact log p(y) of a caption text y, in nats: log p(s) of its structure plus the log
   * probability of its wording given the structure (`wordingLogProb`). Undefined when the text
   * is not a caption of this model (or could be worded from two structures).
   */
  captionLogProb(text: string): number | undefined {
    const all = parseWordings(text);
    if (all.length !== 1) return undefined;
    const { structure, template } = all[0];
    return this.logPs[this.structureIndex(structure)] + wordingLogProb(structure, template);
  }
}

/**
 * log p(wording | structure s) of `wordCaption`: the template's probability, 1 / (number of
 * synonyms) for each mentioned attribute, and 1 / 3 for the generic noun when the shape is not
 * mentioned (the article is determined by the first word).
 */
export function wordingLogProb(s: readonly number[], template: number): number {
  let total = 0;
  for (const w of TEMPLATE_WEIGHTS) total += w;
  let lp = Math.log(TEMPLATE_WEIGHTS[template] / total);
  for (let a = 0; a < ATTRIBUTES.length; a++) {
    if (s[a] >= 0) lp -= Math.log(ATTRIBUTES[a].phrases[s[a]].length);
  }
  if (s[ATTR_INDEX.shape] < 0) lp -= Math.log(GENERIC_NOUNS.length);
  return lp;
}

/** Words a caption structure: template, article, synonyms. */
export function wordCaption(s: readonly number[], rng: Rng): string {
  const words: string[] = [];
  const pick = (a: number) => {
    const ph = ATTRIBUTES[a].phrases[s[a]];
    return ph[rng.int(ph.length)];
  };
  if (s[ATTR_INDEX.size] >= 0) words.push(pick(ATTR_INDEX.size));
  if (s[ATTR_INDEX.colour] >= 0) words.push(pick(ATTR_INDEX.colour));
  words.push(
    s[ATTR_INDEX.shape] >= 0
      ? pick(ATTR_INDEX.shape)
      : GENERIC_NOUNS[rng.int(GENERIC_NOUNS.length)],
  );
  if (s[ATTR_INDEX.position] >= 0) words.push(pick(ATTR_INDEX.position));
  const article = /^[aeiou]/.test(words[0]) ? "an" : "a";
  const np = `${article} ${words.join(" ")}`;
  return TEMPLATES[rng.categorical(TEMPLATE_WEIGHTS)].replace("{np}", np);
}

/** Every structure whose wording could produce `text` (exactly one for a model caption). */
export function parseAll(text: string): number[][] {
  return parseWordings(text).map((w) => w.structure);
}

/** Every (structure, template index) whose wording could produce `text`. */
export function parseWordings(text: string): { structure: number[]; template: number }[] {
  const out: { structure: number[]; template: number }[] = [];
  TEMPLATES.forEach((t, template) => {
    const [pre, post] = t.split("{np}");
    if (!text.startsWith(pre) || !text.endsWith(post)) return;
    const np = text.slice(pre.length, text.length - post.length);
    for (const article of ["a ", "an "]) {
      if (!np.startsWith(article)) continue;
      const found: number[][] = [];
      parseNounPhrase(np.slice(article.length), article.trim(), found);
      for (const structure of found) out.push({ structure, template });
    }
  });
  return out;
}

function parseNounPhrase(rest: string, article: string, out: number[][]): void {
  // Enumerate: optional size, optional colour, shape or generic noun, optional position.
  const opts = (a: number) => [
    { v: -1, p: "" },
    ...ATTRIBUTES[a].phrases.flatMap((ps, v) => ps.map((p) => ({ v, p: p + " " }))),
  ];
  const nouns = [
    ...ATTRIBUTES[ATTR_INDEX.shape].phrases.flatMap((ps, v) => ps.map((p) => ({ v, p }))),
    ...GENERIC_NOUNS.map((p) => ({ v: -1, p })),
  ];
  const positions = [
    { v: -1, p: "" },
    ...ATTRIBUTES[ATTR_INDEX.position].phrases.flatMap((ps, v) =>
      ps.map((p) => ({ v, p: " " + p }))
    ),
  ];
  for (const size of opts(ATTR_INDEX.size)) {
    if (!rest.startsWith(size.p)) continue;
    const r1 = rest.slice(size.p.length);
    for (const colour of opts(ATTR_INDEX.colour)) {
      if (!r1.startsWith(colour.p)) continue;
      const r2 = r1.slice(colour.p.length);
      for (const noun of nouns) {
        if (!r2.startsWith(noun.p)) continue;
        const r3 = r2.slice(noun.p.length);
        for (const pos of positions) {
          if (r3 !== pos.p) continue;
          const first = size.p || colour.p || noun.p;
          const want = /^[aeiou]/.test(first) ? "an" : "a";
          if (want !== article) continue;
          out.push([size.v, colour.v, noun.v, pos.v]);
        }
      }
    }
  }
}
