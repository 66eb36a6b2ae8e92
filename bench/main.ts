/**
 * `deno task bench`: measures, prints and writes bench/results.json and bench/results.md.
 * Sections: `deno task bench engine` runs one; no argument runs all.
 * Figures on a shared machine move with load: peers run in the same invocation, medians quoted.
 */
import { arch, cpus, hostname, totalmem } from "node:os";
import { benchEngine } from "./engine.ts";
import { benchTraining } from "./training.ts";
import { benchEvaluation } from "./evaluation.ts";
import { benchFaults } from "./faults.ts";
import { benchProbe } from "./probe.ts";
import { type Figure, LOAD_FLAG, loadNow } from "./util.ts";

const sections: Record<string, (log: (s: string) => void) => Promise<Figure[]>> = {
  engine: benchEngine,
  training: benchTraining,
  evaluation: benchEvaluation,
  probe: benchProbe,
  faults: benchFaults,
};

// Not a section: a diagnosis of one webgpu training step, printed (and written with --json).
if (Deno.args[0] === "gpu-profile") {
  const { gpuProfileMain } = await import("./gpu_profile.ts");
  await gpuProfileMain(Deno.args.slice(1));
  Deno.exit(0);
}

const wanted = Deno.args.length ? Deno.args : Object.keys(sections);
const machine = {
  host: hostname(),
  cpu: cpus()[0]?.model ?? "?",
  cores: cpus().length,
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  arch: arch(),
  deno: Deno.version.deno,
  date: new Date().toISOString(),
};
console.log(
  `machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, deno ${machine.deno}`,
);
const results: Record<string, Figure[]> = {};
/** The 1-minute load average around each section; above LOAD_FLAG its figures are flagged. */
const load: Record<string, { before: number; after: number; flagged: boolean }> = {};
for (const name of wanted) {
  if (!sections[name]) {
    console.error(`unknown section '${name}'; sections: ${Object.keys(sections).join(", ")}`);
    Deno.exit(2);
  }
  console.log(`== ${name}`);
  const before = loadNow();
  results[name] = await sections[name]((s) => console.log(`  ${s}`));
  const after = loadNow();
  load[name] = { before, after, flagged: Math.max(before, after) > LOAD_FLAG };
  console.log(`  load ${before} before, ${after} after${load[name].flagged ? " (FLAGGED)" : ""}`);
}

const dir = new URL(".", import.meta.url).pathname;
let previous: {
  sections?: Record<string, Figure[]>;
  measured?: Record<string, string>;
  load?: typeof load;
} = {};
try {
  previous = JSON.parse(await Deno.readTextFile(`${dir}results.json`));
} catch { /* first run */ }
// Sections merge, so each keeps the date it was measured at.
const measured = {
  ...(previous.measured ?? {}),
  ...Object.fromEntries(Object.keys(results).map((k) => [k, machine.date])),
};
const merged = {
  machine,
  measured,
  load: { ...(previous.load ?? {}), ...load },
  sections: { ...(previous.sections ?? {}), ...results },
};
await Deno.writeTextFile(`${dir}results.json`, JSON.stringify(merged, null, 2) + "\n");

const fmt = (v: number | null | undefined) =>
  v === null || v === undefined ? "-" : v >= 100 ? v.toFixed(0) : v.toPrecision(3);
const md = [
  `Measured on ${machine.cpu} (${machine.cores} cores, ${machine.memoryGiB} GiB), Deno ${machine.deno}; \`deno task bench\`; sections: ${
    Object.keys(merged.sections).map((k) => {
      const l = merged.load[k];
      const at = l ? ` (load ${l.before} -> ${l.after}${l.flagged ? ", FLAGGED" : ""})` : "";
      return `${k} ${measured[k] ?? "?"}${at}`;
    }).join(", ")
  }.`,
  "",
  "| section | figure | ours | peer | target | met |",
  "|---|---|---|---|---|---|",
];
for (const [section, figs] of Object.entries(merged.sections)) {
  for (const f of figs) {
    const peer = f.peer
      ? `${f.peer.name}: ${fmt(f.peer.value)}${f.peer.note ? ` (${f.peer.note})` : ""}`
      : "";
    md.push(
      `| ${section} | ${f.name} | ${fmt(f.value)} ${f.unit}${
        f.note ? ` (${f.note})` : ""
      } | ${peer} | ${f.target ?? ""} | ${f.met === undefined ? "" : f.met ? "yes" : "no"} |`,
    );
  }
}
await Deno.writeTextFile(`${dir}results.md`, md.join("\n") + "\n");
console.log(md.join("\n"));
