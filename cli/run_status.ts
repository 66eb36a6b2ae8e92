/** `run` and `status`: the commands that work on one experiment. */
import { dirname, relative, resolve } from "../pipeline/paths.ts";
import { ConsoleUI } from "../pipeline/console_ui.ts";
import { colours } from "../pipeline/console_style.ts";
import { planStages } from "../pipeline/plan.ts";
import {
  environment,
  latestRecord,
  newRunId,
  type RunRecord,
  writeRecord,
} from "../pipeline/records.ts";
import { runStages } from "../pipeline/runner.ts";
import { useStore } from "../pipeline/store_lock.ts";
import type { Executor } from "../pipeline/executor.ts";
import type { KeyComponents } from "../pipeline/key.ts";
import { fmtNum, groupsOf } from "../pipeline/diff.ts";
import type { Prepared } from "./main.ts";
import {
  hasNoopMemo,
  type NoopIdentity,
  readNoopMemo,
  watchedPaths,
  writeNoopMemo,
} from "../pipeline/noop_memo.ts";
import type { Store } from "../pipeline/store.ts";
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

/**
 * A rerun answered by the no-op memo (pipeline/noop_memo.ts): nothing is planned or keyed,
 * the record is written from the memo. Undefined when the memo does not hold.
 */
export async function rerunFromMemo(
  store: Store,
  id: NoopIdentity,
  f: Pick<RunFlags, "quiet" | "argv" | "root">,
): Promise<number | undefined> {
  if (!hasNoopMemo(store.layout, id)) return undefined;
  const started = new Date();
  // Checked under the store's lock, as a run checks its entries: gc cannot delete them between
  // the check and the record that refers to them.
  using _use = await useStore(store.layout, () => {
    if (!f.quiet) console.error("waiting: 'gc' is cleaning this store");
  });
  const answer = readNoopMemo(store.layout, id);
  if (!answer) return undefined;
  const ui = new ConsoleUI(f.quiet);
  for (const name of Object.keys(answer.stages)) ui.line(`· ${name}: cached`);
  const rec = record(started, answer.experiment, answer.seed, "ok", answer.stages, f);
  rec.env = await environment(f.root, false);
  const path = await writeRecord(store, rec);
  if (!f.quiet) console.log(summary(rec));
  console.log(`run record: ${relative(Deno.cwd(), path)}`);
  return 0;
}

function record(
  started: Date,
  experiment: RunRecord["experiment"],
  seed: number,
  status: RunRecord["status"],
  stages: RunRecord["stages"],
  f: Pick<RunFlags, "argv">,
): RunRecord {
  const finished = new Date();
  return {
    format: "kme-run/1",
    id: newRunId(started),
    experiment,
    status,
    started: started.toISOString(),
    finished: finished.toISOString(),
    seconds: (finished.getTime() - started.getTime()) / 1000,
    argv: f.argv,
    seed,
    env: {},
    stages,
  };
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
  const rec = record(started, experiment, p.experiment.seed, out.status, out.stages, f);
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
      { experiment, seed: rec.seed, stages: rec.stages },
      watched,
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

/** The end-of-run table: stage, outcome, time, a few metrics. */
export function summary(rec: RunRecord): string {
  const numeric = (m: Record<string, unknown> | undefined) =>
    Object.entries(m ?? {}).filter(([, v]) => typeof v === "number").slice(0, 6) as [
      string,
      number,
    ][];
  const rows = Object.entries(rec.stages).map(([name, s]) => {
    const metrics = numeric(s.metrics).map(([k, v]) => `${k}=${fmtNum(v)}`).join(" ");
    const time = s.outcome === "ran" ? `${s.seconds.toFixed(1)}s` : "";
    return [name, s.outcome, time, metrics];
  });
  const w = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i].length)));
  const ran = Object.values(rec.stages).filter((s) => s.outcome === "ran").length;
  const lines = rows.map((r) =>
    "  " + r.map((c, i) => (i < 3 ? c.padEnd(w[i]) : c)).join("  ").trimEnd()
  );
  // Sweeps over seeds: one line per group with mean ± sd.
  const groups = [...groupsOf({ record: rec }).values()].filter((g) => g.members.length > 1);
  if (groups.length) {
    lines.push("over seeds (mean ± sd):");
    const gw = Math.max(...groups.map((g) => g.name.length));
    for (const g of groups) {
      const ms = [...g.metrics.entries()].slice(0, 6).map(([k, xs]) => {
        const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
        const sd = Math.sqrt(
          xs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, xs.length - 1),
        );
        return `${k}=${fmtNum(mean)}±${fmtNum(sd)}`;
      });
      lines.push(`  ${g.name.padEnd(gw)}  n=${g.members.length}  ${ms.join(" ")}`);
    }
  }
  const failed = Object.entries(rec.stages).filter(([, s]) => s.outcome === "failed");
  if (failed.length > 1) lines.push(`failed: ${failed.map(([n]) => n).join(", ")}`);
  const outcomes = Object.values(rec.stages).map((s) => s.outcome);
  const n = (o: string[]) => outcomes.filter((x) => o.includes(x)).length;
  const parts = [
    `${ran} ran`,
    `${n(["cached", "reused"])} cached`,
    ...(n(["failed"]) ? [`${n(["failed"])} failed`] : []),
    ...(n(["interrupted"]) ? [`${n(["interrupted"])} interrupted`] : []),
    ...(n(["not-run"]) ? [`${n(["not-run"])} not run`] : []),
  ];
  lines.push(`${rec.status}: ${parts.join(", ")}, ${rec.seconds.toFixed(2)} s`);
  return lines.join("\n");
}
