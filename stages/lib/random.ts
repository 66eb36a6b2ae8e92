/**
 * Seeded pseudo-random numbers for every stage: xoshiro128** (four uint32 state words, period
 * 2^128 - 1) seeded through splitmix32. 32-bit integer arithmetic only, so a seed gives the same
 * sequence on every platform and backend, and the state can be saved and restored exactly.
 *
 * One module so that there is one generator: every random choice in a stage is a function of the
 * stage seed (never Math.random). Independent streams get their own seed: `labelSeed(seed,
 * "split", "test")` for named streams, `keySeed(seed, ...keys)` / `keyedRng` for integer-keyed
 * (counter-based) streams, e.g. the data order of epoch e is a pure function of (seed, e).
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
 * Derives a uint32 seed from a base seed and labels (e.g. `labelSeed(seed, "split", "test")`),
 * so independent streams do not shift when an unrelated count changes.
 */
export function labelSeed(seed: number, ...labels: (string | number)[]): number {
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

/** Mixes a seed and integer keys (up to 2^53) into one uint32 (order-sensitive). */
export function keySeed(seed: number, ...keys: number[]): number {
  let [h, s] = splitmix32((seed >>> 0) ^ 0x5bd1e995);
  for (const k of keys) {
    // Split large keys into two 32-bit halves.
    const lo = k >>> 0;
    const hi = Math.floor(k / 4294967296) >>> 0;
    [h, s] = splitmix32((s ^ Math.imul(lo, 0x27d4eb2d) ^ h) | 0);
    [h, s] = splitmix32((s ^ Math.imul(hi + 0x165667b1, 0x27d4eb2d) ^ h) | 0);
  }
  return h >>> 0;
}

/** Generator for the stream (seed, ...keys): `new Rng(keySeed(seed, ...keys))`. */
export function keyedRng(seed: number, ...keys: number[]): Rng {
  return new Rng(keySeed(seed, ...keys));
}

/** A permutation of 0..n-1 that depends only on (seed, ...keys). */
export function permutation(n: number, seed: number, ...keys: number[]): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return keyedRng(seed, ...keys).shuffle(p);
}

export class Rng {
  // State words, kept as int32 (the bit patterns are what matter).
  #a = 0;
  #b = 0;
  #c = 0;
  #d = 0;
  /** Second Box-Muller value, returned by the next `normal()`. */
  #spare: number | undefined;

  /** `seed` is any finite number, taken as a 32-bit integer (`seed | 0`). */
  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new RangeError(`Rng: seed must be finite, got ${seed}`);
    let st = seed | 0;
    const w = [0, 0, 0, 0];
    for (let i = 0; i < 4; i++) [w[i], st] = splitmix32(st);
    // splitmix32's output step is a bijection, so the state is never all zero; kept as a guard.
    if ((w[0] | w[1] | w[2] | w[3]) === 0) w[0] = 1;
    [this.#a, this.#b, this.#c, this.#d] = w.map((x) => x | 0);
  }

  /** Restores a generator from `state()` (a pending `normal()` spare is not part of it). */
  static fromState(state: readonly number[]): Rng {
    if (state.length !== 4) throw new RangeError("Rng state must have 4 words");
    const r = new Rng(0);
    [r.#a, r.#b, r.#c, r.#d] = state.map((x) => x | 0);
    return r;
  }

  /** Serialisable state (4 uint32 words). */
  state(): number[] {
    return [this.#a >>> 0, this.#b >>> 0, this.#c >>> 0, this.#d >>> 0];
  }

  /** Uniform uint32. */
  u32(): number {
    const result = Math.imul(rotl(Math.imul(this.#b, 5), 7), 9) >>> 0;
    const t = this.#b << 9;
    this.#c ^= this.#a;
    this.#d ^= this.#b;
    this.#b ^= this.#c;
    this.#a ^= this.#d;
    this.#c ^= t;
    this.#d = rotl(this.#d, 11);
    return result;
  }

  /** Uniform float in [0, 1) with 32 random bits (one `u32`). */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform float in [0, 1) with 53 random bits (two `u32`). */
  float53(): number {
    const hi = this.u32() >>> 5; // 27 bits
    const lo = this.u32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform float in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.float();
  }

  /** Uniform integer in [0, n), exactly unbiased (rejection sampling); n an integer in [1, 2^32]. */
  int(n: number): number {
    if (!(n >= 1 && n <= 4294967296) || !Number.isInteger(n)) {
      throw new RangeError(`Rng.int: n must be an integer in [1, 2^32], got ${n}`);
    }
    // Reject the top partial copy of [0, n) so every residue is equally likely.
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

  /** Standard normal (Box-Muller on `float53`; the second value is cached for the next call). */
  normal(): number {
    if (this.#spare !== undefined) {
      const v = this.#spare;
      this.#spare = undefined;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.float53();
    const v = this.float53();
    const r = Math.sqrt(-2 * Math.log(u));
    this.#spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** In-place Fisher-Yates shuffle; returns the array. */
  shuffle<T extends { length: number; [i: number]: unknown }>(items: T): T {
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
