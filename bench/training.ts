/**
 * Training throughput of the reference model R1 (bench/r1.ts) on each available TF.js backend,
 * against the PyTorch peer (bench/peers/r1_torch.py: same architecture, batch, AdamW, clipping,
 * 2 threads) in both its formulations, the mirror of our model and the idiomatic one, run in the
 * same invocation; plus embedding extraction (inference) throughput.
 *
 * Every measurement runs in its own process (a backend, its thread count and the wasm module are
 * per process), ours and the peer's alternating, in `ROUNDS` rounds, so that both see the same
 * load. A ratio is the median over rounds of ours / the faster formulation in that round. A run does `WARMUP` steps, then `WINDOWS` timed windows of `STEPS` steps each; a figure
 * is the median over all windows of all rounds (samples/s = batch * steps / window seconds).
 * A step is what `train()` does per batch, the way it does it on a GPU: tensors from the batch's
 * arrays (batchTensors), forward, backward, global-norm clipping, AdamW, clamping, all queued by
 * trainStepTensors with nothing read back; a window's clock stops once the loss of its last step
 * is read (which awaits all the window's work). Every step's loss is kept and read after its
 * window's clock stopped (warm-up steps one by one), so `losses` holds them all, in order, and
 * `losses[0]` is the first step's (the GPU check compares it with wasm's).
 *
 * `deno task bench training`; environment: KME_BENCH_ROUNDS (3), KME_BENCH_WINDOWS (4),
 * KME_BENCH_STEPS (3), KME_BENCH_CPU (1 = also the cpu backend, a 2-step run; 0 = skip),
 * KME_BENCH_WEBGPU (1 = also webgpu when navigator.gpu gives an adapter, a 2-step run).
 * Run one measurement directly: `deno run -A bench/training.ts run wasm clip [threads]`; the
 * full form is `run <backend> <sim> <threads> <warmup> <windows> <steps> [embed] [batch] [case]`
 * (threads 0 = the backend's default, embed "" = no embedding figures, batch "" or absent = the
 * case's batch, case r1 (default) or c1: bench/r1.ts). It prints one JSON line; a run that
 * fails prints one with an `error` field (and the losses it got) and exits with 1.
 * The GPU check kit (bench/gpu/) bundles this file and runs that form (R1 at batch 512, C1 at
 * 256).
 */
import * as tf from "@tensorflow/tfjs-core";
import { fileURLToPath } from "node:url";
import { cpuCount, initBackend, webgpuAdapterDescription } from "../stages/lib/tf/backend.ts";
import { ContrastiveModel } from "../stages/lib/model/model.ts";
import { batchTensors } from "../stages/lib/model/batch_tensors.ts";
import { createOptimizer, readScalars, trainStepTensors } from "../stages/lib/model/train.ts";
import { benchCase, CASE_NAMES, type CaseName, R1_BATCH } from "./r1.ts";
import { type Figure, median, which } from "./util.ts";
import type { BuiltinSimilarityName } from "../stages/lib/similarity/registry.ts";

/** The two similarities R1 measures. */
type R1Similarity = Extract<BuiltinSimilarityName, "clip" | "kme">;

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const PEER = fileURLToPath(new URL("./peers/r1_torch.py", import.meta.url));
const PYTHON = "/usr/bin/python3"; // Debian's python3 with PyTorch 1.13 (not a pyenv shim)

const envInt = (name: string, dflt: number) => {
  const v = Deno.env.get(name);
  return v === undefined || v === "" ? dflt : Number(v);
};

interface RunResult {
  backend: string;
  threads: number;
  similarity: R1Similarity;
  /** The benchmark case (bench/r1.ts). */
  case?: CaseName;
  batch?: number;
  /** WebGPU adapter description (webgpu only), so a GPU run shows which device it measured. */
  adapter?: string;
  /** Samples/s of each timed window. */
  windows: number[];
  /** Every step's loss, warm-up steps first; losses[0] is the first step's. */
  losses: number[];
  images_per_s?: number[];
  captions_per_s?: number[];
  version?: string;
  error?: string;
}

interface RunOptions {
  warmup: number;
  windows: number;
  steps: number;
  embed: boolean;
  /** Samples per step (default: the case's batch): the GPU target is stated at batch 512. */
  batch?: number;
  /** The model and batches (default r1). */
  case?: CaseName;
}

// ---------------------------------------------------------------- one measurement (child)

/** What a failed run got before it failed (printed with its error). */
const partial: Partial<RunResult> & { losses: number[]; windows: number[] } = {
  losses: [],
  windows: [],
};

async function measure(
  backend: "wasm" | "cpu" | "webgpu",
  similarity: R1Similarity,
  threads: number | undefined,
  o: RunOptions,
): Promise<RunResult> {
  const bc = benchCase(o.case ?? "r1");
  const batchSize = o.batch ?? bc.batch;
  Object.assign(partial, { backend, similarity, case: bc.name, batch: batchSize });
  const be = await initBackend(backend, threads === undefined ? {} : { threads });
  Object.assign(partial, {
    backend: be.backend,
    threads: be.threads,
    version: be.version,
    ...(be.adapter === undefined ? {} : { adapter: be.adapter }),
  });
  const model = ContrastiveModel.create(bc.config(similarity), 1);
  const opt = createOptimizer(model, bc.train);
  const batches = bc.batches(4, 1, batchSize);
  const losses = partial.losses;
  const windows = partial.windows;
  let k = 0;
  // One step as train() runs it on a GPU: queued, nothing read back; the caller reads the loss.
  const queue = (): tf.Scalar => {
    const bt = batchTensors(model, batches[k++ % batches.length]);
    try {
      const r = trainStepTensors(model, opt, bt.images, bt.ids, bc.train.lr, bc.train.gradClip);
      r.gradNorm.dispose();
      return r.loss;
    } finally {
      bt.dispose();
    }
  };
  // Read after the clock stopped (one stacked read-back), then freed.
  const readAll = async (ts: tf.Scalar[]) => {
    try {
      losses.push(...await readScalars(ts));
    } finally {
      tf.dispose(ts);
    }
  };
  for (let i = 0; i < o.warmup; i++) await readAll([queue()]);
  for (let w = 0; w < o.windows && o.steps > 0; w++) {
    const pending: tf.Scalar[] = [];
    try {
      const t0 = performance.now();
      for (let i = 0; i < o.steps; i++) pending.push(queue());
      await pending[pending.length - 1].data(); // waits for all of the window's work
      windows.push((batchSize * o.steps) / ((performance.now() - t0) / 1000));
      await readAll(pending.splice(0));
    } finally {
      tf.dispose(pending);
    }
  }
  const out: RunResult = {
    backend: be.backend,
    threads: be.threads,
    similarity,
    case: bc.name,
    batch: batchSize,
    ...(be.adapter === undefined ? {} : { adapter: be.adapter }),
    windows,
    losses,
    version: be.version,
  };
  if (o.embed) {
    const bt = batchTensors(model, batches[0]);
    const run = async (f: () => tf.Tensor[]) => {
      const ts = f();
      await Promise.all(ts.map((t) => t.data()));
      tf.dispose(ts);
    };
    const img = () => {
      const ps = model.encodeImages(bt.images);
      return [ps.points, ps.weights];
    };
    const txt = () => {
      const ps = model.encodeTexts(bt.ids);
      return [ps.points, ps.weights];
    };
    for (let i = 0; i < 2; i++) {
      await run(img);
      await run(txt);
    }
    out.images_per_s = [];
    out.captions_per_s = [];
    for (let w = 0; w < o.windows; w++) {
      let t0 = performance.now();
      for (let i = 0; i < o.steps; i++) await run(img);
      out.images_per_s.push((batchSize * o.steps) / ((performance.now() - t0) / 1000));
      t0 = performance.now();
      for (let i = 0; i < o.steps; i++) await run(txt);
      out.captions_per_s.push((batchSize * o.steps) / ((performance.now() - t0) / 1000));
    }
    bt.dispose();
  }
  model.dispose();
  opt.dispose();
  return out;
}

// ---------------------------------------------------------------- the section (parent)

async function runChild(
  cmd: string,
  args: string[],
  timeoutMs: number,
): Promise<RunResult | { error: string }> {
  const child = new Deno.Command(cmd, {
    args,
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { PYTHONDONTWRITEBYTECODE: "1" },
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, timeoutMs);
  const out = await child.output();
  clearTimeout(timer);
  const stdout = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" | ");
    return { error: out.signal === "SIGKILL" ? `timed out after ${timeoutMs / 1000} s` : err };
  }
  try {
    return JSON.parse(stdout.split("\n").at(-1)!) as RunResult;
  } catch {
    return { error: `unparsable output: ${stdout.slice(0, 200)}` };
  }
}

function ours(
  backend: string,
  sim: R1Similarity,
  o: RunOptions,
  threads?: number,
  timeoutMs = 600_000,
) {
  const args = [
    "run",
    "--allow-all",
    "--quiet",
    `--config=${ROOT}deno.json`,
    SELF,
    "run",
    backend,
    sim,
    String(threads ?? 0),
    String(o.warmup),
    String(o.windows),
    String(o.steps),
    o.embed ? "embed" : "",
    ...(o.batch === undefined ? [] : [String(o.batch)]),
  ];
  return runChild(Deno.execPath(), args, timeoutMs);
}

function peer(sim: R1Similarity, o: RunOptions, formulation: Formulation) {
  const args = [
    PEER,
    "--formulation",
    formulation,
    "--similarity",
    sim,
    "--threads",
    "2",
    "--warmup",
    String(o.warmup),
    "--windows",
    String(o.windows),
    "--steps-per-window",
    String(o.steps),
    ...(o.embed ? ["--embed"] : []),
  ];
  return runChild(PYTHON, args, 600_000);
}

async function havePeer(): Promise<string | undefined> {
  if (!(await which(PYTHON))) return `${PYTHON} not found`;
  const out = await new Deno.Command(PYTHON, {
    args: ["-c", "import torch; print(torch.__version__)"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return out.success ? undefined : "PyTorch not importable by /usr/bin/python3";
}

const fmt = (x: number) => x.toFixed(1);

/** The PyTorch peer's two formulations (bench/peers/r1_torch.py); ours is quoted against the faster. */
type Formulation = "mirror" | "idiomatic";
const FORMULATIONS: readonly Formulation[] = ["mirror", "idiomatic"];

export async function benchTraining(log: (s: string) => void): Promise<Figure[]> {
  const rounds = envInt("KME_BENCH_ROUNDS", 3);
  const o: RunOptions = {
    warmup: 2,
    windows: envInt("KME_BENCH_WINDOWS", 4),
    steps: envInt("KME_BENCH_STEPS", 3),
    embed: false,
  };
  const short: RunOptions = { warmup: 1, windows: 1, steps: 1, embed: false };
  const sims: R1Similarity[] = ["clip", "kme"];
  const peerMissing = await havePeer();
  const threads = Math.min(cpuCount(), 8);
  log(
    `R1: batch ${R1_BATCH}, ${rounds} rounds x ${o.windows} windows x ${o.steps} steps after ` +
      `${o.warmup} warm-up; wasm with ${threads} threads; peer: ${peerMissing ?? "PyTorch"}`,
  );

  type Key = string;
  const acc = new Map<
    Key,
    { windows: number[]; perRound: number[]; img: number[]; txt: number[]; meta?: RunResult }
  >();
  const errors = new Map<Key, string>();
  const add = (key: Key, r: RunResult | { error: string }) => {
    if ("error" in r && r.error !== undefined) {
      errors.set(key, r.error);
      log(`${key}: ${r.error}`);
      return;
    }
    const rr = r as RunResult;
    const a = acc.get(key) ?? { windows: [], perRound: [], img: [], txt: [] };
    a.windows.push(...rr.windows);
    a.perRound.push(median(rr.windows));
    a.img.push(...(rr.images_per_s ?? []));
    a.txt.push(...(rr.captions_per_s ?? []));
    a.meta = rr;
    acc.set(key, a);
    log(
      `${key}: ${rr.windows.map(fmt).join(" ")} samples/s` +
        (rr.images_per_s
          ? `; embed ${rr.images_per_s.map(fmt).join(" ")} img/s, ` +
            `${rr.captions_per_s!.map(fmt).join(" ")} captions/s`
          : ""),
    );
  };

  // A round is one pair per similarity: ours, then both peer formulations, then ours on one
  // thread, back to back, so that a round's runs see about the same load.
  for (let r = 0; r < rounds; r++) {
    for (const sim of sims) {
      const embed = sim === "clip"; // inference throughput, measured alongside the clip runs
      add(`wasm/${sim}`, await ours("wasm", sim, { ...o, embed }, threads));
      if (!peerMissing) {
        for (const f of FORMULATIONS) {
          add(`torch-${f}/${sim}`, await peer(sim, { ...o, embed: embed && f === "mirror" }, f));
        }
      }
      add(`wasm1/${sim}`, await ours("wasm", sim, o, 1));
    }
  }
  /**
   * Per round, ours / the faster formulation's rate in that round; the median of those. Null
   * when a round is missing on either side.
   */
  const pairedRatio = (key: Key, sim: R1Similarity) => {
    const mine = acc.get(key)?.perRound ?? [];
    const theirs = FORMULATIONS.map((f) => acc.get(`torch-${f}/${sim}`)?.perRound ?? []);
    if (!mine.length || theirs.some((t) => t.length !== mine.length)) return null;
    return median(mine.map((v, i) => v / Math.max(...theirs.map((t) => t[i]))));
  };
  /** The faster formulation over the whole run (by median rate). */
  const fasterPeer = (sim: R1Similarity) => {
    const rates = FORMULATIONS.map((f) => [f, rate(`torch-${f}/${sim}`)] as const);
    return rates.reduce((a, b) => ((b[1] ?? -1) > (a[1] ?? -1) ? b : a));
  };
  if (envInt("KME_BENCH_CPU", 1) === 1) {
    for (const sim of sims) add(`cpu/${sim}`, await ours("cpu", sim, short, undefined, 900_000));
  }
  const adapter = envInt("KME_BENCH_WEBGPU", 1) === 1
    ? await webgpuAdapterDescription()
    : undefined;
  if (adapter !== undefined) {
    for (const sim of sims) {
      add(`webgpu/${sim}`, await ours("webgpu", sim, short, undefined, 900_000));
    }
  }

  const rate = (key: Key) => {
    const a = acc.get(key);
    return a && a.windows.length ? median(a.windows) : null;
  };
  const torchNote = peerMissing ?? undefined;
  const figures: Figure[] = [];
  for (const sim of sims) {
    const [formulation, peerRate] = fasterPeer(sim);
    const other = FORMULATIONS.find((f) => f !== formulation)!;
    const otherRate = rate(`torch-${other}/${sim}`);
    const peerFig = {
      name: `PyTorch 1.13, 2 threads, the faster formulation (${formulation})`,
      value: peerRate,
      note: peerRate === null
        ? (torchNote ?? errors.get(`torch-${formulation}/${sim}`) ?? "missing")
        : `${other}: ${otherRate === null ? "-" : fmt(otherRate)} samples/s`,
    };
    for (
      const [key, label, target] of [
        [`wasm/${sim}`, `wasm, ${acc.get(`wasm/${sim}`)?.meta?.threads ?? threads} threads`, true],
        [`wasm1/${sim}`, "wasm, 1 thread", false],
        [`cpu/${sim}`, "cpu (a 1-step run)", false],
        [`webgpu/${sim}`, `webgpu (${adapter ?? "-"}; a 1-step run)`, false],
      ] as const
    ) {
      if (!acc.has(key) && !errors.has(key)) continue;
      const v = rate(key);
      const ratio = v === null ? null : pairedRatio(key, sim);
      figures.push({
        name: `R1 training ${sim}, ${label} (samples/s, median)`,
        value: v,
        unit: "samples/s",
        peer: peerFig,
        ...(target
          ? { target: ">= 1.0x PyTorch", met: ratio === null ? undefined : ratio >= 1 }
          : {}),
        note: v === null
          ? errors.get(key)
          : ratio === null
          ? undefined
          : `${ratio.toFixed(2)}x the faster peer (median of ${rounds} per-round ratios)`,
      });
    }
  }
  for (const be of ["wasm", "wasm1", "cpu", "webgpu"]) {
    const c = rate(`${be}/clip`);
    const k = rate(`${be}/kme`);
    if (c === null || k === null) continue;
    const tc = fasterPeer("clip")[1];
    const tk = fasterPeer("kme")[1];
    const ratio = c / k; // step time kme / step time clip
    figures.push({
      name: `R1 KME step time / CLIP step time, ${be === "wasm1" ? "wasm 1 thread" : be}`,
      value: ratio,
      unit: "x",
      peer: {
        name: "PyTorch",
        value: tc !== null && tk !== null ? tc / tk : null,
      },
      ...(be === "wasm" ? { target: "<= 1.3x", met: ratio <= 1.3 } : {}),
    });
  }
  const w = acc.get("wasm/clip");
  const t = acc.get("torch-mirror/clip");
  for (
    const [what, unit, pick] of [
      ["images", "images/s", (a: typeof w) => a?.img],
      ["captions", "captions/s", (a: typeof w) => a?.txt],
    ] as const
  ) {
    const v = pick(w)?.length ? median(pick(w)!) : null;
    const pv = pick(t)?.length ? median(pick(t)!) : null;
    figures.push({
      name: `R1 embedding extraction, ${what} (inference, batch 128, wasm ${threads} threads)`,
      value: v,
      unit,
      peer: {
        name: "PyTorch 1.13 inference_mode, 2 threads",
        value: pv,
        note: pv === null ? (torchNote ?? "missing") : undefined,
      },
      note: v !== null && pv ? `ratio ${(v / pv).toFixed(2)}` : undefined,
    });
  }
  return figures;
}

// ---------------------------------------------------------------- child entry point

if (import.meta.main && Deno.args[0] === "run") {
  const [, backend, sim, threads, warmup, windows, steps, embed, batch, kase] = Deno.args;
  const t = Number(threads);
  const c = kase === undefined || kase === "" ? "r1" : kase as CaseName;
  try {
    if (!CASE_NAMES.includes(c)) throw new Error(`unknown case '${c}' (${CASE_NAMES.join(", ")})`);
    const r = await measure(backend as "wasm", sim as R1Similarity, t > 0 ? t : undefined, {
      warmup: Number(warmup ?? 2),
      windows: Number(windows ?? 4),
      steps: Number(steps ?? 3),
      embed: embed === "embed",
      // An empty or absent argument keeps the case's batch (R1_BATCH: `deno task bench training`).
      batch: batch === undefined || batch === "" ? undefined : Number(batch),
      case: c,
    });
    console.log(JSON.stringify(r));
    Deno.exit(0);
  } catch (e) {
    // One JSON line all the same (the GPU kit records it): e.g. the webgpu backend's RangeError
    // for a tensor over the adapter's binding limit, or an out-of-memory.
    const error = `${(e as Error)?.name ?? "Error"}: ${(e as Error)?.message ?? String(e)}`;
    console.error(error);
    console.log(JSON.stringify({ ...partial, similarity: sim, error }));
    Deno.exit(1);
  }
}
