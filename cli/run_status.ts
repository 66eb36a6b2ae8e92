/** `run` and `status`: the commands that work on one experiment. */
import { dirname, relative, resolve } from "../pipeline/paths.ts";
import { ConsoleUI } from "../pipeline/console_ui.ts";
import { colours } from "../pipeline/console_style.ts";
import { planStages } from "../pipeline/plan.ts";
import {
  environment,
  latestRecord,
  newRunRecord,
  stagesText,
  writeRecord,
} from "../pipeline/records.ts";
import { runStages } from "../pipeline/runner.ts";
import { useStore } from "../pipeline/store_lock.ts";
import type { Executor } from "../pipeline/executor.ts";
import type { KeyComponents } from "../pipeline/key.ts";
import type { Prepared } from "./prepare.ts";
import { summary, summaryTable } from "./run_summary.ts";
import { type NoopIdentity, watchedPaths, writeNoopMemo } from "../pipeline/noop_memo.ts";
import { lazyImport } from "../pipeline/lazy_import.ts";

/**
 * Components of each stage in the latest run of this experiment or, for stages it has not
 * run yet, of the experiments it extends: a derived experiment explains itself against its base.
 */
async function previousComponents(p: Prepared) {
  const byStage = new Map<string, KeyComponents>();
  for (const name of p.experiment.lineage) {
    const rec = await latestRecord(p.store, name);
    for (const [stage, s] of Object.entries(rec?.stages ?? {})) {
      if (s.components && !byStage.has(stage)) byStage.set(stage, s.components);
    }
  }
  return (stage: string) => byStage.get(stage);
}

export async function statusCommand(
  p: Prepared,
  force: Set<string>,
  json = false,
): Promise<number> {
  const rows = await planStages(p.stages, p.kc, force, await previousComponents(p));
  await p.kc.memo.save().catch(() => {});
  if (json) {
    // One object per stage: its state, key (when known), why it would run, what it waits on.
    const stages = rows.map((r) =>
      r.state === "cached"
        ? { stage: r.stage, state: r.state, key: r.key }
        : r.state === "run"
        ? { stage: r.stage, state: r.state, key: r.key, reasons: r.reasons }
        : { stage: r.stage, state: r.state, upstream: r.upstream, reasons: r.reasons }
    );
    console.log(JSON.stringify(
      { experiment: p.experiment.name, file: p.experiment.file, stages },
      null,
      1,
    ));
    return 0;
  }
  const w = Math.max(...rows.map((r) => r.stage.length));
  const c = colours("stdout");
  // Padded first, then coloured: escapes must not count in the column widths.
  const state = (s: "cached" | "run" | "waits") =>
    ({ cached: c.green, run: c.yellow, waits: c.dim })[s](s.padEnd(8));
  console.log(`${p.experiment.name} (${p.experiment.file})`);
  for (const r of rows) {
    const name = r.stage.padEnd(w);
    if (r.state === "cached") {
      console.log(`  ${name}  ${state("cached")} ${c.dim(r.key.slice(0, 12))}`);
    } else if (r.state === "run") {
      console.log(`  ${name}  ${state("run")} ${r.reasons[0] ?? ""}`);
      for (const why of r.reasons.slice(1)) console.log(`  ${"".padEnd(w)}           ${why}`);
    } else {
      const own = r.reasons.filter((x) => !x.startsWith("input "));
      if (own.length) {
        console.log(`  ${name}  ${state("run")} ${own[0]}`);
        for (const why of own.slice(1)) console.log(`  ${"".padEnd(w)}           ${why}`);
        console.log(`  ${"".padEnd(w)}           (after ${r.upstream.join(", ")})`);
      } else {
        console.log(
          `  ${name}  ${state("waits")} on ${r.upstream.join(", ")} (reruns if its output changes)`,
        );
      }
    }
  }
  const n = rows.filter((r) => r.state !== "cached").length;
  console.log(n ? `${n} of ${rows.length} stages would run` : "everything is cached");
  return 0;
}

export interface RunFlags {
  /** Write the HTML report after a run that computed something. */
  report: boolean;
  executor: Executor;
  jobs: number;
  force: Set<string>;
  dryRun: boolean;
  /** After a failure, run what does not depend on it. */
  keepGoing: boolean;
  quiet: boolean;
  argv: string[];
  root: string;
  /** Set when the run may leave its answer for the next (no -S, --force or Slurm). */
  noop?: NoopIdentity;
}

export async function runCommand(p: Prepared, f: RunFlags): Promise<number> {
  if (f.dryRun) {
    console.log("dry run: nothing is executed");
    return await statusCommand(p, f.force);
  }
  await p.store.ensureLayout();
  const ui = new ConsoleUI(f.quiet);
  const started = new Date();
  // Held until the record that refers to this run's entries is written (pipeline/store_lock.ts).
  using _use = await useStore(p.store.layout, () => {
    if (!f.quiet) console.error("waiting: 'gc' is cleaning this store");
  });
  const out = await runStages(p.stages, p.kc, {
    jobs: f.jobs,
    force: f.force,
    ui,
    executor: f.executor,
    experimentDir: dirname(resolve(p.experiment.file)),
    keepGoing: f.keepGoing,
  });
  const experiment = {
    name: p.experiment.name,
    file: p.experiment.file,
    sha256: p.experiment.sha256,
  };
  const rec = newRunRecord(started, experiment, p.experiment.seed, out.status, out.stages, f.argv);
  const ran = Object.values(rec.stages).some((s) => s.outcome === "ran");
  rec.env = await environment(f.root, ran);
  const path = await writeRecord(p.store, rec);
  if (f.noop && Object.values(rec.stages).every((s) => s.outcome === "cached")) {
    const watched = watchedPaths(
      f.root,
      p.store.layout,
      Object.keys(p.experiment.sha256),
      p.stages.map((s) => ({
        codeFiles: Object.keys(s.code?.files ?? {}),
        key: rec.stages[s.name].key!,
        externals: Object.values(s.externals),
      })),
    );
    writeNoopMemo(
      p.store.layout,
      f.noop,
      {
        experiment,
        seed: rec.seed,
        stageNames: Object.keys(rec.stages),
        stagesText: stagesText(rec.stages),
        table: summaryTable(rec),
      },
      watched,
      // The process's start: before anything the answer rests on was read.
      performance.timeOrigin,
    );
  }
  if (!f.quiet) console.log(summary(rec));
  const shown = relative(Deno.cwd(), path);
  if (out.status === "ok" && ran && f.report) {
    // Only after real work: a cached rerun must not pay for loading Vega.
    try {
      const { writeReport } = await lazyImport<typeof import("../report/mod.ts")>(
        new URL("../report/mod.ts", import.meta.url),
      );
      const rep = await writeReport(p.store, [rec]);
      console.log(`report: ${relative(Deno.cwd(), rep.path)}`);
    } catch (e) {
      console.error(`warning: the report could not be written: ${(e as Error).message}`);
    }
  }
  if (out.failure) {
    console.error(
      `error: stage '${out.failure.stage}' failed: ${out.failure.message}` +
        (out.failure.log ? `\n  log: ${out.failure.log}` : "") +
        `\n  earlier stages' results are kept; fix and rerun to resume`,
    );
  }
  if (out.status === "interrupted") {
    console.error("interrupted: rerun the same command to resume");
  }
  console.log(`run record: ${shown}`);
  return out.exitCode;
}
