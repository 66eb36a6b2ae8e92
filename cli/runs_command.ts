/**
 * `kme runs [EXPERIMENT]`: the runs of an experiment (or of every experiment) as a table, like
 * `dvc exp show` or MLflow's runs page: when, how long, the outcome, how many stages ran or came
 * from the cache (a no-op rerun is marked as one), the params that differ between the runs
 * listed, and chosen metrics (mean over a stage's instances). `--json`, `--md`, `--csv`.
 */
import { StoreDamageError, UsageError } from "../pipeline/errors.ts";
import { allRecordIds, readRecord, type RunRecord } from "../pipeline/records.ts";
import type { Store } from "../pipeline/store.ts";
import { groupOfInstance, memberMetrics, naturalOrder } from "../pipeline/diff.ts";
import { didYouMean } from "../pipeline/suggest.ts";
import { lazyImport } from "../pipeline/lazy_import.ts";

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
  /** "ran" when a stage computed something (even if it then failed or was interrupted), "no-op"
   * when every stage came from the cache. */
  work: "ran" | "no-op";
  ran: number;
  cached: number;
  failed: number;
  /** Params by stage (`train.lr`): the value, or the distinct values of a sweep's instances. */
  params: Record<string, unknown>;
  /** By column (`retrieval.rsum`, `train[similarity=kme].val_loss`): the mean over seeds. */
  metrics: Record<string, number>;
}

/**
 * Params by stage rather than by instance: `train[similarity=clip,seed=0].lr` and its siblings
 * become `train.lr`, one value or the list of distinct ones, so that a sweep is a column.
 */
function paramsByStage(rec: RunRecord): Record<string, unknown> {
  const by = new Map<string, unknown[]>();
  const walk = (prefix: string, v: unknown) => {
    if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v)) walk(`${prefix}.${k}`, x);
      return;
    }
    const vs = by.get(prefix) ?? [];
    if (!vs.some((x) => JSON.stringify(x) === JSON.stringify(v))) vs.push(v);
    by.set(prefix, vs);
  };
  for (const s of Object.values(rec.stages)) walk(s.base, s.params);
  return Object.fromEntries([...by].map(([k, vs]) => [k, vs.length === 1 ? vs[0] : vs]));
}

/**
 * Every metric of a run by column: `<stage>.<metric>`, or `<stage>[<labels>].<metric>` for a
 * swept stage (labels without the seed: clip and kme are two columns, never averaged together),
 * the mean over the seeds of that configuration.
 */
export function metricColumns(rec: RunRecord): Map<string, number> {
  const sums = new Map<string, number[]>();
  for (const [instance, s] of Object.entries(rec.stages)) {
    const group = groupOfInstance(instance, s)!.name;
    for (const [m, v] of memberMetrics(s)) {
      if (!Number.isFinite(v) || m.endsWith("[last]")) continue;
      const k = `${group}.${m}`;
      sums.set(k, [...(sums.get(k) ?? []), v]);
    }
  }
  return new Map([...sums].map(([k, xs]) => [k, xs.reduce((a, b) => a + b, 0) / xs.length]));
}

/** A column's stage (without labels) and metric. */
function columnParts(c: string): { base: string; metric: string } {
  const close = c.indexOf("]");
  const dot = c.indexOf(".", close < 0 ? 0 : close);
  return { base: c.slice(0, dot).replace(/\[.*$/, ""), metric: c.slice(dot + 1) };
}

/** The columns a metric name selects: `stage.metric` (every configuration) or an exact column. */
function columnsOf(spec: string, present: Set<string>): string[] {
  if (present.has(spec)) return [spec];
  const want = columnParts(spec);
  return [...present].filter((c) => {
    const p = columnParts(c);
    return p.base === want.base && p.metric === want.metric;
  }).sort(naturalOrder);
}

export function runRow(rec: RunRecord): RunRow {
  const stages = Object.values(rec.stages);
  const count = (o: string) => stages.filter((s) => s.outcome === o).length;
  const ran = count("ran");
  return {
    experiment: rec.experiment.name,
    id: rec.id,
    started: rec.started,
    seconds: rec.seconds,
    status: rec.status,
    work: ran + count("failed") + count("interrupted") > 0 ? "ran" : "no-op",
    ran,
    cached: count("cached") + count("reused"),
    failed: count("failed"),
    params: paramsByStage(rec),
    metrics: Object.fromEntries(metricColumns(rec)),
  };
}

/** The params whose values are not the same in every row (what tells the runs apart). */
export function differingParams(rows: RunRow[]): string[] {
  const keys = new Set(rows.flatMap((r) => Object.keys(r.params)));
  return [...keys].filter((k) =>
    new Set(rows.map((r) => (k in r.params ? JSON.stringify(r.params[k]) : "-"))).size > 1
  ).sort();
}

/** A param's value as the table shows it: JSON, a sweep's values joined. */
export function fmtParam(v: unknown): string {
  if (v === undefined) return "-";
  return Array.isArray(v) ? v.map((x) => JSON.stringify(x)).join(", ") : JSON.stringify(v);
}

/**
 * The metric columns to show: each name expanded to the columns it selects in any row. A name
 * the user gave that selects nothing is an error (a typo must not silently drop a column).
 */
export function chooseColumns(rows: RunRow[], names: string[], given: boolean): string[] {
  const present = new Set(rows.flatMap((r) => Object.keys(r.metrics)));
  const out: string[] = [];
  for (const n of names) {
    if (!/^[^.]+\..+$/.test(n)) throw new UsageError(`--metric ${n}: expected STAGE.METRIC`);
    const cols = columnsOf(n, present);
    if (!cols.length && given) {
      const known = new Set([...present].map((c) => {
        const p = columnParts(c);
        return `${p.base}.${p.metric}`;
      }));
      throw new UsageError(
        `--metric ${n}: no run here has it${didYouMean(n, known)}; metrics: ` +
          [...known].sort(naturalOrder).join(", "),
      );
    }
    for (const c of cols) if (!out.includes(c)) out.push(c);
  }
  return out;
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
    const { loadExperiment } = await lazyImport<typeof import("../pipeline/experiment_file.ts")>(
      new URL("../pipeline/experiment_file.ts", import.meta.url),
    );
    experiment = (await loadExperiment(experiment)).name;
  }
  const ids = (await allRecordIds(store)).filter((r) =>
    experiment === undefined || r.experiment === experiment
  );
  if (experiment !== undefined && ids.length === 0) {
    throw new UsageError(`no runs of '${experiment}' in ${store.layout.runsDir()}`);
  }
  let rows: RunRow[] = [];
  for (const { experiment: e, id } of ids) {
    try {
      rows.push(runRow(await readRecord(store, e, id)));
    } catch (err) {
      if (!(err instanceof StoreDamageError)) throw err;
      console.error(`warning: ${err.message} (skipped)`);
    }
  }
  if (o.noNoop) rows = rows.filter((r) => r.work === "ran");
  const shownMetrics = chooseColumns(
    rows,
    o.metrics.length ? o.metrics : DEFAULT_METRICS,
    o.metrics.length > 0,
  );
  if (o.sort) sortRows(rows, o.sort, shownMetrics);
  const params = differingParams(rows);
  if (o.json) {
    // Only the chosen metric columns, as in the table; params typed (a sweep's as a list).
    const runs = rows.map((r) => ({
      ...r,
      metrics: Object.fromEntries(
        shownMetrics.filter((m) => m in r.metrics).map((m) => [m, r.metrics[m]]),
      ),
    }));
    console.log(
      JSON.stringify({ runs, differing_params: params, metric_columns: shownMetrics }, null, 1),
    );
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
    ...params.map((p) => fmtParam(r.params[p])),
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

function sortRows(rows: RunRow[], spec: string, columns: string[]) {
  const desc = spec.startsWith("-");
  let key = desc ? spec.slice(1) : spec;
  if (key === "time") key = "seconds"; // the column's header
  if (!["seconds", "started"].includes(key) && !columns.includes(key)) {
    const cols = columnsOf(key, new Set(columns));
    if (cols.length !== 1) {
      throw new UsageError(
        `--sort ${spec}: not a column (use started, time or a metric column shown` +
          `${columns.length ? `: ${columns.join(", ")}` : ""}; --sort=-COLUMN sorts descending)`,
      );
    }
    key = cols[0];
  }
  const value = (r: RunRow): number | string =>
    key === "seconds" ? r.seconds : key === "started" ? r.started : r.metrics[key] ?? NaN;
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
