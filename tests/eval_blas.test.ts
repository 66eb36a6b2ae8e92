/**
 * The "blas" KME engine (OpenBLAS sgemm + wasm log-sum-exp): agreement with the wasm engine,
 * pair determinism across its grid cells, Web Workers, and how it is chosen or refused.
 * Needs OpenBLAS (.ci/run installs it; on CI its absence fails, elsewhere these are ignored).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { createParallelScorer, type KernelWorkerSpec } from "../stages/lib/eval/scoring.ts";
import { kernelScorer } from "../stages/lib/eval/similarity_scoring.ts";
import { evaluateRetrieval } from "../stages/lib/eval/retrieval/mod.ts";
import { findOpenBlas } from "../stages/lib/eval/openblas.ts";
import { resolveKmeEngine } from "../stages/lib/eval/engine_param.ts";
import { kmeRecord, kmeScorer, loadKme, randomSets } from "./helpers/point_sets.ts";
import { kmeScoreReference } from "./helpers/kme_reference.ts";

const ignore = findOpenBlas() === undefined && Deno.env.get("CI") === undefined;
const named = (name: string) =>
  ignore ? `${name} (skipped: OpenBLAS not installed; apt-get install libopenblas0)` : name;

// 40 images x 70 captions of 16 points: the engine's grid cells are 16 images x 32 captions,
// so blocks and pairs below cut across cells.
const A = randomSets(40, 16, 24, 21, 3), B = randomSets(70, 16, 24, 22, 5);
const KME = await loadKme(0.1);
const spec = (backend: "wasm" | "blas"): KernelWorkerSpec => ({
  images: A,
  captions: B,
  backend,
  similarity: kmeRecord(0.1),
});
/** The in-thread scorer of `spec(backend)`. */
const scorer = (backend: "wasm" | "blas") => kernelScorer(KME, A, B, backend);

Deno.test({
  name: named("blas engine: equals the wasm engine up to f32 rounding, and names its OpenBLAS"),
  ignore,
  fn() {
    const w = scorer("wasm").scoreBlock(0, 40, 0, 70);
    const b = scorer("blas");
    assert.match(b.description, /backend=blas \(OpenBLAS \w+\)/);
    const x = b.scoreBlock(0, 40, 0, 70);
    let worst = 0;
    for (let k = 0; k < x.length; k++) worst = Math.max(worst, Math.abs(x[k] - w[k]));
    assert.ok(worst < 1e-4, `max |blas - wasm| = ${worst}`);
  },
});

Deno.test({
  name: named("blas engine: any block or scattered pair gives the same bits as the full matrix"),
  ignore,
  fn() {
    const s = scorer("blas");
    const full = s.scoreBlock(0, 40, 0, 70);
    for (const [bi, bc] of [[1, 1], [7, 13], [16, 32], [40, 3], [5, 70]]) {
      for (let i0 = 0; i0 < 40; i0 += bi) {
        for (let c0 = 0; c0 < 70; c0 += bc) {
          const ni = Math.min(bi, 40 - i0), nc = Math.min(bc, 70 - c0);
          const blk = s.scoreBlock(i0, ni, c0, nc);
          for (let r = 0; r < ni; r++) {
            for (let c = 0; c < nc; c++) {
              assert.ok(
                Object.is(blk[r * nc + c], full[(i0 + r) * 70 + c0 + c]),
                `block ${bi}x${bc} at (${i0 + r}, ${c0 + c})`,
              );
            }
          }
        }
      }
    }
    const imgs = Int32Array.from({ length: 300 }, (_, k) => (k * 7) % 40);
    const caps = Int32Array.from({ length: 300 }, (_, k) => (k * 13) % 70);
    const pairs = s.scorePairs(imgs, caps);
    for (let p = 0; p < 300; p++) assert.ok(Object.is(pairs[p], full[imgs[p] * 70 + caps[p]]));
    assert.throws(() => s.scorePairs(Int32Array.of(40), Int32Array.of(0)), /outside/);
  },
});

Deno.test({
  name: named("blas engine: Web Workers give the in-thread bits; chunked retrieval equals full"),
  ignore,
  async fn() {
    const local = scorer("blas");
    const full = local.scoreBlock(0, 40, 0, 70);
    const par = await createParallelScorer(spec("blas"), { workers: 2 });
    try {
      assert.match(par.description, /blas/);
      const [x, y] = await Promise.all([
        par.scoreBlock(0, 40, 0, 70),
        par.scoreBlock(9, 20, 30, 33),
      ]);
      assert.deepEqual(x, full);
      assert.deepEqual(y, local.scoreBlock(9, 20, 30, 33));
      const captionImage = Int32Array.from({ length: 70 }, (_, c) => Math.floor(c / 1.75));
      const a = await evaluateRetrieval(full, captionImage);
      const b = await evaluateRetrieval(par, captionImage, { imageBlock: 7, captionBlock: 11 });
      assert.deepEqual(b.ranks, a.ranks);
      assert.deepEqual(b.textToImage, a.textToImage);
    } finally {
      par.close();
    }
  },
});

Deno.test({
  name: named("blas engine: captions packed to their real points, wherever the padding is"),
  ignore,
  async fn() {
    // 20 points per caption (padded to 24 by the others); live points at scattered positions,
    // from 1 (one point) to 20 (no padding), across two caption cells.
    const N = 20, nC = 45;
    const caps = randomSets(nC, N, 12, 31);
    for (let c = 0; c < nC; c++) {
      const live = c === 0 ? 1 : c === 1 ? N : 1 + ((c * 7) % N);
      for (let n = 0; n < N; n++) {
        if ((n * 11 + c) % N >= live) caps.logits[c * N + n] = -Infinity;
      }
    }
    const imgs = randomSets(6, 5, 12, 32, 1);
    const s = await kmeScorer(imgs, caps, 0.2, "blas");
    const full = s.scoreBlock(0, 6, 0, nC);
    for (let i = 0; i < 6; i++) {
      for (let c = 0; c < nC; c++) {
        const ref = kmeScoreReference(imgs, i, caps, c, 0.2);
        const got = full[i * nC + c];
        assert.ok(
          Math.abs(got - ref) <= 2e-6 * Math.max(1, Math.abs(ref)),
          `(${i},${c}) ${got} vs ${ref}`,
        );
      }
    }
    for (const [bi, bc] of [[1, 1], [4, 7], [6, 45]]) {
      for (let i0 = 0; i0 < 6; i0 += bi) {
        for (let c0 = 0; c0 < nC; c0 += bc) {
          const ni = Math.min(bi, 6 - i0), nc = Math.min(bc, nC - c0);
          const blk = s.scoreBlock(i0, ni, c0, nc);
          for (let r = 0; r < ni; r++) {
            for (let c = 0; c < nc; c++) {
              assert.ok(Object.is(blk[r * nc + c], full[(i0 + r) * nC + c0 + c]));
            }
          }
        }
      }
    }
  },
});

/** Runs a snippet in a fresh Deno process with the given environment; returns its output. */
async function denoEval(code: string, env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", "--ext=ts", code],
    env,
    cwd: join(import.meta.dirname!, ".."),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

const LIB = new URL("../stages/lib/eval/", import.meta.url).href;
const SIM = new URL("../stages/lib/similarity/", import.meta.url).href;

Deno.test("KME_OPENBLAS=none: auto means wasm, and the blas engine refuses with a clear message", async () => {
  const r = await denoEval(
    `import { resolveKmeEngine } from "${LIB}engine_param.ts";
     import { kernelScorer } from "${LIB}similarity_scoring.ts";
     import { builtinRecord, loadSimilarity } from "${SIM}registry.ts";
     console.log(resolveKmeEngine("auto"));
     const s = { n: 1, points: 1, dim: 2, data: new Float32Array([1, 0]), logits: new Float32Array(1) };
     const kme = await loadSimilarity({ ...builtinRecord("kme"), values: { sigma2: 1 } });
     try { kernelScorer(kme, s, s, "blas"); }
     catch (e) { console.log(e.name, e.exitCode, e.message); }`,
    { KME_OPENBLAS: "none" },
  );
  assert.equal(r.code, 0, r.stderr);
  const [engine, err] = r.stdout.trim().split("\n");
  assert.equal(engine, "wasm");
  assert.match(
    err,
    /^OpenBlasUnavailableError 2 OpenBLAS not found .*apt-get install libopenblas0/,
  );
});

Deno.test("KME_OPENBLAS naming a missing file is an error, not a silent fallback", async () => {
  const r = await denoEval(
    `import { findOpenBlas } from "${LIB}openblas.ts";
     import { resolveKmeEngine } from "${LIB}engine_param.ts";
     console.log(resolveKmeEngine("auto"));
     try { findOpenBlas(); } catch (e) { console.log(e.message); }`,
    { KME_OPENBLAS: "/nonexistent/libopenblas.so.0" },
  );
  assert.equal(r.code, 0, r.stderr);
  const [engine, err] = r.stdout.trim().split("\n");
  assert.equal(engine, "blas"); // so that the stage runs and says what is wrong
  assert.equal(
    err,
    'KME_OPENBLAS=/nonexistent/libopenblas.so.0: no such file (expected the path of libopenblas, or "none")',
  );
  assert.equal(resolveKmeEngine("wasm"), "wasm");
});
