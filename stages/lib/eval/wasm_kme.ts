/**
 * A WebAssembly SIMD kernel for KME scores, generated at run time from this file (no build
 * step, no binary blobs): a tiny assembler emits a module specialised to one shape
 * (padded points Mp, Np and dimension d).
 *
 * For one image i and one caption c it computes, in f32 with IEEE mul/add (no fused
 * multiply-add, no relaxed SIMD, so results are the same on every machine), in log2 units:
 *   x[m, n] = <u_m, v_n> * (log2(e) / sigma2) + log2 alpha_m + log2 beta_n   (Mp x Np tile)
 *   max = max_{m,n} x[m, n],   sum = sum_{m,n} 2^(x[m, n] - max)
 * and stores max and sum; the caller finishes, in f64,
 *   s = ln(2) * max + ln(sum) - 1 / sigma2.
 * 2^t uses t = n + f (n = round(t), |f| <= 1/2), 2^f by its degree-7 Taylor polynomial
 * (truncation error < 6e-9) and 2^n built in the exponent bits. Arguments are clamped at
 * -125 to stay in the normal range: a clamped term adds 2^-125 ~ 2.4e-38 instead of less,
 * which cannot change an f32 sum that contains the term 2^0 = 1. Padding points carry
 * log-weight -Infinity and are clamped the same way.
 *
 * Layouts (f32, little endian), prepared by `WasmKmeKernel.load`:
 *   images   A[img][Mp][d]      (point-major)    log2-weights LA[img][Mp]
 *   captions B[cap][d][Np]     (transposed)     log2-weights LB[cap][Np]
 * The dot products are a register-blocked micro-kernel: 4 image points x 8 caption points
 * per step (8 v128 accumulators), broadcasting one image coordinate against two vectors of
 * caption coordinates (d padded to a multiple of 4 with zeros). Images are processed in small
 * groups that stay in L1 while the captions stream past.
 * Every score depends only on its own (image, caption) data, in a fixed operation order,
 * so a score is bit-identical whatever block it is computed in.
 */

import { Code, emitExp2, EXP2_CONSTS, F32, I32, section, str, uleb, V128 } from "./wasm_asm.ts";
import {
  type KernelCaptions,
  type KernelImages,
  type KernelScore,
  KmeKernel,
  type KmeKernelShape,
  lseOf,
} from "./kme_kernel.ts";

// ---- the kernel -----------------------------------------------------------------------------

/** Locals used by `emitTileTail` (i32: SCR, PS, PEND, OUT, OMAX, OSUM; v128: the rest). */
export interface TileTailLocals {
  MX: number;
  SUM: number;
  PS: number;
  PEND: number;
  T: number;
  FX: number;
  R: number;
  Y: number;
  SCR: number;
  OUT: number;
  OMAX: number;
  OSUM: number;
}

/**
 * The end of one pair, shared by both KME kernels: given the tile x (log2 units) at SCR and its
 * lane-wise max in MX, stores max = max x and sum = sum 2^(x - max) at OMAX + OUT and
 * OSUM + OUT (f32). The tile is x[Mp][Np] (`shape`), or, with `shape` "runtime", the caller
 * has set PEND to its end (a multiple of 4 floats after SCR).
 */
export function emitTileTail(
  c: Code,
  L: TileTailLocals,
  k: (v: number) => number,
  shape: { Mp: number; Np: number } | "runtime",
): void {
  const { MX, SUM, PS, PEND, T, FX, R, Y, SCR, OUT, OMAX, OSUM } = L;
  // horizontal max into every lane
  c.get(MX).get(MX).get(MX).shuffle([8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7])
    .fpmax()
    .set(MX);
  c.get(MX).get(MX).get(MX).shuffle([4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11])
    .fpmax()
    .set(MX);
  // sum of 2^(x - max)
  c.vconstF32(0).set(SUM);
  c.get(SCR).set(PS);
  const perLoop = shape === "runtime" ? 1 : shape.Np / 4; // vectors per iteration
  if (shape !== "runtime") c.get(SCR).i32(shape.Mp * shape.Np * 4).add().set(PEND);
  c.loop();
  for (let q = 0; q < perLoop; q++) {
    c.get(PS).vload(q * 16).get(MX).fsub().get(k(-125)).fpmax().set(T);
    emitExp2(c, { T, FX, R, Y }, k);
    c.get(SUM).get(Y).fadd().set(SUM);
  }
  c.get(PS).i32(perLoop * 16).add().set(PS);
  c.get(PS).get(PEND).ltU().brIf(0);
  c.end();
  c.get(OMAX).get(OUT).add().get(MX).extract(0).f32store();
  c.get(OSUM).get(OUT).add();
  c.get(SUM).extract(0).get(SUM).extract(1).f32add();
  c.get(SUM).extract(2).get(SUM).extract(3).f32add();
  c.f32add().f32store();
}

/** Builds the module bytes: exports `memory` and `kme(aPtr, laPtr, nImg, bPtr, lbPtr, nCap,
 * outMax, outSum, invSigma2, scratch)`. */
export function buildKmeModule({ Mp, Np, dim }: KmeKernelShape): Uint8Array {
  if (Mp % 4 !== 0 || Np % 8 !== 0 || dim % 4 !== 0 || Mp < 4 || Np < 8 || dim < 4) {
    throw new RangeError(`bad kernel shape Mp=${Mp} Np=${Np} dim=${dim}`);
  }
  const U = 4;
  const imgStride = Mp * dim * 4, capStride = dim * Np * 4;
  // Images per group: keep the group's points in L1 while captions stream past.
  const G = Math.max(1, Math.min(16, Math.floor(24576 / imgStride)));

  // locals: params 0..9
  const P_A = 0, P_LA = 1, P_NIMG = 2, P_B = 3, P_LB = 4, P_NCAP = 5, P_OMAX = 6, P_OSUM = 7;
  const P_INV = 8, P_SCR = 9;
  let next = 10;
  const li = () => next++;
  const IG = li(), IGEND = li(), C = li(), I = li(), AI = li(), BC = li(), LAI = li(), LBC = li();
  const PS = li(), PEND = li(), OUT = li();
  const nI32 = next - 10;
  const vBase = next;
  const MX = next++, SUM = next++, INV = next++, T = next++, FX = next++, R = next++, Y = next++;
  // Constants kept in locals (hoisted out of the loops).
  const K = new Map<number, number>(EXP2_CONSTS.map((v) => [v, next++]));
  const nV128 = next - vBase;
  const k = (v: number) => K.get(v)!;

  const c = new Code();
  // inv = splat(invSigma2)
  c.get(P_INV).b.push(0xfd, ...uleb(0x13)); // f32x4.splat
  c.set(INV);
  for (const [v, l] of K) c.vconstF32(v).set(l);
  // ig = 0
  c.i32(0).set(IG);
  c.loop(); // ---- image groups
  // igEnd = min(ig + G, nImg)
  c.get(IG).i32(G).add().get(P_NIMG).get(IG).i32(G).add().get(P_NIMG).ltS().select().set(IGEND);
  c.i32(0).set(C);
  c.get(P_B).set(BC);
  c.get(P_LB).set(LBC);
  c.loop(); // ---- captions
  c.get(IG).set(I);
  c.get(P_A).get(IG).i32(imgStride).mul().add().set(AI);
  c.get(P_LA).get(IG).i32(Mp * 4).mul().add().set(LAI);
  c.loop(); // ---- images of the group
  emitPair(c);
  c.get(I).i32(1).add().set(I);
  c.get(AI).i32(imgStride).add().set(AI);
  c.get(LAI).i32(Mp * 4).add().set(LAI);
  c.get(I).get(IGEND).ltS().brIf(0);
  c.end();
  c.get(C).i32(1).add().set(C);
  c.get(BC).i32(capStride).add().set(BC);
  c.get(LBC).i32(Np * 4).add().set(LBC);
  c.get(C).get(P_NCAP).ltS().brIf(0);
  c.end();
  c.get(IGEND).set(IG);
  c.get(IG).get(P_NIMG).ltS().brIf(0);
  c.end();
  c.end(); // function body

  function emitPair(c: Code) {
    // Function 1 writes x = dot * inv + la + lb into the scratch tile [Mp][Np] and returns the
    // lane-wise max.
    c.get(AI).get(BC).get(P_SCR).get(LAI).get(LBC).get(INV).call(1).set(MX);
    // out[i * nCap + c] (byte offset)
    c.get(I).get(P_NCAP).mul().get(C).add().i32(4).mul().set(OUT);
    emitTileTail(
      c,
      { MX, SUM, PS, PEND, T, FX, R, Y, SCR: P_SCR, OUT, OMAX: P_OMAX, OSUM: P_OSUM },
      k,
      {
        Mp,
        Np,
      },
    );
  }

  const body = [...uleb(2), ...uleb(nI32), I32, ...uleb(nV128), V128, ...c.b];

  // Function 1: tile(aI, bC, scratch, laI, lbC, inv) -> lane-wise max. Writes the Mp x Np
  // tile x = <u_m, v_n> * inv + la[m] + lb[n]. A separate function keeps the register
  // allocator's view of the hot loop small. Micro-kernel: 4 image points x 8 caption points,
  // 8 accumulators; per k the image coordinates are broadcast, rows 0-1 by load-splat and
  // rows 2-3 by a lane shuffle of a 4-coordinate vector load (balances load and shuffle
  // ports: measured fastest of the variants tried).
  const d = new Code();
  {
    const AIp = 0, BCp = 1, SCR = 2, LAp = 3, LBp = 4, INVp = 5, PA = 6, PB = 7, KEND = 8;
    const ACC = [9, 10, 11, 12, 13, 14, 15, 16], B0 = 17, B1 = 18, A = 19, AV = [20, 21, 22, 23];
    const MXd = 24;
    d.vconstF32(-Infinity).set(MXd);
    for (let rg = 0; rg < Mp / 4; rg++) {
      for (let cg = 0; cg < Np / 8; cg++) {
        for (const acc of ACC) d.vconstF32(0).set(acc);
        d.get(AIp).set(PA);
        d.get(BCp).set(PB);
        d.get(AIp).i32(dim * 4).add().set(KEND);
        d.loop();
        for (let k4 = 0; k4 < U; k4 += 4) {
          for (let r = 2; r < 4; r++) d.get(PA).vload(((rg * 4 + r) * dim + k4) * 4).set(AV[r]);
          for (let kk = k4; kk < k4 + 4; kk++) {
            d.get(PB).vload(kk * Np * 4 + cg * 32).set(B0);
            d.get(PB).vload(kk * Np * 4 + cg * 32 + 16).set(B1);
            const l = (kk - k4) * 4;
            const lanes = [0, 1, 2, 3].flatMap(() => [l, l + 1, l + 2, l + 3]);
            for (let r = 0; r < 4; r++) {
              if (r < 2) d.get(PA).vsplat32(((rg * 4 + r) * dim + kk) * 4).set(A);
              else d.get(AV[r]).get(AV[r]).shuffle(lanes).set(A);
              d.get(ACC[2 * r]).get(A).get(B0).fmul().fadd().set(ACC[2 * r]);
              d.get(ACC[2 * r + 1]).get(A).get(B1).fmul().fadd().set(ACC[2 * r + 1]);
            }
          }
        }
        d.get(PA).i32(U * 4).add().set(PA);
        d.get(PB).i32(U * Np * 4).add().set(PB);
        d.get(PA).get(KEND).ltU().brIf(0);
        d.end();
        // x = dot * inv + la[m] + lb[n] (log2 units), stored; running max.
        d.get(LBp).vload(cg * 32).set(B0);
        d.get(LBp).vload(cg * 32 + 16).set(B1);
        for (let r = 0; r < 4; r++) {
          const off = ((rg * 4 + r) * Np + cg * 8) * 4;
          d.get(LAp).vsplat32((rg * 4 + r) * 4).set(A);
          d.get(SCR).get(ACC[2 * r]).get(INVp).fmul().get(A).fadd().get(B0).fadd().tee(ACC[2 * r])
            .vstore(off);
          d.get(SCR).get(ACC[2 * r + 1]).get(INVp).fmul().get(A).fadd().get(B1).fadd()
            .tee(ACC[2 * r + 1]).vstore(off + 16);
          d.get(MXd).get(ACC[2 * r]).fpmax().get(ACC[2 * r + 1]).fpmax().set(MXd);
        }
      }
    }
    d.get(MXd);
    d.end();
  }
  const body1 = [...uleb(2), ...uleb(3), I32, ...uleb(16), V128, ...d.b];
  const typeSec = [
    2,
    0x60,
    10,
    I32,
    I32,
    I32,
    I32,
    I32,
    I32,
    I32,
    I32,
    F32,
    I32,
    0,
    0x60,
    6,
    I32,
    I32,
    I32,
    I32,
    I32,
    V128,
    1,
    V128,
  ];
  const mod = [
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, typeSec),
    ...section(3, [2, 0, 1]),
    ...section(5, [1, 0x00, ...uleb(1)]),
    ...section(7, [2, ...str("memory"), 0x02, 0, ...str("kme"), 0x00, 0]),
    ...section(10, [
      2,
      ...uleb(body.length),
      ...body,
      ...uleb(body1.length),
      ...body1,
    ]),
  ];
  return new Uint8Array(mod);
}

type KmeFn = (
  aPtr: number,
  laPtr: number,
  nImg: number,
  bPtr: number,
  lbPtr: number,
  nCap: number,
  outMax: number,
  outSum: number,
  invSigma2: number,
  scratch: number,
) => void;

/** The fused kernel: one instance with its own memory holding the packed sets. */
export class WasmKmeKernel extends KmeKernel {
  private readonly kme: KmeFn;
  private aPtr = 0;
  private laPtr = 0;
  private bPtr = 0;
  private lbPtr = 0;
  private scratch = 0;
  private outPtr = 0;
  private outCap = 0;

  constructor(shape: KmeKernelShape) {
    const mod = new WebAssembly.Module(buildKmeModule(shape) as Uint8Array<ArrayBuffer>);
    const inst = new WebAssembly.Instance(mod, {});
    super(shape, inst.exports.memory as WebAssembly.Memory);
    this.kme = inst.exports.kme as KmeFn;
  }

  /** Images point-major [img][Mp][dp], captions transposed [cap][dp][Np] (see the top). */
  load(images: KernelImages, captions: KernelCaptions): void {
    const { Mp, Np, dim: dp } = this.shape;
    const d = images.dim;
    if (captions.dim !== d || Math.ceil(d / 4) * 4 !== dp) {
      throw new RangeError(`data dims ${d}/${captions.dim} do not fit the kernel's ${dp}`);
    }
    this.resetMemory();
    this.scratch = this.alloc(Mp * Np * 4);
    this.aPtr = this.alloc(images.n * Mp * dp * 4);
    this.laPtr = this.alloc(images.n * Mp * 4);
    this.bPtr = this.alloc(captions.n * dp * Np * 4);
    this.lbPtr = this.alloc(captions.n * Np * 4);
    this.packPointMajor(images, images.M, Mp, dp, this.aPtr, this.laPtr);
    const buf = this.memory.buffer;
    const B = new Float32Array(buf, this.bPtr, captions.n * dp * Np).fill(0);
    const LB = new Float32Array(buf, this.lbPtr, captions.n * Np).fill(-Infinity);
    const { N } = captions;
    const src = captions.points;
    for (let c = 0; c < captions.n; c++) {
      const base = c * dp * Np;
      for (let n = 0; n < N; n++) {
        const s = (c * N + n) * d;
        for (let k = 0; k < d; k++) B[base + k * Np + n] = src[s + k];
        LB[c * Np + n] = captions.logWeights[c * N + n] * Math.LOG2E;
      }
    }
    this.nImages = images.n;
    this.nCaptions = captions.n;
    this.outPtr = 0;
    this.outCap = 0;
  }

  private ensureOut(pairs: number): void {
    if (pairs <= this.outCap) return;
    this.outPtr = this.alloc(pairs * 8);
    this.outCap = pairs;
  }

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
    const { Mp, Np, dim } = this.shape;
    // Row bands of ~16K pairs per kernel call: bounds the output buffer, and lets V8 switch
    // from its baseline (Liftoff) code to the optimised (TurboFan) code after the first few
    // calls; wasm has no on-stack replacement, so one huge first call would run 5x slower.
    const rowsPerCall = Math.max(1, Math.min(ni, Math.floor(16384 / nc)));
    this.ensureOut(rowsPerCall * nc);
    for (let r0 = 0; r0 < ni; r0 += rowsPerCall) {
      const rn = Math.min(rowsPerCall, ni - r0);
      this.kme(
        this.aPtr + (i0 + r0) * Mp * dim * 4,
        this.laPtr + (i0 + r0) * Mp * 4,
        rn,
        this.bPtr + c0 * dim * Np * 4,
        this.lbPtr + c0 * Np * 4,
        nc,
        this.outPtr,
        this.outPtr + rowsPerCall * nc * 4,
        invSigma2 * Math.LOG2E,
        this.scratch,
      );
      const buf = this.memory.buffer;
      const mx = new Float32Array(buf, this.outPtr, rn * nc);
      const sm = new Float32Array(buf, this.outPtr + rowsPerCall * nc * 4, rn * nc);
      const base = r0 * nc;
      for (let k = 0; k < rn * nc; k++) {
        out[base + k] = score.finish(lseOf(mx[k], sm[k]));
      }
    }
    return out;
  }

  scorePairs(
    images: Int32Array,
    captions: Int32Array,
    score: KernelScore,
  ): Float32Array {
    const out = new Float32Array(images.length);
    const one = new Float32Array(1);
    for (let p = 0; p < images.length; p++) {
      out[p] = this.scoreBlock(images[p], 1, captions[p], 1, score, one)[0];
    }
    return out;
  }
}
