/**
 * Evaluation figures: 5,000 images x 25,000 captions retrieval (COCO 5k and 1k in one pass)
 * with KME scoring (M = N = 16 points, d = 64) and with CLIP scoring, on random data, each in
 * its own process (bench/kme_scoring_standalone.ts) so its peak memory is its own.
 * KME_BENCH_EVAL_IMAGES shrinks the problem for a quick look.
 */
import { join } from "node:path";
import type { Figure } from "./util.ts";

const ROOT = new URL("..", import.meta.url).pathname;

interface Result {
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

export async function benchEvaluation(log: (s: string) => void): Promise<Figure[]> {
  const images = Deno.env.get("KME_BENCH_EVAL_IMAGES") ?? "5000";
  const size = `${images} x ${Number(images) * 5}`;
  const kme = await once(["--images", images, "--workers", "2"]);
  log(
    `KME ${size}: ${kme.scoringAndRankingSeconds} s wall, ${kme.cpuSeconds} CPU-s, ` +
      `${kme.peakRssMiB} MiB peak, load ${kme.loadAverage.map((x) => x.toFixed(1)).join(" ")}`,
  );
  const clip = await once(["--images", images, "--workers", "2", "--clip"]);
  log(`CLIP ${size}: ${clip.scoringAndRankingSeconds} s wall, ${clip.peakRssMiB} MiB peak`);
  return [
    {
      name: `KME retrieval scoring ${size} (M = N = 16, d = 64), 2 workers`,
      value: kme.scoringAndRankingSeconds + kme.setupSeconds,
      unit: "s",
      target: "< 60 s",
      met: kme.scoringAndRankingSeconds + kme.setupSeconds < 60,
      note: `${kme.cpuSeconds} CPU-s; load average ${kme.loadAverage[0].toFixed(1)}`,
    },
    {
      name: `KME retrieval ${size}: peak resident memory`,
      value: kme.peakRssMiB,
      unit: "MiB",
      target: "<= 4096 MiB",
      met: kme.peakRssMiB <= 4096,
    },
    {
      name: `CLIP retrieval scoring ${size}, 2 workers`,
      value: clip.scoringAndRankingSeconds + clip.setupSeconds,
      unit: "s",
    },
  ];
}
