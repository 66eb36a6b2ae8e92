/**
 * kme-clip command line: run | status | runs | diff | report | verify | gc | schema.
 * Exit codes: 0 ok, 1 a stage failed (or verify found damage), 2 bad input, 130 interrupted.
 */
import { parseArgs } from "node:util";
import { dirname, join, resolve } from "node:path";
import { ConfigError, UsageError } from "../pipeline/errors.ts";
import type { PlannedStage } from "../pipeline/resolve.ts";
import { withUpstream } from "../pipeline/select.ts";
import { loadPlan, type PlanExperiment, savePlan } from "../pipeline/plan_cache.ts";
import { openStore, type Store } from "../pipeline/store.ts";
import { ProjectResolver, stageFingerprint } from "../pipeline/fingerprint.ts";
import { StatMemo } from "../pipeline/hash.ts";
import type { KeyContext } from "../pipeline/plan.ts";
import { type Executor, LocalExecutor } from "../pipeline/executor.ts";
import { fromFileUrl } from "../pipeline/paths.ts";
import { sha256Hex } from "../pipeline/canonical.ts";
import { didYouMean } from "../pipeline/suggest.ts";

const ROOT = dirname(dirname(fromFileUrl(import.meta.url)));

const USAGE = `usage: kme <command> [options]

  run EXPERIMENT.yaml [STAGE...]   run (or resume) an experiment; STAGEs limit it to those
                                   stages and their upstream
      --jobs N          stages to run at once (default 1)
      --force STAGE     rerun STAGE even if cached (repeatable)
      --dry-run         list what would run and why, run nothing
      --executor E      local (default) or slurm: each stage an sbatch job
      --no-report       skip the HTML report written after a run that computed something
      -S, --set PATH=VALUE  override a value of the experiment file, as a derived file would
                        (e.g. -S stages.train.params.lr=0.001; repeatable; status too)
  status EXPERIMENT.yaml           per stage: cached, would run (and why), or waits
  diff A B                         compare two runs (experiment files or run ids);
                                   seeds are aggregated (mean ± sd, n)
  diff A --by AXIS[=V1,V2]         within one run: instances with AXIS=V1 against AXIS=V2
                                   (e.g. --by similarity: clip against kme)
      --all             show unchanged rows too
      --json | --md     machine-readable or Markdown output
  runs [EXPERIMENT]                the runs (of one experiment): date, time, outcome, stages
                                   ran/cached (no-op reruns marked), differing params, metrics
      --metric STAGE.METRIC  columns (repeatable; default val_loss, rsum, top1, ...)
      --sort COLUMN     started, seconds or a metric; --sort=-COLUMN descending
      --no-noop         leave out runs that computed nothing
      --json | --md | --csv
  report RUN|EXPERIMENT.yaml [B]   self-contained HTML report of a run (two: side by side)
      --out FILE        default <store>/reports/<experiment>/<run id>.html
      --png DIR         also every figure as DIR/<figure id>.png
  verify [EXPERIMENT.yaml]         re-hash entries; quarantine damaged ones (they rerun)
  gc [--keep N] [--dry-run]        delete entries not referenced by the N latest runs of
                                   each experiment (default 5)
  schema                           print the JSON Schema of experiment files

common: --store DIR (default $KME_STORE or ./artifacts), --quiet, --help (also after a
        command: its options only), --version`;

async function main(argv: string[]): Promise<number> {
  const { values: o, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      store: { type: "string" },
      jobs: { type: "string", default: "1" },
      force: { type: "string", multiple: true, default: [] },
      only: { type: "string", multiple: true, default: [] },
      "dry-run": { type: "boolean", default: false },
      all: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      md: { type: "boolean", default: false },
      keep: { type: "string", default: "5" },
      by: { type: "string" },
      executor: { type: "string", default: "local" },
      "no-report": { type: "boolean", default: false },
      out: { type: "string" },
      png: { type: "string" },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
      version: { type: "boolean", short: "V", default: false },
      csv: { type: "boolean", default: false },
      set: { type: "string", short: "S", multiple: true, default: [] },
      metric: { type: "string", multiple: true, default: [] },
      sort: { type: "string" },
      "no-noop": { type: "boolean", default: false },
    },
  });
  const [cmd, ...args] = positionals;
  if (o.version) {
    console.log(await versionText());
    return 0;
  }
  if (o.help || !cmd) {
    console.log(cmd && COMMANDS[cmd] ? commandUsage(cmd) : USAGE);
    return cmd || o.help ? 0 : 2;
  }
  checkOptions(cmd, argv);
  const store = openStore(resolve(o.store ?? Deno.env.get("KME_STORE") ?? "artifacts"));
  switch (cmd) {
    case "run":
    case "status": {
      if (!args[0]) throw new UsageError(`${cmd} needs an experiment file`);
      const jobs = Number(o.jobs);
      if (!Number.isInteger(jobs) || jobs < 1) {
        throw new UsageError("--jobs must be a positive integer");
      }
      const { runCommand, statusCommand } = await import("./run_status.ts");
      const ctx = await prepare(args[0], [...args.slice(1), ...o.only], store, o.set);
      checkForced(o.force, ctx.stages);
      if (cmd === "status") return await statusCommand(ctx, new Set(o.force));
      let executor: Executor = new LocalExecutor(ctx.configPath);
      if (o.executor === "slurm") {
        const { SlurmExecutor, slurmUnavailable } = await import("../pipeline/slurm.ts");
        const why = await slurmUnavailable();
        if (why) throw new UsageError(why);
        const byName = new Map(ctx.stages.map((s) => [s.name, s.resources ?? {}]));
        executor = new SlurmExecutor(
          ctx.configPath,
          store.layout,
          (job) => byName.get(job.stage) ?? {},
        );
      } else if (o.executor !== "local") {
        throw new UsageError(`--executor must be 'local' or 'slurm', not '${o.executor}'`);
      }
      return await runCommand(ctx, {
        executor,
        report: !o["no-report"],
        jobs,
        force: new Set(o.force),
        dryRun: o["dry-run"],
        quiet: o.quiet,
        argv,
        root: ROOT,
      });
    }
    case "diff": {
      const { diffCommand } = await import("./diff_command.ts");
      return await diffCommand(store, args, { all: o.all, json: o.json, md: o.md, by: o.by });
    }
    case "runs": {
      const { runsCommand } = await import("./runs_command.ts");
      return await runsCommand(store, args, {
        json: o.json,
        md: o.md,
        csv: o.csv,
        metrics: o.metric,
        noNoop: o["no-noop"],
        sort: o.sort,
      });
    }
    case "report": {
      const { reportCommand } = await import("./report_command.ts");
      return await reportCommand(store, args, { out: o.out, png: o.png, quiet: o.quiet });
    }
    case "verify": {
      const { verifyCommand } = await import("./maintenance.ts");
      return await verifyCommand(store, args[0]);
    }
    case "gc": {
      const keep = Number(o.keep);
      if (!Number.isInteger(keep) || keep < 1) {
        throw new UsageError("--keep must be a positive integer");
      }
      const { gcCommand } = await import("./maintenance.ts");
      return await gcCommand(store, keep, o["dry-run"]);
    }
    case "schema": {
      const { experimentJsonSchema } = await import("./schema.ts");
      console.log(JSON.stringify(await experimentJsonSchema(), null, 2));
      return 0;
    }
    default:
      throw new UsageError(`unknown command '${cmd}'\n\n${USAGE}`);
  }
}

/** The options each command takes (besides --store, --quiet, --help). */
const COMMANDS: Record<string, string[]> = {
  run: ["jobs", "force", "only", "dry-run", "executor", "no-report", "set"],
  status: ["force", "only", "set"],
  diff: ["all", "json", "md", "by"],
  runs: ["json", "md", "csv", "metric", "sort", "no-noop"],
  report: ["out", "png"],
  verify: [],
  gc: ["keep", "dry-run"],
  schema: [],
};
const COMMON = ["store", "quiet", "help", "version"];

/** An option that the command does not take is an error, not silently ignored. */
function checkOptions(cmd: string, argv: string[]) {
  const takes = COMMANDS[cmd];
  if (!takes) return; // an unknown command is reported below
  const short: Record<string, string> = { S: "set", h: "help", V: "version" };
  for (const a of argv) {
    const m = /^--([\w-]+)/.exec(a) ?? (/^-(\w)/.exec(a)?.[1] ? [a, short[a[1]] ?? a[1]] : null);
    if (!m || COMMON.includes(m[1]) || takes.includes(m[1])) continue;
    const which = Object.entries(COMMANDS).filter(([, os]) => os.includes(m[1])).map(([c]) => c);
    throw new UsageError(
      `'${cmd}' takes no --${m[1]}` +
        (which.length ? ` (it is an option of ${which.join(", ")})` : "") +
        `\n\n${commandUsage(cmd)}`,
    );
  }
}

/** `--force NAME` must name a stage (an instance or a swept stage as a whole). */
function checkForced(forced: string[], stages: PlannedStage[]) {
  const names = new Set(stages.flatMap((s) => [s.name, s.base]));
  for (const f of forced) {
    if (!names.has(f)) {
      throw new UsageError(
        `--force ${f}: no such stage${didYouMean(f, names)}; stages: ` +
          [...new Set(stages.map((s) => s.base))].join(", "),
      );
    }
  }
}

/** The lines of USAGE about one command, with the common options. */
function commandUsage(cmd: string): string {
  const lines = USAGE.split("\n");
  const start = lines.findIndex((l) => l.startsWith(`  ${cmd} `) || l === `  ${cmd}`);
  if (start < 0) return USAGE;
  let end = start + 1;
  while (end < lines.length && /^ {3,}/.test(lines[end])) end++;
  const own = lines.slice(start, end);
  // diff has two usage lines; keep both.
  if (cmd === "diff") {
    const second = lines.findIndex((l, i) => i >= end && l.startsWith("  diff "));
    if (second >= 0) {
      let e2 = second + 1;
      while (e2 < lines.length && /^ {3,}/.test(lines[e2])) e2++;
      own.push(...lines.slice(second, e2));
    }
  }
  const common = lines.slice(lines.findIndex((l) => l.startsWith("common:")));
  return ["usage: kme " + own[0].trim(), ...own.slice(1), "", ...common].join("\n");
}

/** kme-clip's commit (from .git, as run records read it) and the runtime. */
async function versionText(): Promise<string> {
  const { environment } = await import("../pipeline/records.ts");
  const env = await environment(ROOT, false);
  const commit = (env.git as { commit?: string } | null)?.commit?.slice(0, 12) ?? "unknown";
  return `kme-clip ${commit} (deno ${Deno.version.deno}, v8 ${Deno.version.v8}, ` +
    `typescript ${Deno.version.typescript})`;
}

export interface Prepared {
  store: Store;
  stages: PlannedStage[];
  experiment: PlanExperiment;
  kc: KeyContext;
  configPath: string;
}

/**
 * Everything that must hold before anything is written: parse, validate, resolve. An
 * unchanged experiment reuses its cached plan and never loads YAML, zod or stage modules.
 */
async function prepare(
  file: string,
  targets: string[],
  store: Store,
  overrides: string[] = [],
): Promise<Prepared> {
  const resolver = await ProjectResolver.load(ROOT);
  // A plan with -S overrides is not cached: the cache is keyed by the experiment's files.
  let planned = overrides.length ? undefined : await loadPlan(store.layout, ROOT, file, resolver);
  if (!planned) {
    const { loadExperiment } = await import("../pipeline/experiment_file.ts");
    const { resolveExperiment } = await import("../pipeline/resolve.ts");
    const { builtinCatalog } = await import("../stages/registry.ts");
    const exp = await loadExperiment(file, overrides);
    const res = await resolveExperiment(exp, builtinCatalog(), resolver);
    const sha256: Record<string, string> = {};
    for (const s of exp.sources) sha256[s.file] = sha256Hex(await Deno.readFile(s.file));
    const stages: PlannedStage[] = res.stages.map(({ def: _def, ...rest }) => rest);
    for (const s of stages) s.code = await stageFingerprint(resolver, s);
    const experiment = { name: exp.name, file, seed: exp.seed, sha256, lineage: exp.lineage };
    planned = { experiment, stages };
    if (!overrides.length) await savePlan(store.layout, ROOT, experiment, stages);
  }
  return {
    store,
    stages: targets.length ? withUpstream(planned.stages, targets, file) : planned.stages,
    experiment: planned.experiment,
    kc: { store, resolver, memo: await StatMemo.load(store.layout.memoPath) },
    configPath: join(ROOT, "deno.json"),
  };
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.toString());
      code = 2;
    } else if (
      e instanceof UsageError ||
      (e as Error)?.name === "TypeError" &&
        /parseArgs|Unknown option|ERR_PARSE_ARGS/.test(String((e as { code?: string }).code ?? e))
    ) {
      console.error(`error: ${(e as Error).message}`);
      code = 2;
    } else if (isStoreWriteFailure(e)) {
      // A read-only or full store is the machine's state, not a bug: say what and where.
      console.error(
        `error: cannot write: ${(e as Error).message}\n` +
          "  check the store's permissions and free space (--store DIR picks another store)",
      );
      code = 2;
    } else throw e;
  }
  Deno.exit(code);
}

/**
 * The file system refusing a write: permission denied, read-only, no space left, quota
 * exceeded, or a store path that is not a folder (`--store` naming a file, a name too long,
 * a loop of links).
 */
function isStoreWriteFailure(e: unknown): boolean {
  if (e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotADirectory) {
    return true;
  }
  const code = (e as { code?: string })?.code;
  const codes = [
    "EACCES",
    "EPERM",
    "EROFS",
    "ENOSPC",
    "EDQUOT",
    "ENOTDIR",
    "ENAMETOOLONG",
    "ELOOP",
  ];
  if (code && codes.includes(code)) return true;
  return /\(os error (1|13|20|28|30|36|40|122)\)/.test(String((e as Error)?.message));
}
