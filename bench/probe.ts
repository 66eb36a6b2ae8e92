/**
 * Linear-probe figures, `deno task bench probe`: the stage's protocol (13-decade C
 * sweep on a seeded split, refit, test) against scikit-learn's LogisticRegression on the same
 * rows and grid (bench/peers/probe_sklearn.py), alternating ours and theirs in pairs; the
 * figure is the median of the per-pair time ratios. Features: `probeFeatures` in
 * bench/probe_standalone.ts (each side reads the same file).
 *
 * Cases: 3,000 x 64, 10 classes (KME_BENCH_PROBE_PAIRS pairs, default 5) and 50,000 x 512, 100
 * classes (KME_BENCH_PROBE_LARGE pairs, default 1; 0 skips it: each side takes minutes).
 */
import { join } from "node:path";
import { type Figure, pairedComparison } from "./util.ts";
import { resolveProbeEngine } from "../stages/lib/eval/engine_param.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const PYTHON = "/usr/bin/python3"; // Debian's python3 with scikit-learn 1.2 (not a pyenv shim)

interface Side {
  seconds: number;
  accuracy: number;
  chosenC: number;
  iterations: number;
  sklearn?: string;
}

async function json(cmd: string, args: string[]): Promise<Side> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder();
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")}: ${text.decode(out.stderr).trim().split("\n").at(-1)}`,
    );
  }
  return JSON.parse(text.decode(out.stdout).trim().split("\n").at(-1)!);
}

const envInt = (name: string, dflt: number) => Number(Deno.env.get(name) || dflt);

export async function benchProbe(log: (s: string) => void): Promise<Figure[]> {
  const engine = resolveProbeEngine("auto");
  const figures: Figure[] = [];
  const dir = await Deno.makeTempDir({ prefix: "kme-probe-" });
  try {
    for (
      const [n, p, K, pairs] of [
        [3000, 64, 10, envInt("KME_BENCH_PROBE_PAIRS", 5)],
        [50000, 512, 100, envInt("KME_BENCH_PROBE_LARGE", 1)],
      ]
    ) {
      if (pairs < 1) continue;
      const file = join(dir, `features-${n}x${p}x${K}.bin`);
      const shape = `${n.toLocaleString("en")} x ${p}, ${K} classes`;
      const ours = () =>
        json(Deno.execPath(), [
          "run",
          "--allow-all",
          `--config=${join(ROOT, "deno.json")}`,
          join(ROOT, "bench", "probe_standalone.ts"),
          ...["--file", file, "--n", `${n}`, "--p", `${p}`, "--classes", `${K}`],
          ...["--engine", engine, "--workers", "2"],
        ]);
      const theirs = () => json(PYTHON, [join(ROOT, "bench", "peers", "probe_sklearn.py"), file]);
      const cmp = await pairedComparison(pairs, ours, theirs, (o, t) => t.seconds / o.seconds);
      for (const [o, t] of cmp.pairs) {
        log(
          `probe ${shape}: ours ${o.seconds} s (${o.iterations} iterations, accuracy ` +
            `${o.accuracy.toFixed(2)}, C ${o.chosenC}); scikit-learn ${t.seconds} s ` +
            `(${t.iterations}, ${t.accuracy.toFixed(2)}, C ${t.chosenC})`,
        );
      }
      const [o, t] = cmp.pairs.at(-1)!;
      figures.push({
        name: `linear probe ${shape}, 13 C + refit, engine ${engine}, 2 workers (s, median)`,
        value: cmp.median((x) => x[0].seconds),
        unit: "s",
        peer: {
          name: `scikit-learn ${t.sklearn} LogisticRegression(max_iter=1000), 2 BLAS threads`,
          value: cmp.median((x) => x[1].seconds),
        },
        target: "faster than scikit-learn, accuracy within 0.5 points",
        met: cmp.ratio > 1 && Math.abs(o.accuracy - t.accuracy) <= 0.5,
        note:
          `${cmp.ratio.toFixed(2)}x scikit-learn's speed (median of ${pairs} per-pair ratios); ` +
          `test accuracy ${o.accuracy.toFixed(2)} vs ${t.accuracy.toFixed(2)}; ${cmp.loadNote}`,
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return figures;
}
