/**
 * The "blas" KME scoring engine: the dot products of a block of pairs as one OpenBLAS sgemm
 * (openblas.ts; AVX2 / AVX-512 with fused multiply-add, which wasm's 128-bit SIMD cannot
 * reach), the log-sum-exp of each pair's Mp x Np tile in a small generated wasm kernel that
 * reads the sgemm output where it lies (it shares wasm_kme.ts's exp2 and tail, so the formula
 * and its order of operations are the same):
 *   x[m, n] = <u_m, v_n> * (log2(e) / sigma2) + log2 alpha_m + log2 beta_n,
 *   max = max x,  sum = sum 2^(x - max),  s = ln(2) max + ln(sum) - 1 / sigma2 (in f64).
 *
 * All data live in the kernel's wasm memory (sgemm reads and writes it through FFI
 * pointers), laid out for sgemm: images A[img * Mp + m][d], captions B[cap * Np + n][d], both
 * row-major, padding points zero with log-weight -Infinity (as in wasm_kme.ts).
 *
 * Pair determinism: OpenBLAS's value for an entry depends on the shape of the call (its edge
 * and small-matrix kernels sum in other orders), so every pair is computed inside its cell of a
 * fixed grid, whatever block asks for it (`scoreBlock`); tests/eval_blas.test.ts checks blocks
 * and scattered pairs against the full matrix bit for bit.
 */
import { Code, EXP2_CONSTS, F32, I32, section, str, uleb, V128 } from "./wasm_asm.ts";
import { emitTileTail } from "./wasm_kme.ts";
import {
  type KernelCaptions,
  type KernelImages,
  type KernelScore,
  KmeKernel,
  type KmeKernelShape,
  lseOf,
} from "./kme_kernel.ts";
import { loadOpenBlas, type OpenBlas } from "./openblas.ts";

/**
 * Module: `lse(c, ldcBytes, la, lb, nImg, nCap, outMax, outSum, invLog2, scratch, offs, col0)`.
 * Captions are packed (their real points only, padded to a multiple of 4): caption q of the
 * cell owns columns [offs[q], offs[q + 1]) of all captions (i32 at `offs`, absolute), i.e. sgemm
 * output columns from offs[q] - col0, and log2-weights at lb + 4 offs[q].
 */
export function buildLseModule({ Mp }: { Mp: number }): Uint8Array {
  if (!(Mp >= 1)) throw new RangeError(`bad tile rows ${Mp}`);
  const P_C = 0, P_LDC = 1, P_LA = 2, P_LB = 3, P_NI = 4, P_NC = 5, P_OMAX = 6, P_OSUM = 7;
  const P_INV = 8, P_SCR = 9, P_OFFS = 10, P_COL0 = 11;
  const nParams = 12;
  let next = nParams;
  const li = () => next++;
  const I = li(), Q = li(), TROW = li(), ROW = li(), LAI = li(), LBQ = li(), OFFQ = li();
  const PS = li(), PEND = li(), OUT = li(), START = li(), WB = li(), V = li(), SROW = li();
  const nI32 = next - nParams;
  const vBase = next;
  const MX = next++, SUM = next++, INV = next++, T = next++, FX = next++, R = next++;
  const Y = next++, X = next++, AV = next++;
  const K = new Map<number, number>(EXP2_CONSTS.map((v) => [v, next++]));
  const nV128 = next - vBase;
  const k = (v: number) => K.get(v)!;

  const c = new Code();
  c.get(P_INV).b.push(0xfd, ...uleb(0x13)); // f32x4.splat
  c.set(INV);
  for (const [v, l] of K) c.vconstF32(v).set(l);
  c.i32(0).set(I);
  c.get(P_C).set(TROW);
  c.get(P_LA).set(LAI);
  c.loop(); // ---- images of the cell
  c.i32(0).set(Q);
  c.get(P_OFFS).set(OFFQ);
  c.loop(); // ---- captions of the cell
  // START = offs[q] (absolute column), WB = its width in bytes
  c.get(OFFQ).i32load(0).set(START);
  c.get(OFFQ).i32load(4).get(START).sub().i32(4).mul().set(WB);
  c.get(P_LB).get(START).i32(4).mul().add().set(LBQ);
  c.get(TROW).get(START).get(P_COL0).sub().i32(4).mul().add().set(ROW);
  c.get(P_SCR).set(SROW);
  c.vconstF32(-Infinity).set(MX);
  for (let m = 0; m < Mp; m++) {
    c.get(LAI).vsplat32(m * 4).set(AV);
    c.i32(0).set(V);
    c.loop();
    // x = dot * inv + la + lb, the order of wasm_kme.ts
    c.get(ROW).get(V).add().vload().get(INV).fmul().get(AV).fadd();
    c.get(LBQ).get(V).add().vload().fadd().set(X);
    c.get(SROW).get(V).add().get(X).vstore();
    c.get(MX).get(X).fpmax().set(MX);
    c.get(V).i32(16).add().tee(V).get(WB).ltU().brIf(0);
    c.end();
    c.get(ROW).get(P_LDC).add().set(ROW);
    c.get(SROW).get(WB).add().set(SROW);
  }
  c.get(SROW).set(PEND);
  c.get(I).get(P_NC).mul().get(Q).add().i32(4).mul().set(OUT);
  emitTileTail(
    c,
    {
      MX,
      SUM,
      PS,
      PEND,
      T,
      FX,
      R,
      Y,
      SCR: P_SCR,
      OUT,
      OMAX: P_OMAX,
      OSUM: P_OSUM,
    },
    k,
    "runtime",
  );
  c.get(Q).i32(1).add().set(Q);
  c.get(OFFQ).i32(4).add().set(OFFQ);
  c.get(Q).get(P_NC).ltS().brIf(0);
  c.end();
  c.get(I).i32(1).add().set(I);
  c.get(TROW).get(P_LDC).i32(Mp).mul().add().set(TROW);
  c.get(LAI).i32(Mp * 4).add().set(LAI);
  c.get(I).get(P_NI).ltS().brIf(0);
  c.end();
  c.end();

  const body = [...uleb(2), ...uleb(nI32), I32, ...uleb(nV128), V128, ...c.b];
  const type = [1, 0x60, nParams, I32, I32, I32, I32, I32, I32, I32, I32, F32, I32, I32, I32, 0];
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, type),
    ...section(3, [1, 0]),
    ...section(5, [1, 0x00, ...uleb(1)]),
    ...section(7, [2, ...str("memory"), 0x02, 0, ...str("lse"), 0x00, 0]),
    ...section(10, [1, ...uleb(body.length), ...body]),
  ]);
}

type LseFn = (
  c: number,
  ldcBytes: number,
  la: number,
  lb: number,
  nImg: number,
  nCap: number,
  outMax: number,
  outSum: number,
  invLog2: number,
  scratch: number,
  offs: number,
  col0: number,
) => void;

/** sgemm block: about 256 image points x 512 caption points (512 KiB of f32, L2-resident). */
const BLOCK_ROWS = 256, BLOCK_COLS = 512;

/** The OpenBLAS kernel: one instance with its own memory holding the packed sets. */
export class BlasKmeKernel extends KmeKernel {
  readonly blas: OpenBlas;
  private readonly lse: LseFn;
  private readonly gi: number;
  private readonly gc: number;
  private base: Deno.PointerObject | null = null;
  private aPtr = 0;
  private laPtr = 0;
  private bPtr = 0;
  private lbPtr = 0;
  private cPtr = 0;
  private scratch = 0;
  private maxPtr = 0;
  private sumPtr = 0;
  private offsPtr = 0;
  /** Caption c's packed columns are [offs[c], offs[c + 1]). */
  private offs = new Int32Array(1);
  private dim = 0;

  constructor(shape: KmeKernelShape) {
    const blas = loadOpenBlas();
    const mod = new WebAssembly.Module(buildLseModule(shape) as Uint8Array<ArrayBuffer>);
    const inst = new WebAssembly.Instance(mod, {});
    super(shape, inst.exports.memory as WebAssembly.Memory);
    this.blas = blas;
    this.lse = inst.exports.lse as LseFn;
    // Powers of two, so that the retrieval stage's default blocks align with the grid.
    const pow2 = (x: number) => 2 ** Math.max(0, Math.floor(Math.log2(x)));
    this.gi = pow2(BLOCK_ROWS / shape.Mp);
    this.gc = pow2(BLOCK_COLS / shape.Np);
  }

  private ptr(offset: number): Deno.PointerValue {
    return Deno.UnsafePointer.offset(this.base!, offset);
  }

  /**
   * Images [img][Mp][d] point-major (sgemm's row-major). Captions packed: only their real points
   * (finite log-weight), in order, padded with zero points to a multiple of 4, one row each, so
   * padding tokens (most of a short caption's) cost nothing; `offs` says where each begins.
   */
  load(images: KernelImages, captions: KernelCaptions): void {
    const { Mp, Np } = this.shape;
    const d = images.dim;
    if (captions.dim !== d) throw new RangeError(`data dims ${d}/${captions.dim} differ`);
    const { N } = captions;
    const offs = new Int32Array(captions.n + 1);
    for (let c = 0; c < captions.n; c++) {
      let live = 0;
      for (let n = 0; n < N; n++) if (captions.logWeights[c * N + n] > -Infinity) live++;
      offs[c + 1] = offs[c] + Math.max(4, Math.ceil(live / 4) * 4);
    }
    const cols = offs[captions.n];
    this.resetMemory();
    // Everything is allocated here, once: sgemm holds raw pointers into this memory, which
    // must not move (grow) while they are in use.
    this.scratch = this.alloc(Mp * Np * 4);
    this.cPtr = this.alloc(this.gi * Mp * this.gc * Np * 4);
    this.maxPtr = this.alloc(this.gi * this.gc * 4);
    this.sumPtr = this.alloc(this.gi * this.gc * 4);
    this.aPtr = this.alloc(images.n * Mp * d * 4);
    this.laPtr = this.alloc(images.n * Mp * 4);
    this.bPtr = this.alloc(cols * d * 4);
    this.lbPtr = this.alloc(cols * 4);
    this.offsPtr = this.alloc(offs.length * 4);
    this.packPointMajor(images, images.M, Mp, d, this.aPtr, this.laPtr);
    const buf = this.memory.buffer;
    const B = new Float32Array(buf, this.bPtr, cols * d).fill(0);
    const LB = new Float32Array(buf, this.lbPtr, cols).fill(-Infinity);
    for (let c = 0; c < captions.n; c++) {
      let col = offs[c];
      for (let n = 0; n < N; n++) {
        const lw = captions.logWeights[c * N + n];
        if (!(lw > -Infinity)) continue;
        const o = (c * N + n) * d;
        B.set(captions.points.subarray(o, o + d), col * d);
        LB[col++] = lw * Math.LOG2E;
      }
    }
    new Int32Array(buf, this.offsPtr, offs.length).set(offs);
    this.offs = offs;
    this.base = Deno.UnsafePointer.of(new Uint8Array(this.memory.buffer));
    this.nImages = images.n;
    this.nCaptions = captions.n;
    this.dim = d;
  }

  /**
   * Computes cell (gI, gC) of the fixed grid (gi images x gc captions, clipped at the end of
   * the sets): one sgemm, then the LSE kernel; leaves max and sum of each pair in mx / sm
   * (row stride: the cell's caption count). Returns the cell's extent.
   */
  private cell(
    gI: number,
    gC: number,
    inv2: number,
  ): { r0: number; rn: number; q0: number; qn: number } {
    const { Mp } = this.shape;
    const d = this.dim;
    const r0 = gI * this.gi, q0 = gC * this.gc;
    const rn = Math.min(this.gi, this.nImages - r0), qn = Math.min(this.gc, this.nCaptions - q0);
    const col0 = this.offs[q0], ldc = this.offs[q0 + qn] - col0; // the cell's packed columns
    this.blas.sgemmABt(
      rn * Mp,
      ldc,
      d,
      this.ptr(this.aPtr + r0 * Mp * d * 4),
      this.ptr(this.bPtr + col0 * d * 4),
      this.ptr(this.cPtr),
      ldc,
    );
    this.lse(
      this.cPtr,
      ldc * 4,
      this.laPtr + r0 * Mp * 4,
      this.lbPtr,
      rn,
      qn,
      this.maxPtr,
      this.sumPtr,
      inv2,
      this.scratch,
      this.offsPtr + q0 * 4,
      col0,
    );
    return { r0, rn, q0, qn };
  }

  /**
   * Every pair is computed in its cell of the fixed grid, whatever block asks for it: that
   * keeps scores pair-deterministic (OpenBLAS's result for an entry depends on the shape of
   * the call it is computed in). Blocks aligned to the grid (powers of two of at least gi x
   * gc, like the retrieval stage's defaults) compute no pair twice.
   */
  scoreBlock(
    i0: number,
    ni: number,
    c0: number,
    nc: number,
    score: KernelScore,
    out = new Float32Array(ni * nc),
  ): Float32Array {
    const invSigma2 = score.invSigma2;
    if (ni === 0 || nc === 0) return out;
    this.checkBlock(i0, ni, c0, nc);
    const { mx, sm } = this.views();
    const inv2 = invSigma2 * Math.LOG2E;
    for (let gI = Math.floor(i0 / this.gi); gI * this.gi < i0 + ni; gI++) {
      for (let gC = Math.floor(c0 / this.gc); gC * this.gc < c0 + nc; gC++) {
        const { r0, rn, q0, qn } = this.cell(gI, gC, inv2);
        const rA = Math.max(r0, i0), rB = Math.min(r0 + rn, i0 + ni);
        const qA = Math.max(q0, c0), qB = Math.min(q0 + qn, c0 + nc);
        for (let r = rA; r < rB; r++) {
          for (let q = qA; q < qB; q++) {
            const k = (r - r0) * qn + (q - q0);
            out[(r - i0) * nc + (q - c0)] = score.finish(lseOf(mx[k], sm[k]));
          }
        }
      }
    }
    return out;
  }

  /** Each pair computed in its grid cell, once per cell. */
  scorePairs(
    images: Int32Array,
    captions: Int32Array,
    score: KernelScore,
  ): Float32Array {
    const invSigma2 = score.invSigma2;
    const out = new Float32Array(images.length);
    const cellsC = Math.ceil(this.nCaptions / this.gc);
    const byCell = new Map<number, number[]>();
    for (let p = 0; p < images.length; p++) {
      const i = images[p], c = captions[p];
      if (!(i >= 0 && i < this.nImages && c >= 0 && c < this.nCaptions)) {
        throw new RangeError(`pair (${i}, ${c}) outside the loaded sets`);
      }
      const key = Math.floor(i / this.gi) * cellsC + Math.floor(c / this.gc);
      const list = byCell.get(key);
      if (list) list.push(p);
      else byCell.set(key, [p]);
    }
    const { mx, sm } = this.views();
    const inv2 = invSigma2 * Math.LOG2E;
    for (const [key, list] of byCell) {
      const { r0, q0, qn } = this.cell(Math.floor(key / cellsC), key % cellsC, inv2);
      for (const p of list) {
        const k = (images[p] - r0) * qn + (captions[p] - q0);
        out[p] = score.finish(lseOf(mx[k], sm[k]));
      }
    }
    return out;
  }

  private views(): { mx: Float32Array; sm: Float32Array } {
    const buf = this.memory.buffer;
    return {
      mx: new Float32Array(buf, this.maxPtr, this.gi * this.gc),
      sm: new Float32Array(buf, this.sumPtr, this.gi * this.gc),
    };
  }
}
