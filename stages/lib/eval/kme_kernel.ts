/**
 * What the two KME kernels (wasm_kme.ts: one fused wasm kernel; blas_kme.ts: OpenBLAS sgemm +
 * a wasm log-sum-exp) share: the padded shape, the kernel's wasm memory with a bump allocator,
 * point-major packing of the sets, the block check, and the f64 log-sum-exp of a pair, which the
 * similarity's `finish` turns into the score.
 */

export interface KmeKernelShape {
  /** Image points, padded to a multiple of 4. */
  Mp: number;
  /** Caption points, padded to a multiple of 8. */
  Np: number;
  /** Dimension, padded to a multiple of 4. */
  dim: number;
}

/** Padded shape for M image points and N caption points. */
export function paddedShape(M: number, N: number, dim: number): KmeKernelShape {
  return { Mp: Math.ceil(M / 4) * 4, Np: Math.ceil(N / 8) * 8, dim: Math.ceil(dim / 4) * 4 };
}

/** Point sets as the kernels take them: points [n, P, dim], log-weights [n, P] (log-softmax,
 * padding -Infinity). */
export interface KernelSets {
  n: number;
  dim: number;
  points: Float32Array;
  logWeights: Float32Array;
}
export type KernelImages = KernelSets & { M: number };
export type KernelCaptions = KernelSets & { N: number };

/**
 * What a kernel similarity (stages/lib/similarity/, scoring.kind "kernel") tells the engines:
 * the scale of the dot products, and the pair score from the pair's log-sum-exp.
 */
export interface KernelScore {
  invSigma2: number;
  /** lse = LSE_ij(<u_i, v_j> * invSigma2 + log alpha_i + log beta_j), in f64. */
  finish(lse: number): number;
}

/** A pair's log-sum-exp in f64 from its tile max and sum (log2 units, as the kernels keep them). */
export function lseOf(mx: number, sm: number): number {
  return mx * Math.LN2 + Math.log(sm);
}

/** A KME kernel over loaded images and captions. Not thread-safe; workers each own one. */
export abstract class KmeKernel {
  nImages = 0;
  nCaptions = 0;
  private top = 0;

  protected constructor(
    protected readonly shape: KmeKernelShape,
    protected readonly memory: WebAssembly.Memory,
  ) {}

  /** Copies the sets into the kernel's memory (packed, padded, log-weights in log2 units). */
  abstract load(images: KernelImages, captions: KernelCaptions): void;

  /**
   * Scores of images [i0, i0+ni) x captions [c0, c0+nc), row-major, as f32: the similarity's
   * finish of each pair's log-sum-exp.
   */
  abstract scoreBlock(
    i0: number,
    ni: number,
    c0: number,
    nc: number,
    score: KernelScore,
    out?: Float32Array,
  ): Float32Array;

  /** Scores of scattered pairs. */
  abstract scorePairs(images: Int32Array, captions: Int32Array, score: KernelScore): Float32Array;

  /** Forgets every allocation (the start of `load`). */
  protected resetMemory(): void {
    this.top = 0;
  }

  /** Byte offset of `bytes` new bytes (64-byte aligned); grows the memory as needed. */
  protected alloc(bytes: number): number {
    const p = this.top;
    this.top += Math.ceil(bytes / 64) * 64;
    const need = this.top - this.memory.buffer.byteLength;
    if (need > 0) this.memory.grow(Math.ceil(need / 65536));
    return p;
  }

  protected checkBlock(i0: number, ni: number, c0: number, nc: number): void {
    if (i0 < 0 || c0 < 0 || i0 + ni > this.nImages || c0 + nc > this.nCaptions) {
      throw new RangeError(`block (${i0}+${ni}, ${c0}+${nc}) outside the loaded sets`);
    }
  }

  /**
   * Writes sets of P points point-major at byte offset `at` as [n][Pp][dp] f32 (padding points
   * and coordinates zero: they add exact zeros to dot products) and their log-weights times
   * log2(e) at `lat` as [n][Pp] (padding -Infinity).
   */
  protected packPointMajor(
    s: KernelSets,
    P: number,
    Pp: number,
    dp: number,
    at: number,
    lat: number,
  ): void {
    const buf = this.memory.buffer, d = s.dim;
    const X = new Float32Array(buf, at, s.n * Pp * dp).fill(0);
    const L = new Float32Array(buf, lat, s.n * Pp).fill(-Infinity);
    for (let i = 0; i < s.n; i++) {
      for (let m = 0; m < P; m++) {
        const o = (i * P + m) * d;
        X.set(s.points.subarray(o, o + d), (i * Pp + m) * dp);
        L[i * Pp + m] = s.logWeights[i * P + m] * Math.LOG2E;
      }
    }
  }
}
