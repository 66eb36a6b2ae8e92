/**
 * A minimal WebAssembly assembler for the scoring kernels (wasm_kme.ts, blas_kme.ts): just the
 * opcodes they use, emitted into a byte array. Written by hand because the kernels are
 * generated at run time for one shape, with no build step and no binary blobs; a general
 * toolchain (wabt, binaryen) would be a large dependency for ~40 opcodes.
 */

export const I32 = 0x7f, F32 = 0x7d, V128 = 0x7b;

export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

export function f32bytes(x: number): number[] {
  return [...new Uint8Array(new Float32Array([x]).buffer)];
}

export class Code {
  readonly b: number[] = [];
  private op(...bytes: number[]): this {
    for (const x of bytes) this.b.push(x);
    return this;
  }
  private simd(code: number, ...imm: number[]): this {
    return this.op(0xfd, ...uleb(code), ...imm);
  }
  get(l: number) {
    return this.op(0x20, ...uleb(l));
  }
  set(l: number) {
    return this.op(0x21, ...uleb(l));
  }
  tee(l: number) {
    return this.op(0x22, ...uleb(l));
  }
  i32(v: number) {
    return this.op(0x41, ...sleb(v | 0));
  }
  f32(v: number) {
    return this.op(0x43, ...f32bytes(v));
  }
  add() {
    return this.op(0x6a);
  }
  sub() {
    return this.op(0x6b);
  }
  mul() {
    return this.op(0x6c);
  }
  ltU() {
    return this.op(0x49);
  }
  ltS() {
    return this.op(0x48);
  }
  select() {
    return this.op(0x1b);
  }
  loop() {
    return this.op(0x03, 0x40);
  }
  call(fn: number) {
    return this.op(0x10, ...uleb(fn));
  }
  end() {
    return this.op(0x0b);
  }
  brIf(depth: number) {
    return this.op(0x0d, ...uleb(depth));
  }
  f32add() {
    return this.op(0x92);
  }
  i32load(offset = 0) {
    return this.op(0x28, 2, ...uleb(offset));
  }
  f32store(offset = 0) {
    return this.op(0x38, 2, ...uleb(offset));
  }
  // SIMD
  vload(offset = 0) {
    return this.simd(0x00, 4, ...uleb(offset));
  }
  vsplat32(offset = 0) {
    return this.simd(0x09, 2, ...uleb(offset));
  }
  vstore(offset = 0) {
    return this.simd(0x0b, 4, ...uleb(offset));
  }
  vconstF32(x: number) {
    const bytes = f32bytes(x);
    return this.simd(0x0c, ...bytes, ...bytes, ...bytes, ...bytes);
  }
  shuffle(lanes: number[]) {
    return this.simd(0x0d, ...lanes);
  }
  extract(lane: number) {
    return this.simd(0x1f, lane);
  }
  fadd() {
    return this.simd(0xe4);
  }
  fsub() {
    return this.simd(0xe5);
  }
  fmul() {
    return this.simd(0xe6);
  }
  fpmax() {
    return this.simd(0xeb);
  }
  fnearest() {
    return this.simd(0x6a);
  }
  ishl() {
    return this.simd(0xab);
  }
}

export function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

export function str(s: string): number[] {
  const b = [...new TextEncoder().encode(s)];
  return [...uleb(b.length), ...b];
}

/**
 * Constants of `emitExp2`, to be kept in v128 locals (splatted) by the caller: the clamp, the
 * polynomial's coefficients (highest degree first), 1, and the exponent-bits magic number.
 */
export const EXP2_CONSTS = [
  -125,
  1.5252733804059838e-05,
  0.00015403530393381606,
  0.0013333558146428441,
  0.009618129107628477,
  0.055504108664821576,
  0.2402265069591007,
  0.6931471805599453,
  1,
  8388608 + 127,
];

/**
 * Y = 2^T lane-wise for T in [-125, 0] (callers clamp): T = n + f, n = round(T),
 * f in [-1/2, 1/2], 2^f by its degree-7 Taylor polynomial (truncation error < 6e-9) times 2^n.
 * `k(v)` names the local holding the splatted constant v (one of EXP2_CONSTS).
 */
export function emitExp2(
  c: Code,
  l: { T: number; FX: number; R: number; Y: number },
  k: (v: number) => number,
): void {
  const { T, FX, R, Y } = l;
  c.get(T).fnearest().set(FX);
  c.get(T).get(FX).fsub().set(R);
  c.get(k(EXP2_CONSTS[1])).get(R).fmul();
  for (let j = 2; j <= 7; j++) c.get(k(EXP2_CONSTS[j])).fadd().get(R).fmul();
  c.get(k(1)).fadd().set(Y);
  // 2^n: the bits of (n + 127 + 2^23) hold n + 127 in the low mantissa bits; shift into
  // the exponent field (the magic number's own exponent bits fall off the top).
  c.get(Y).get(FX).get(k(8388608 + 127)).fadd().i32(23).ishl().fmul().set(Y);
}
