/**
 * Small, seedable, serialisable PRNG (xoshiro128**, seeded through splitmix32). Never use
 * Math.random in stages: every random choice must be a function of the stage seed.
 */

/** One splitmix32 step: returns [output, next state]. */
export function splitmix32(state: number): [number, number] {
  const next = (state + 0x9e3779b9) | 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  z ^= z >>> 16;
  return [z >>> 0, next];
}

/**
 * Derives a 32-bit seed from a base seed and labels (e.g. `deriveSeed(seed, "split", "test")`),
 * so independent streams do not shift when an unrelated count changes.
 */
export function deriveSeed(seed: number, ...labels: (string | number)[]): number {
  // FNV-1a over the labels, mixed with the seed through splitmix32.
  let h = 0x811c9dc5;
  const text = labels.join("\u0000");
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  let [a, s] = splitmix32((seed >>> 0) ^ h);
  [a, s] = splitmix32(s ^ a);
  return a >>> 0;
}

export class Rng {
  #s: Uint32Array;

  constructor(seed: number) {
    this.#s = new Uint32Array(4);
    let st = seed | 0;
    for (let i = 0; i < 4; i++) {
      const [out, next] = splitmix32(st);
      this.#s[i] = out;
      st = next;
    }
    if (this.#s[0] === 0 && this.#s[1] === 0 && this.#s[2] === 0 && this.#s[3] === 0) {
      this.#s[0] = 1;
    }
  }

  /** Restores a generator from `state()`. */
  static fromState(state: readonly number[]): Rng {
    if (state.length !== 4) throw new RangeError("Rng state must have 4 words");
    const r = new Rng(0);
    for (let i = 0; i < 4; i++) r.#s[i] = state[i] >>> 0;
    return r;
  }

  /** Serialisable state (4 uint32 words). */
  state(): number[] {
    return Array.from(this.#s);
  }

  /** Uniform uint32. */
  u32(): number {
    const s = this.#s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform float in [0, 1) with 32 random bits. */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform float in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.float();
  }

  /** Uniform integer in [0, n), n <= 2^32, without modulo bias. */
  int(n: number): number {
    if (!(n > 0) || n > 4294967296) throw new RangeError(`Rng.int: bad bound ${n}`);
    const limit = 4294967296 - (4294967296 % n);
    for (;;) {
      const x = this.u32();
      if (x < limit) return x % n;
    }
  }

  /** True with probability p. */
  bernoulli(p: number): boolean {
    return this.float() < p;
  }

  /** Index drawn from a cumulative distribution (last entry = total mass). */
  categoricalCdf(cdf: ArrayLike<number>): number {
    const u = this.float() * cdf[cdf.length - 1];
    let lo = 0;
    let hi = cdf.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid] > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** Index drawn with probability proportional to `weights`. */
  categorical(weights: ArrayLike<number>): number {
    let total = 0;
    for (let i = 0; i < weights.length; i++) total += weights[i];
    let u = this.float() * total;
    for (let i = 0; i < weights.length; i++) {
      u -= weights[i];
      if (u < 0) return i;
    }
    return weights.length - 1;
  }

  /** In-place Fisher-Yates shuffle. */
  shuffle<T>(items: T[] | Int32Array | Uint32Array): typeof items {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = items[i];
      items[i] = items[j];
      items[j] = t;
    }
    return items;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
