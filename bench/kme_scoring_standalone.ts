/**
 * Benchmark of chunked KME scoring + COCO retrieval ranks (5k and 1k in one pass) on random
 * data of the COCO 5k-test shape. Not a test; prints one JSON line. KME runs the kme
 * similarity's KernelScorer in `--workers` Web Workers; `--clip` scores CLIP's pooled vectors
 * in-thread, as the retrieval stage does (pooled similarities never use workers, so
 * `--workers` then only sets the ranking concurrency).
 *
 *   deno run --allow-all bench/kme_scoring_standalone.ts \
 *     [--images 5000] [--captions-per-image 5] [--points 16] [--dim 64] [--sigma2 0.05] \
 *     [--workers 2] [--backend wasm|blas|js] [--clip]
 */
import { parseArgs } from "node:util";
import process from "node:process";
import { Rng } from "../stages/lib/random.ts";
import { createParallelScorer, type PointSets } from "../stages/lib/eval/scoring.ts";
import { type ClosableScorer, scorerFor } from "../stages/lib/eval/similarity_scoring.ts";
import { builtinRecord, loadSimilarity } from "../stages/lib/similarity/registry.ts";
import { cocoRetrieval } from "../stages/lib/eval/retrieval/mod.ts";

function randomSets(n: number, P: number, d: number, rng: Rng): PointSets {
  const data = new Float32Array(n * P * d);
  for (let q = 0; q < n * P; q++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += (data[q * d + k] = rng.float() * 2 - 1) ** 2;
    const inv = 1 / Math.sqrt(s);
    for (let k = 0; k < d; k++) data[q * d + k] *= inv;
  }
  const logits = new Float32Array(n * P).map(() => rng.float() * 2 - 1);
  return { n, points: P, dim: d, data, logits };
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      images: { type: "string", default: "5000" },
      "captions-per-image": { type: "string", default: "5" },
      points: { type: "string", default: "16" },
      dim: { type: "string", default: "64" },
      sigma2: { type: "string", default: "0.05" },
      workers: { type: "string", default: String(navigator.hardwareConcurrency ?? 2) },
      backend: { type: "string", default: "wasm" },
      clip: { type: "boolean", default: false },
    },
  });
  const nI = Number(values.images), cpi = Number(values["captions-per-image"]);
  const P = Number(values.points), d = Number(values.dim), workers = Number(values.workers);
  const nC = nI * cpi;
  const rng = new Rng(1);
  const images = randomSets(nI, P, d, rng);
  const captions = randomSets(nC, P, d, rng);
  const captionImage = new Int32Array(nC).map((_, c) => Math.floor(c / cpi));
  // One point per input for CLIP: the first point of each set.
  const pick = (s: PointSets): PointSets => {
    const data = new Float32Array(s.n * d);
    for (let i = 0; i < s.n; i++) data.set(s.data.subarray(i * P * d, i * P * d + d), i * d);
    return { n: s.n, points: 1, dim: d, data, logits: new Float32Array(s.n) };
  };
  const clipSets = values.clip ? [pick(images), pick(captions)] as const : undefined;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  let scorer: ClosableScorer;
  if (clipSets) {
    const clip = await loadSimilarity({ ...builtinRecord("clip"), values: { logit_scale: 20 } });
    scorer = await scorerFor(clip, ...clipSets);
  } else {
    scorer = await createParallelScorer({
      images,
      captions,
      backend: values.backend as "wasm" | "blas" | "js",
      similarity: { ...builtinRecord("kme"), values: { sigma2: Number(values.sigma2) } },
    }, { workers });
  }
  const tReady = performance.now();
  let peakRss = Deno.memoryUsage().rss;
  let lastLog = 0;
  const res = await cocoRetrieval(scorer, captionImage, {
    concurrency: 2 * workers,
    onProgress(done, total) {
      peakRss = Math.max(peakRss, Deno.memoryUsage().rss);
      const now = performance.now();
      if (now - lastLog > 10000) {
        lastLog = now;
        console.error(`${done}/${total} blocks, ${((now - tReady) / 1000).toFixed(1)} s`);
      }
    },
  });
  const t1 = performance.now();
  const cpu = process.cpuUsage(cpu0);
  scorer.close();
  const pairs = nI * nC;
  console.log(JSON.stringify({
    scorer: scorer.description,
    images: nI,
    captions: nC,
    points: P,
    dim: d,
    workers,
    setupSeconds: +((tReady - t0) / 1000).toFixed(2),
    scoringAndRankingSeconds: +((t1 - tReady) / 1000).toFixed(2),
    pairsPerSecond: Math.round(pairs / ((t1 - tReady) / 1000)),
    // Process CPU time (all threads, setup included): less sensitive to other load on the
    // machine than wall time; cpuSeconds / workers estimates the wall time on idle cores.
    cpuSeconds: +((cpu.user + cpu.system) / 1e6).toFixed(2),
    peakRssMiB: Math.round(peakRss / 2 ** 20),
    rsum5k: +res["5k"].rsum.toFixed(3),
    rsum1k: res["1k"] ? +res["1k"].rsum.toFixed(3) : null,
    cpus: navigator.hardwareConcurrency,
    loadAverage: Deno.loadavg(),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
  }));
}
