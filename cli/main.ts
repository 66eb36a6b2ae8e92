/**
 * kme-clip command line: run | status | runs | diff | report | log | ui | verify | gc | schema.
 * Exit codes: 0 ok, 1 a stage failed (or verify found damage), 2 bad input, 130 interrupted.
 */
// @ts-types="../vendor/type-flag@4.5.2/index.d.ts"
import { typeFlag } from "../vendor/type-flag@4.5.2/index.mjs";
import { ConfigError, UsageError } from "../pipeline/errors.ts";
import { openStore } from "../pipeline/store.ts";
import type { Executor } from "../pipeline/executor.ts";
import { dirname, fromFileUrl, resolve } from "../pipeline/paths.ts";
import { didYouMean } from "../pipeline/suggest.ts";
import { colours } from "../pipeline/console_style.ts";
import { lazyImport } from "../pipeline/lazy_import.ts";
// What a cached rerun needs, and only that, is imported statically: Deno loads a module
// imported with the rest of the graph faster than one imported after it, and everything else
// costs a cached rerun its load (pipeline/lazy_import.ts).
import { rerunFromMemo } from "./cached_rerun.ts";
import { noopIdentity } from "../pipeline/noop_memo.ts";

const red = (s: string) => colours("stderr").red(s);

/** `kme ui`'s port (cli/ui_command.ts says the same; kept here so `--help` loads nothing). */
const DEFAULT_UI_PORT = 8484;

const ROOT = dirname(dirname(fromFileUrl(import.meta.url)));

const USAGE = `usage: kme <command> [options]

  run EXPERIMENT.yaml [STAGE...]   run (or resume) an experiment; STAGEs limit it to those
                                   stages and their upstream
      --jobs N          stages to run at once (default 1)
      --force STAGE     rerun STAGE even if cached (repeatable)
      --dry-run         list what would run and why, run nothing
      --executor E      local (default) or slurm: each stage an sbatch job
      --no-report       skip the HTML report written after a run that computed something
      -k, --keep-going  after a stage fails, still run every stage that does not depend on it
      -S, --set PATH=VALUE  override a value of the experiment file, as a derived file would
                        (e.g. -S stages.train.params.lr=0.001; repeatable; status too)
  status EXPERIMENT.yaml           per stage: cached, would run (and why), or waits;
                                   -S as for run, --json
  diff A B [C...]                  compare runs (experiment file or name: its latest run;
                                   NAME:-2 the one before; NAME:ID; or a run id); more than
                                   two: each against A; seeds are aggregated (mean ± sd, n)
  diff A --by AXIS[=V1,V2]         within one run: instances with AXIS=V1 against AXIS=V2
                                   (e.g. --by similarity: clip against kme)
      --all             show unchanged rows too
      --metric NAME     only these metrics (rsum, retrieval.rsum, '*R@1'; repeatable)
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
  log RUN|EXPERIMENT.yaml STAGE    the log of a stage (of the attempt in progress, or of the
                                   entry in use); --follow tails it, --path prints where it is;
                                   -S as the run had it
  ui                               a local web dashboard of the store (read-only): runs,
                                   curves of stages training now, comparisons, logs
      --port N          default 8484 (0: any free port)
      --host H          default 127.0.0.1 (another address serves the store to others)
  verify [EXPERIMENT.yaml]         re-hash entries; quarantine damaged ones (they rerun)
  gc [--keep N] [--dry-run]        delete entries not referenced by the N latest runs of
                                   each experiment (default 5)
  schema                           print the JSON Schema of experiment files

common: --store DIR (default $KME_STORE or ./artifacts), --quiet, --help (also after a
        command: its options only), --version`;

/** `--name <value>`, repeatable: always an array of strings. */
const MANY = { type: [String], default: () => [] as string[] };

/**
 * The options each command takes, for type-flag (camelCase here accepts --kebab-case there).
 * type-flag rather than cac or commander: it is a plain ES module with no dependency, where
 * cac's and commander's use of node:events starts Deno's Node-compatibility layer, a quarter
 * of what a cached rerun costs above Deno's own start-up (issue 16); and a vendored copy
 * (vendor/README.md), because the first npm import of a process costs ~10 ms more. Routing to
 * a command is one switch; the help text stays USAGE (written by hand, as Deno's own CLIs do,
 * because it explains more than a generated list).
 */
const COMMON = {
  store: String,
  quiet: Boolean,
  help: { type: Boolean, alias: "h" },
  version: { type: Boolean, alias: "V" },
} as const;
const SET = { ...MANY, alias: "S" };
const COMMANDS = {
  run: {
    jobs: { type: String, default: "1" },
    force: MANY,
    only: MANY,
    dryRun: Boolean,
    executor: { type: String, default: "local" },
    report: { type: Boolean, default: true },
    set: SET,
    keepGoing: { type: Boolean, alias: "k" },
  },
  status: { force: MANY, only: MANY, set: SET, json: Boolean },
  diff: { all: Boolean, json: Boolean, md: Boolean, by: String, metric: MANY },
  runs: {
    json: Boolean,
    md: Boolean,
    csv: Boolean,
    metric: MANY,
    sort: String,
    noop: { type: Boolean, default: true },
  },
  report: { out: String, png: String },
  log: { follow: { type: Boolean, alias: "f" }, path: Boolean, set: SET },
  ui: {
    port: { type: String, default: String(DEFAULT_UI_PORT) },
    host: { type: String, default: "127.0.0.1" },
  },
  verify: {},
  gc: { keep: { type: String, default: "5" }, dryRun: Boolean },
  schema: {},
} as const;
type Command = keyof typeof COMMANDS;

const kebab = (name: string) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** The flags `cmd` takes (with the common ones), as typed: --long, --no-long, -s. */
function flagsOf(cmd?: Command): string[] {
  const schema = { ...COMMON, ...(cmd ? COMMANDS[cmd] : {}) };
  return Object.entries(schema).flatMap(([name, s]) => {
    const { alias, default: byDefault } = s as { alias?: string; default?: unknown };
    return [`--${byDefault === true ? "no-" : ""}${kebab(name)}`, ...(alias ? [`-${alias}`] : [])];
  });
}

/** Every option, of any command, that takes a value as the next argument (--store, -S, ...). */
const TAKES_VALUE = new Set(
  [COMMON, ...Object.values(COMMANDS)].flatMap((schema) =>
    Object.entries(schema).flatMap(([name, s]) => {
      const { type, alias } = s as { type?: unknown; alias?: string };
      if (s === Boolean || type === Boolean) return [];
      return [`--${kebab(name)}`, ...(alias ? [`-${alias}`] : [])];
    })
  ),
);

/** "'status' takes no --md (it is an option of diff, runs)", with the command's help. */
function unknownOption(cmd: Command, flag: string): UsageError {
  const whose = (Object.keys(COMMANDS) as Command[])
    .filter((c) => flagsOf(c).includes(flag));
  const own = flagsOf(cmd).filter((f) => f.startsWith("--"));
  return new UsageError(
    `'${cmd}' takes no ${flag}` + didYouMean(flag, own) +
      (whose.length ? ` (it is an option of ${whose.join(", ")})` : "") +
      `\n\n${commandUsage(cmd)}`,
  );
}

/** The command line: the command, its positional arguments and its options. */
function parseCommandLine(argv: string[]) {
  // The command is the first argument that is neither an option nor an option's value (`kme
  // --store S run x.yaml`); "--" ends options.
  let first: string | undefined;
  for (let i = 0; i < argv.length && first === undefined; i++) {
    if (TAKES_VALUE.has(argv[i])) i++;
    else if (argv[i] === "--") first = argv[i + 1];
    else if (!argv[i].startsWith("-")) first = argv[i];
  }
  const cmd = first !== undefined && Object.hasOwn(COMMANDS, first) ? first as Command : undefined;
  const parsed = typeFlag(
    { ...COMMON, ...(cmd ? COMMANDS[cmd] : {}) },
    [...argv],
    { booleanNegation: true },
  );
  const args = parsed._.slice(1).map(String);
  // deno-lint-ignore no-explicit-any
  const o = parsed.flags as Record<string, any>;
  const unknown = Object.keys(parsed.unknownFlags);
  if (cmd && unknown.length) {
    throw unknownOption(cmd, (unknown[0].length > 1 ? "--" : "-") + unknown[0]);
  }
  for (const [name, value] of Object.entries(o)) {
    // A string option at the end of the line, or before another option, gets "".
    if (value === "" || (Array.isArray(value) && value.includes(""))) {
      throw new UsageError(`--${kebab(name)} needs a value\n\n${commandUsage(cmd ?? "")}`);
    }
  }
  return { cmd, first, args, o };
}

async function main(argv: string[]): Promise<number> {
  const { cmd, first, args, o } = parseCommandLine(argv);
  if (o.version) {
    console.log(await versionText());
    return 0;
  }
  if (o.help || first === undefined) {
    console.log(cmd ? commandUsage(cmd) : USAGE);
    return first !== undefined || o.help ? 0 : 2;
  }
  if (!cmd) {
    throw new UsageError(
      `unknown command '${first}'${didYouMean(String(first), Object.keys(COMMANDS))}\n\n${USAGE}`,
    );
  }
  const str = (v: unknown) => (v === undefined ? undefined : String(v));
  const store = openStore(resolve(str(o.store) ?? Deno.env.get("KME_STORE") ?? "artifacts"));
  switch (cmd) {
    case "run":
    case "status": {
      if (!args[0]) throw new UsageError(`${cmd} needs an experiment file`);
      const jobs = Number(o.jobs ?? 1);
      if (!Number.isInteger(jobs) || jobs < 1) {
        throw new UsageError("--jobs must be a positive integer");
      }
      const targets = [...args.slice(1), ...o.only];
      // A rerun the no-op memo can answer (pipeline/noop_memo.ts): nothing else is loaded.
      const noop = cmd === "run" && !o.set.length && !o.force.length && !o.dryRun &&
          str(o.executor) === "local"
        ? noopIdentity(ROOT, args[0], targets)
        : undefined;
      if (noop) {
        const code = await rerunFromMemo(store, noop, {
          quiet: Boolean(o.quiet),
          argv,
          root: ROOT,
        });
        if (code !== undefined) return code;
      }
      const { prepare, checkForced } = await loadPrepare();
      const ctx = await prepare(ROOT, args[0], targets, store, o.set);
      checkForced(o.force, ctx.stages);
      const { runCommand, statusCommand } = await lazyImport<typeof import("./run_status.ts")>(
        new URL("./run_status.ts", import.meta.url),
      );
      if (cmd === "status") return await statusCommand(ctx, new Set(o.force), Boolean(o.json));
      const { LocalExecutor } = await lazyImport<typeof import("../pipeline/executor.ts")>(
        new URL("../pipeline/executor.ts", import.meta.url),
      );
      let executor: Executor = new LocalExecutor(ctx.configPath);
      const executorName = str(o.executor);
      if (executorName === "slurm") {
        const { SlurmExecutor, slurmUnavailable } = await lazyImport<
          typeof import("../pipeline/slurm.ts")
        >(new URL("../pipeline/slurm.ts", import.meta.url));
        const why = await slurmUnavailable();
        if (why) throw new UsageError(why);
        const byName = new Map(ctx.stages.map((s) => [s.name, s.resources ?? {}]));
        executor = new SlurmExecutor(
          ctx.configPath,
          store.layout,
          (job) => byName.get(job.stage) ?? {},
        );
      } else if (executorName !== "local") {
        throw new UsageError(`--executor must be 'local' or 'slurm', not '${executorName}'`);
      }
      return await runCommand(ctx, {
        executor,
        report: o.report !== false,
        jobs,
        force: new Set(o.force),
        dryRun: Boolean(o.dryRun),
        keepGoing: Boolean(o.keepGoing),
        quiet: Boolean(o.quiet),
        argv,
        root: ROOT,
        noop,
      });
    }
    case "diff": {
      const { diffCommand } = await lazyImport<typeof import("./diff_command.ts")>(
        new URL("./diff_command.ts", import.meta.url),
      );
      return await diffCommand(store, args, {
        all: Boolean(o.all),
        json: Boolean(o.json),
        md: Boolean(o.md),
        by: str(o.by),
        metrics: o.metric,
      });
    }
    case "runs": {
      const { runsCommand } = await lazyImport<typeof import("./runs_command.ts")>(
        new URL("./runs_command.ts", import.meta.url),
      );
      return await runsCommand(store, args, {
        json: Boolean(o.json),
        md: Boolean(o.md),
        csv: Boolean(o.csv),
        metrics: o.metric,
        noNoop: o.noop === false,
        sort: str(o.sort),
      });
    }
    case "report": {
      const { reportCommand } = await lazyImport<typeof import("./report_command.ts")>(
        new URL("./report_command.ts", import.meta.url),
      );
      return await reportCommand(store, args, {
        out: str(o.out),
        png: str(o.png),
        quiet: Boolean(o.quiet),
      });
    }
    case "log": {
      if (args.length !== 2) {
        throw new UsageError(`log needs a run and a stage\n\n${commandUsage("log")}`);
      }
      const { logCommand } = await lazyImport<typeof import("./log_command.ts")>(
        new URL("./log_command.ts", import.meta.url),
      );
      return await logCommand(
        store,
        args[0],
        args[1],
        { follow: Boolean(o.follow), path: Boolean(o.path) },
        async () => (await loadPrepare()).prepare(ROOT, args[0], [args[1]], store, o.set),
      );
    }
    case "ui": {
      const port = Number(o.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) {
        throw new UsageError("--port must be an integer from 0 to 65535");
      }
      const { uiCommand } = await lazyImport<typeof import("./ui_command.ts")>(
        new URL("./ui_command.ts", import.meta.url),
      );
      return await uiCommand(store, { host: String(o.host), port, quiet: Boolean(o.quiet) });
    }
    case "verify": {
      const { verifyCommand } = await lazyImport<typeof import("./maintenance.ts")>(
        new URL("./maintenance.ts", import.meta.url),
      );
      return await verifyCommand(store, args[0]);
    }
    case "gc": {
      const keep = Number(o.keep);
      if (!Number.isInteger(keep) || keep < 1) {
        throw new UsageError("--keep must be a positive integer");
      }
      const { gcCommand } = await lazyImport<typeof import("./maintenance.ts")>(
        new URL("./maintenance.ts", import.meta.url),
      );
      return await gcCommand(store, keep, Boolean(o.dryRun));
    }
    case "schema": {
      const { experimentJsonSchema } = await lazyImport<typeof import("./schema.ts")>(
        new URL("./schema.ts", import.meta.url),
      );
      console.log(JSON.stringify(await experimentJsonSchema(), null, 2));
      return 0;
    }
    default:
      throw new UsageError(`unknown command '${cmd}'\n\n${USAGE}`);
  }
}

/** cli/prepare.ts: planning, needed unless the no-op memo answers. */
function loadPrepare() {
  return lazyImport<typeof import("./prepare.ts")>(new URL("./prepare.ts", import.meta.url));
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
  const { environment } = await lazyImport<typeof import("../pipeline/records.ts")>(
    new URL("../pipeline/records.ts", import.meta.url),
  );
  const env = await environment(ROOT, false);
  const commit = (env.git as { commit?: string } | null)?.commit?.slice(0, 12) ?? "unknown";
  return `kme-clip ${commit} (deno ${Deno.version.deno}, v8 ${Deno.version.v8}, ` +
    `typescript ${Deno.version.typescript})`;
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.toString().replace(/: error: /g, `: ${red("error")}: `));
      code = 2;
    } else if (e instanceof UsageError) {
      console.error(`${red("error")}: ${(e as Error).message}`);
      code = 2;
    } else if (isStoreWriteFailure(e)) {
      // A read-only or full store is the machine's state, not a bug: say what and where.
      console.error(
        `${red("error")}: cannot write: ${(e as Error).message}\n` +
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
  // A folder that cannot be created where it is asked for (e.g. --store /proc/x).
  if (e instanceof Deno.errors.NotFound && /\bmkdir '/.test(e.message)) return true;
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
