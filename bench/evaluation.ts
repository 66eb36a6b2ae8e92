/**
 * Evaluation figures: 5,000 images x 25,000 captions retrieval (COCO 5k and 1k in one pass)
 * with KME scoring (M = N = 16 points, d = 64) on the default engine (`auto`: blas when
 * OpenBLAS is installed) and on the portable wasm engine, and with CLIP scoring (in-thread, as
 * the retrieval stage scores a pooled similarity), on random data, each in its own process (bench/kme_scoring_standalone.ts) so its peak memory is its own.
 * Peer: PyTorch on the same work (bench/peers/kme_scoring_torch.py), in the same run. Also the
 * single-thread rates of both kernels, with and without padded captions (bench/kme_kernels.ts).
 * KME_BENCH_EVAL_IMAGES shrinks the problem for a quick look. The linear probe has its own
 * section, `probe` (bench/probe.ts).
 */
import { join } from "node:path";
import type { Figure } from "./util.ts";
import { resolveKmeEngine } from "../stages/lib/eval/engine_param.ts";

const ROOT = new URL("..", import.meta.url).pathname;

interface Result {
  scorer: string;
  scoringAndRankingSeconds: number;
  setupSeconds: number;
  cpuSeconds: number;
  peakRssMiB: number;
  pairsPerSecond: number;
  loadAverage: number[];
}

async function once(args: string[]): Promise<Result> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      `--config=${join(ROOT, "deno.json")}`,
      join(ROOT, "bench", "kme_scoring_standalone.ts"),
      ...args,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`kme_scoring_standalone ${args.join(" ")} failed`);
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  return JSON.parse(lines.at(-1)!);
}

const PYTHON = "/usr/bin/python3"; // Debian's python3 with PyTorch 1.13 (not a pyenv shim)
const PEER = join(ROOT, "bench", "peers", "kme_scoring_torch.py");

/** PyTorch's time for the same KME scoring and ranking, or why it is missing. */
async function torchPeer(images: string): Promise<{ seconds: number | null; note?: string }> {
  try {
    const out = await new Deno.Command(PYTHON, {
      args: [PEER, "--images", images, "--threads", "2"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      const err = new TextDecoder().decode(out.stderr).trim().split("\n").at(-1);
      return { seconds: null, note: `PyTorch peer failed: ${err}` };
    }
    const line = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!;
    const r = JSON.parse(line);
    return { seconds: r.seconds, note: `torch ${r.torch}, ${r.threads} threads, ${r.formulation}` };
  } catch (e) {
    return { seconds: null, note: `PyTorch peer missing (${PYTHON}: ${(e as Error).message})` };
  }
}

/** Single-thread kernel rates (bench/kme_kernels.ts), in its own process. */
async function kernelRates(): Promise<Record<string, number>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      `--config=${join(ROOT, "deno.json")}`,
      join(ROOT, "bench", "kme_kernels.ts"),
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error("kme_kernels.ts failed");
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
}

export async function benchEvaluation(log: (s: string) => void): Promise<Figure[]> {
  const images = Deno.env.get("KME_BENCH_EVAL_IMAGES") ?? "5000";
  const size = `${images} x ${Number(images) * 5}`;
  const engine = resolveKmeEngine("auto");
  const peer = await torchPeer(images);
  log(`PyTorch KME ${size}: ${peer.seconds ?? "-"} s (${peer.note ?? ""})`);
  const kme = await once(["--images", images, "--workers", "2", "--backend", engine]);
  log(
    `KME ${size}, ${kme.scorer}: ${kme.scoringAndRankingSeconds} s wall, ${kme.cpuSeconds} ` +
      `CPU-s, ${kme.peakRssMiB} MiB peak, load ${
        kme.loadAverage.map((x) => x.toFixed(1)).join(" ")
      }`,
  );
  const wasm = engine === "wasm"
    ? kme
    : await once(["--images", images, "--workers", "2", "--backend", "wasm"]);
  if (wasm !== kme) log(`KME ${size}, ${wasm.scorer}: ${wasm.scoringAndRankingSeconds} s wall`);
  const clip = await once(["--images", images, "--workers", "2", "--clip"]);
  log(`CLIP ${size}: ${clip.scoringAndRankingSeconds} s wall, ${clip.peakRssMiB} MiB peak`);
  const total = (r: Result) => +(r.scoringAndRankingSeconds + r.setupSeconds).toFixed(2);
  const vsPeer = (r: Result) =>
    peer.seconds ? `; ${(peer.seconds / total(r)).toFixed(2)}x PyTorch's speed` : "";
  const peerFig = { name: "PyTorch 1.13, 2 threads", value: peer.seconds, note: peer.note };
  const figs: Figure[] = [
    {
      name: `KME retrieval scoring ${size} (M = N = 16, d = 64), engine auto = ${
        kme.scorer.match(/backend=(.*?) workers=/)?.[1] ?? kme.scorer
      }, 2 workers`,
      value: total(kme),
      unit: "s",
      peer: peerFig,
      target: "< 60 s",
      met: total(kme) < 60,
      note: `${kme.cpuSeconds} CPU-s; load average ${kme.loadAverage[0].toFixed(1)}${vsPeer(kme)}`,
    },
  ];
  if (wasm !== kme) {
    figs.push({
      name:
        `KME retrieval scoring ${size}, engine wasm (portable: same bits everywhere), 2 workers`,
      value: total(wasm),
      unit: "s",
      peer: peerFig,
      note: `${wasm.cpuSeconds} CPU-s; load average ${wasm.loadAverage[0].toFixed(1)}${
        vsPeer(wasm)
      }`,
    });
  }
  const rates = await kernelRates();
  log(`KME kernels, 1 thread: ${JSON.stringify(rates)}`);
  for (
    const [key, what] of [
      ["16x16", "M = N = 16"],
      ["32x32_padded", "M = N = 32, captions of 6-17 real tokens"],
    ]
  ) {
    const w = rates[`wasm_${key}`], b = rates[`blas_${key}`];
    figs.push({
      name: `KME kernel, 1 thread, ${what} (64 x 2,000 block, best of 5): wasm`,
      value: w,
      unit: "pairs/s",
    });
    if (b !== undefined) {
      figs.push({
        name: `KME kernel, 1 thread, ${what} (64 x 2,000 block, best of 5): blas`,
        value: b,
        unit: "pairs/s",
        note: `${(b / w).toFixed(1)}x wasm`,
      });
    }
  }
  figs.push(
    {
      name: `KME retrieval ${size}: peak resident memory`,
      value: kme.peakRssMiB,
      unit: "MiB",
      target: "<= 4096 MiB",
      met: kme.peakRssMiB <= 4096,
    },
    {
      name: `CLIP retrieval scoring ${size}, in-thread (as the retrieval stage)`,
      value: total(clip),
      unit: "s",
    },
  );
  return figs;
}
