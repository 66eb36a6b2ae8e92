/**
 * `kme runs [EXPERIMENT]`: the runs of an experiment (or of every experiment) as a table, like
 * `dvc exp show` or MLflow's runs page: when, how long, the outcome, how many stages ran or came
 * from the cache (a no-op rerun is marked as one), the params that differ between the runs
 * listed, and chosen metrics (mean over a stage's instances). `--json`, `--md`, `--csv`.
 */
import { StoreDamageError, UsageError } from "../pipeline/errors.ts";
import { allRecordIds, readRecord, type RunRecord } from "../pipeline/records.ts";
import type { Store } from "../pipeline/store.ts";

/** Metrics shown unless `--metric` names others: `<stage base>.<metric>`, when present. */
export const DEFAULT_METRICS = [
  "train.val_loss",
  "retrieval.rsum",
  "zero_shot.top1",
  "linear_probe.accuracy",
  "pmi.kl_image_to_text",
  "pmi.pearson",
];

export interface RunRow {
  experiment: string;
  id: string;
  started: string;
  seconds: number;
  status: string;
  /** "ran" when a stage computed something, "no-op" when every stage came from the cache. */
  work: "ran" | "no-op";
  ran: number;
  cached: number;
  failed: number;
  params: Record<string, string>;
  metrics: Record<string, number>;
}

/** Flattened params of every stage instance: `train[similarity=kme].lr` -> "0.001". */
function flatParams(rec: RunRecord): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (prefix: string, v: unknown) => {
    if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v)) walk(`${prefix}.${k}`, x);
    } else out[prefix] = JSON.stringify(v);
  };
  for (const [name, s] of Object.entries(rec.stages)) walk(name, s.params);
  return out;
}

export function runRow(rec: RunRecord, metrics: string[]): RunRow {
  const stages = Object.values(rec.stages);
  const count = (o: string) => stages.filter((s) => s.outcome === o).length;
  const ran = count("ran");
  const values: Record<string, number> = {};
  for (const m of metrics) {
    const dot = m.indexOf(".");
    const [base, name] = [m.slice(0, dot), m.slice(dot + 1)];
    const xs = stages.filter((s) => s.base === base).map((s) => s.metrics?.[name])
      .filter((v): v is number => typeof v === "number" && Number.isFinite(v));
    if (xs.length) values[m] = xs.reduce((a, b) => a + b, 0) / xs.length;
  }
  return {
    experiment: rec.experiment.name,
    id: rec.id,
    started: rec.started,
    seconds: rec.seconds,
    status: rec.status,
    work: ran > 0 ? "ran" : "no-op",
    ran,
    cached: count("cached") + count("reused"),
    failed: count("failed"),
    params: flatParams(rec),
    metrics: values,
  };
}

/** The params whose values are not the same in every row (what tells the runs apart). */
export function differingParams(rows: RunRow[]): string[] {
  const keys = new Set(rows.flatMap((r) => Object.keys(r.params)));
  return [...keys].filter((k) => new Set(rows.map((r) => r.params[k] ?? "-")).size > 1).sort();
}

export interface RunsOptions {
  json: boolean;
  md: boolean;
  csv: boolean;
  metrics: string[];
  /** Leave out runs that computed nothing. */
  noNoop: boolean;
  /** Sort by this column (a metric, "seconds" or "started"; "-" prefix: descending). */
  sort?: string;
}

export async function runsCommand(
  store: Store,
  args: string[],
  o: RunsOptions,
): Promise<number> {
  let experiment: string | undefined = args[0];
  if (experiment?.endsWith(".yaml") || experiment?.endsWith(".yml")) {
    const { loadExperiment } = await import("../pipeline/experiment_file.ts");
    experiment = (await loadExperiment(experiment)).name;
  }
  const ids = (await allRecordIds(store)).filter((r) =>
    experiment === undefined || r.experiment === experiment
  );
  if (experiment !== undefined && ids.length === 0) {
    throw new UsageError(`no runs of '${experiment}' in ${store.layout.runsDir()}`);
  }
  const metrics = o.metrics.length ? o.metrics : DEFAULT_METRICS;
  for (const m of metrics) {
    if (!/^[^.]+\..+$/.test(m)) throw new UsageError(`--metric ${m}: expected STAGE.METRIC`);
  }
  let rows: RunRow[] = [];
  for (const { experiment: e, id } of ids) {
    try {
      rows.push(runRow(await readRecord(store, e, id), metrics));
    } catch (err) {
      if (!(err instanceof StoreDamageError)) throw err;
      console.error(`warning: ${err.message} (skipped)`);
    }
  }
  if (o.noNoop) rows = rows.filter((r) => r.work === "ran");
  if (o.sort) sortRows(rows, o.sort);
  const shownMetrics = metrics.filter((m) => rows.some((r) => m in r.metrics));
  const params = differingParams(rows);
  if (o.json) {
    console.log(JSON.stringify({ runs: rows, differing_params: params }, null, 1));
    return 0;
  }
  const header = [
    "run",
    "started",
    "time",
    "status",
    "stages ran/cached/failed",
    ...params,
    ...shownMetrics,
  ];
  const body = rows.map((r) => [
    experiment === undefined ? `${r.experiment}/${r.id}` : r.id,
    r.started.replace("T", " ").slice(0, 19),
    fmtDuration(r.seconds),
    r.work === "no-op" && r.status === "ok" ? "ok (no-op)" : r.status,
    `${r.ran}/${r.cached}/${r.failed}`,
    ...params.map((p) => r.params[p] ?? "-"),
    ...shownMetrics.map((m) => (m in r.metrics ? fmtMetric(r.metrics[m]) : "-")),
  ]);
  if (o.csv) {
    for (const line of [header, ...body]) console.log(line.map(csvCell).join(","));
  } else if (o.md) {
    console.log(`| ${header.join(" | ")} |`);
    console.log(`|${header.map(() => "---").join("|")}|`);
    for (const line of body) console.log(`| ${line.join(" | ")} |`);
  } else {
    const w = header.map((_, i) => Math.max(...[header, ...body].map((l) => l[i].length)));
    for (const line of [header, ...body]) {
      console.log(line.map((c, i) => c.padEnd(w[i])).join("  ").trimEnd());
    }
    if (!rows.length) console.log("(no runs)");
  }
  return 0;
}

function sortRows(rows: RunRow[], spec: string) {
  const desc = spec.startsWith("-");
  const key = desc ? spec.slice(1) : spec;
  const value = (r: RunRow): number | string =>
    key === "seconds" ? r.seconds : key === "started" ? r.started : r.metrics[key] ?? NaN;
  if (!["seconds", "started"].includes(key) && !rows.some((r) => key in r.metrics)) {
    throw new UsageError(
      `--sort ${spec}: not a column (use started, seconds or a metric shown with --metric)`,
    );
  }
  rows.sort((a, b) => {
    const [x, y] = [value(a), value(b)];
    // Missing values last, whatever the direction.
    if (typeof x === "number" && Number.isNaN(x)) return 1;
    if (typeof y === "number" && Number.isNaN(y)) return -1;
    const c = x < y ? -1 : x > y ? 1 : 0;
    return desc ? -c : c;
  });
}

function fmtDuration(s: number): string {
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  return m < 60
    ? `${m}m${String(Math.round(s % 60)).padStart(2, "0")}s`
    : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

function fmtMetric(v: number): string {
  return Math.abs(v) >= 100 ? v.toFixed(1) : Number(v.toPrecision(4)).toString();
}

function csvCell(s: string): string {
  return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}
