/**
 * Seeded pseudo-random numbers, independent of tfjs and of the backend.
 *
 * `Rng` is xoshiro128** (32-bit state words, period 2^128 - 1) seeded through splitmix32. Its
 * state is four uint32s and can be saved and restored exactly (`state()` / `Rng.fromState`).
 * `deriveSeed(seed, ...keys)` hashes a seed with integer keys (counter-based streams: the data
 * order of epoch e is a pure function of (seed, e), so a data cursor is just a step number).
 */

export type RngState = [number, number, number, number];

/** One splitmix32 step: returns [output, nextState]. */
function splitmix32(s: number): [number, number] {
  s = (s + 0x9e3779b9) | 0;
  let z = s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  z ^= z >>> 16;
  return [z >>> 0, s];
}

/** Mixes a seed and integer keys into one uint32 (order-sensitive). */
export function deriveSeed(seed: number, ...keys: number[]): number {
  let [h, s] = splitmix32((seed >>> 0) ^ 0x5bd1e995);
  for (const k of keys) {
    // Split large keys (up to 2^53) into two 32-bit halves.
    const lo = k >>> 0;
    const hi = Math.floor(k / 4294967296) >>> 0;
    [h, s] = splitmix32((s ^ Math.imul(lo, 0x27d4eb2d) ^ h) | 0);
    [h, s] = splitmix32((s ^ Math.imul(hi + 0x165667b1, 0x27d4eb2d) ^ h) | 0);
  }
  return h >>> 0;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spare: number | undefined;

  constructor(seed: number, ...keys: number[]) {
    let s = deriveSeed(seed, ...keys) | 0;
    const w: number[] = [];
    for (let i = 0; i < 4; i++) {
      let out: number;
      [out, s] = splitmix32(s);
      w.push(out | 0);
    }
    if ((w[0] | w[1] | w[2] | w[3]) === 0) w[0] = 1;
    [this.s0, this.s1, this.s2, this.s3] = w;
  }

  static fromState(state: RngState): Rng {
    const r = new Rng(0);
    [r.s0, r.s1, r.s2, r.s3] = state.map((x) => x | 0);
    return r;
  }

  /** The exact state (cached Box-Muller spare values are discarded, so save between draws). */
  state(): RngState {
    return [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0];
  }

  /** Uniform uint32. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9);
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result >>> 0;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  float(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n) without modulo bias. */
  int(n: number): number {
    if (!(n > 0 && n <= 4294967296)) throw new RangeError(`Rng.int: bad bound ${n}`);
    const limit = 4294967296 - (4294967296 % n);
    for (;;) {
      const x = this.nextU32();
      if (x < limit) return x % n;
    }
  }

  /** Standard normal (Box-Muller, both values used). */
  normal(): number {
    if (this.spare !== undefined) {
      const v = this.spare;
      this.spare = undefined;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.float();
    const v = this.float();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** In-place Fisher-Yates shuffle. */
  shuffle<T>(a: { length: number; [i: number]: T }): void {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
  }
}

/** A permutation of 0..n-1 that depends only on (seed, ...keys). */
export function permutation(n: number, seed: number, ...keys: number[]): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  new Rng(seed, ...keys).shuffle(p);
  return p;
}
