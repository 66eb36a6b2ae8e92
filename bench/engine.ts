/**
 * Engine figures: no-op rerun of a fully cached 5-stage experiment (vs Snakemake's no-op of
 * the equivalent 5 rules), no-op rerun of tiny.yaml against Deno's own start-up (issue 16's
 * gate), and hashing a 1 GiB external file (vs sha256sum), plus the second-hash cost with the
 * stat memo.
 */
import { join } from "node:path";
import { hashFile, StatMemo } from "../pipeline/hash.ts";
import { type Figure, LOAD_FLAG, loadNow, median, timeCommand, which } from "./util.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const REPEAT = 7;

export async function benchEngine(log: (s: string) => void): Promise<Figure[]> {
  const figures: Figure[] = [];
  const dir = await Deno.makeTempDir({ prefix: "kme-bench-" });
  try {
    figures.push(...(await noopRerun(dir, log)));
    figures.push(...(await tinyNoop(dir, log)));
    figures.push(...(await hashing(dir, log)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return figures;
}

async function noopRerun(dir: string, log: (s: string) => void): Promise<Figure[]> {
  const stages = join(ROOT, "tests", "stages", "text.ts");
  const yaml = `name: noop\nstages:\n` +
    ["s1", "s2", "s3", "s4", "s5"].map((s, i) =>
      `  ${s}: {kind: ${stages}, params: {text: ${s}}${i ? `, inputs: {a: s${i}}` : ""}}\n`
    ).join("");
  await Deno.writeTextFile(join(dir, "noop.yaml"), yaml);
  const args = [
    "run",
    "--allow-all",
    "--quiet",
    `--config=${join(ROOT, "deno.json")}`,
    join(ROOT, "cli", "main.ts"),
    "run",
    "noop.yaml",
    "--store",
    join(dir, "store"),
    "--quiet",
  ];
  await timeCommand(Deno.execPath(), args, { cwd: dir });
  // Past the no-op memo's racy window (2 s), then the all-cached run that writes it: the
  // figure is what every rerun of an unchanged experiment costs (pipeline/noop_memo.ts).
  await new Promise((r) => setTimeout(r, 2100));
  await timeCommand(Deno.execPath(), args, { cwd: dir });
  // Deno's own start-up, on an empty module, and Snakemake's no-op, alternating with ours
  // (A B C A B C ...) so that all three see the same load.
  const empty = join(dir, "empty.ts");
  await Deno.writeTextFile(empty, "");
  const bareArgs = ["run", "--quiet", `--config=${join(ROOT, "deno.json")}`, empty];
  await timeCommand(Deno.execPath(), bareArgs, { cwd: dir });
  let smk: string | undefined;
  const sargs = ["-j1", "--quiet"];
  if (await which("snakemake")) {
    smk = join(dir, "smk");
    await Deno.mkdir(smk);
    const rules = ["s1", "s2", "s3", "s4", "s5"].map((s, i) =>
      `rule ${s}:\n${i ? `    input: "s${i}.txt"\n` : ""}    output: "${s}.txt"\n` +
      `    shell: "echo ${s} > {output}"\n`
    ).join("\n");
    await Deno.writeTextFile(join(smk, "Snakefile"), `rule all:\n    input: "s5.txt"\n\n${rules}`);
    await timeCommand("snakemake", sargs, { cwd: smk });
  }
  const before = loadNow();
  const ours: number[] = [], bare: number[] = [], theirs: number[] = [];
  for (let i = 0; i < REPEAT; i++) {
    ours.push(await timeCommand(Deno.execPath(), args, { cwd: dir }));
    bare.push(await timeCommand(Deno.execPath(), bareArgs, { cwd: dir }));
    if (smk) theirs.push(await timeCommand("snakemake", sargs, { cwd: smk }));
  }
  const after = loadNow();
  const load = `load ${before} before, ${after} after${
    Math.max(before, after) > LOAD_FLAG ? " (FLAGGED)" : ""
  }`;
  const show = (xs: number[]) => xs.map((t) => t.toFixed(3)).join(" ");
  log(`no-op rerun (5 stages): ${show(ours)} s; deno start-up: ${show(bare)} s; ${load}`);
  if (smk) log(`snakemake no-op (5 rules): ${show(theirs)} s`);
  const value = median(ours), start = median(bare);
  // Our own cost: per pair, ours minus Deno's start-up in the same pair.
  const own = median(ours.map((t, i) => t - bare[i]));
  const peer: Figure["peer"] = smk
    ? { name: "snakemake 5-rule no-op", value: median(theirs) }
    : { name: "snakemake", value: null, note: "not installed" };
  return [
    {
      name: "engine no-op rerun, 5 cached stages (wall, median)",
      value,
      unit: "s",
      peer,
      target: "<= 0.2 s",
      met: value <= 0.2,
      note: (peer.value ? `${(peer.value / value).toFixed(1)}x faster than snakemake; ` : "") +
        load,
    },
    {
      name: "no-op rerun minus Deno's start-up on an empty module, same pair (median)",
      value: own,
      unit: "s",
      peer: { name: "deno run empty.ts, project config", value: start },
      // What the CLI adds to Deno's start-up: 0.131 s before the no-op memo and the lean
      // start-up path (2026-11-30 11:00), 0.017 s after (12:31, load 0.8).
      target: "<= 0.05 s",
      met: own <= 0.05,
      note: load,
    },
  ];
}

/**
 * A cached rerun of experiments/tiny.yaml (15 stages) as a user runs it, against the floors
 * it is measured from, in the same rounds (A B C D E ...): `deno run` on an empty module with
 * the project's configuration, and `deno task` running one. The first rerun after a change
 * takes the plan-cache path instead of the no-op memo (pipeline/noop_memo.ts); it is measured
 * too, by removing the memo before each of its runs.
 */
async function tinyNoop(dir: string, log: (s: string) => void): Promise<Figure[]> {
  const deno = Deno.execPath();
  const store = join(dir, "tiny-store");
  const config = `--config=${join(ROOT, "deno.json")}`;
  const ours = [
    "run",
    "--allow-all",
    "--quiet",
    config,
    join(ROOT, "cli", "main.ts"),
    "run",
    "experiments/tiny.yaml",
    "--store",
    store,
    "--quiet",
  ];
  log("tiny.yaml: computing it once in a fresh store (about 40 s)");
  await timeCommand(deno, [...ours, "--no-report"], { cwd: ROOT });
  // Training raised the load: let it fall back (to 1.0, or for at most 60 s) before timing.
  for (let waited = 0; waited < 60 && loadNow() > 1.0; waited += 5) {
    await new Promise((r) => setTimeout(r, 5000));
  }
  // Past the memo's racy window (2 s), then the all-cached run that writes it.
  await new Promise((r) => setTimeout(r, 2100));
  await timeCommand(deno, ours, { cwd: ROOT });
  const empty = join(dir, "empty.ts");
  await Deno.writeTextFile(empty, "");
  const bare = ["run", "--allow-all", "--quiet", config, empty];
  const task = ["task", "--quiet", "run", "experiments/tiny.yaml", "--store", store, "--quiet"];
  const taskEmpty = ["task", "--quiet", "--eval", `deno run --allow-all ${empty}`];
  const memo = join(store, "memo", "noop");
  const t = { ours: [] as number[], bare: [] as number[], task: [] as number[] };
  const u = { taskEmpty: [] as number[], planned: [] as number[] };
  const before = loadNow();
  for (let i = 0; i < 2 * REPEAT + 1; i++) {
    t.ours.push(await timeCommand(deno, ours, { cwd: ROOT }));
    t.bare.push(await timeCommand(deno, bare, { cwd: ROOT }));
    t.task.push(await timeCommand(deno, task, { cwd: ROOT }));
    u.taskEmpty.push(await timeCommand(deno, taskEmpty, { cwd: ROOT }));
    await Deno.remove(memo, { recursive: true });
    u.planned.push(await timeCommand(deno, ours, { cwd: ROOT }));
  }
  const after = loadNow();
  const load = `load ${before} before, ${after} after${
    Math.max(before, after) > LOAD_FLAG ? " (FLAGGED)" : ""
  }`;
  const show = (xs: number[]) => median(xs).toFixed(3);
  log(
    `tiny.yaml no-op: deno run ${show(t.ours)} s (empty module ${show(t.bare)} s); deno task ` +
      `${show(t.task)} s (empty ${show(u.taskEmpty)} s); plan-cache path ${show(u.planned)} s; ` +
      load,
  );
  const value = median(t.ours);
  const overTask = median(t.task.map((x, i) => x - u.taskEmpty[i]));
  return [
    {
      name: "no-op rerun of tiny.yaml (15 stages), deno run cli/main.ts run (wall, median)",
      value,
      unit: "s",
      peer: { name: "deno run, empty module, project config", value: median(t.bare) },
      // The gate later changes must hold (issue 16).
      target: "<= 0.10 s",
      met: value <= 0.10,
      note: load,
    },
    {
      name: "the same through deno task run, minus deno task running an empty module (median)",
      value: overTask,
      unit: "s",
      peer: { name: "deno task --eval 'deno run empty.ts'", value: median(u.taskEmpty) },
      target: "<= 0.05 s",
      met: overTask <= 0.05,
      note: load,
    },
    {
      name: "first no-op rerun after a change elsewhere: plan cache, no memo (wall, median)",
      value: median(u.planned),
      unit: "s",
      note: load,
    },
  ];
}

async function hashing(dir: string, log: (s: string) => void): Promise<Figure[]> {
  const size = Number(Deno.env.get("KME_BENCH_HASH_MIB") ?? 1024) << 20;
  const file = join(dir, "big.bin");
  {
    using f = await Deno.open(file, { write: true, create: true });
    const chunk = new Uint8Array(16 << 20);
    for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 2654435761) >>> 24;
    for (let done = 0; done < size; done += chunk.length) await f.write(chunk);
  }
  const gib = size / 2 ** 30;
  const ours: number[] = [];
  const theirs: number[] = [];
  const haveSum = await which("sha256sum");
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await hashFile(file);
    ours.push((performance.now() - t0) / 1000);
    if (haveSum) theirs.push(await timeCommand("sha256sum", [file]));
  }
  const ourRate = size / 2 ** 20 / median(ours);
  const peerRate = haveSum ? size / 2 ** 20 / median(theirs) : null;
  log(
    `hash ${gib.toFixed(2)} GiB: ours ${ourRate.toFixed(0)} MiB/s, sha256sum ${
      peerRate?.toFixed(0) ?? "-"
    } MiB/s`,
  );

  const memoPath = join(dir, "memo.json");
  const m1 = await StatMemo.load(memoPath);
  await m1.hashPath(file);
  await m1.save();
  const m2 = await StatMemo.load(memoPath);
  const t0 = performance.now();
  await m2.hashPath(file);
  const again = (performance.now() - t0) / 1000;
  const ratio = peerRate ? ourRate / peerRate : null;
  return [
    {
      name: `hashing a ${gib.toFixed(2)} GiB external file (median of 3)`,
      value: ourRate,
      unit: "MiB/s",
      peer: { name: "sha256sum", value: peerRate, note: haveSum ? undefined : "not installed" },
      target: ">= 0.9x sha256sum",
      met: ratio === null ? undefined : ratio >= 0.9,
      note: ratio === null ? undefined : `ratio ${ratio.toFixed(2)}`,
    },
    {
      name: "second hash of the unchanged file (stat memo)",
      value: again,
      unit: "s",
      note: `bytes re-read: ${m2.bytesRead}`,
    },
  ];
}
