/** `diff`: two run records side by side, vertically, params then metrics. */
import { flatten } from "./key.ts";
import type { RunRecord, StageRecord } from "./records.ts";

export interface DiffRow {
  section: "params" | "metrics";
  name: string;
  /** A's value: for metrics aggregated over seeds, the mean. */
  a?: string | number;
  b?: string | number;
  /** Over seeds: standard deviation (n-1) and count, when n > 1 on that side. */
  aSd?: number;
  aN?: number;
  bSd?: number;
  bN?: number;
  delta?: number;
  rel?: number;
  /**
   * 95% interval of B - A over seeds (training randomness), when both sides have >= 2 seeds
   * paired by seed: a t-interval on the per-seed deltas, or, for metrics with per-query results,
   * the hull of that and a seeds x queries bootstrap (docs/evaluation.md, section 9).
   */
  seedCi?: RowInterval;
  /** 95% interval over test queries only (pooled over seed pairs), for metrics with per-query
   * results: test-set sampling, not training randomness. */
  queryCi?: RowInterval;
  /** True when `seedCi` excludes 0 (the `*` of the text output). */
  significant?: boolean;
}

/** An interval of B - A with how it was computed. */
export interface RowInterval {
  lo: number;
  hi: number;
  /**
   * "t": Student t on per-seed paired deltas; "t+bootstrap": the hull of that and the seeds x
   * queries bootstrap; "bootstrap": queries only.
   */
  method: "t" | "t+bootstrap" | "bootstrap";
  /** Seed pairs it rests on. */
  n: number;
  /** For "t+bootstrap": the two intervals whose hull it is. */
  t?: [number, number];
  bootstrap?: [number, number];
}

/** One side of a diff: a run, optionally narrowed to the instances where `axis` = `value`. */
export interface DiffSide {
  record: RunRecord;
  select?: { axis: string; value: string };
}

/**
 * A stage's results after projecting away the selected axis and the seed: the unit that is
 * compared. `members` are the instances (one per seed) that were aggregated.
 */
export interface DiffGroup {
  name: string;
  kind: string;
  params: Record<string, unknown>;
  metrics: Map<string, number[]>;
  members: { instance: string; seed: string | undefined; record: StageRecord }[];
}

/**
 * The comparison unit of a stage instance: `base[labels]` without the seed and the selected
 * axis; undefined when the instance is not on this side (its axis value is the other one).
 */
export function groupOfInstance(
  instance: string,
  s: StageRecord,
  select?: DiffSide["select"],
): { name: string; seed: string | undefined } | undefined {
  const labels: Record<string, unknown> = { ...(s.labels ?? {}) };
  if (select && select.axis in labels) {
    if (String(labels[select.axis]) !== select.value) return undefined;
    delete labels[select.axis];
  }
  const seed = "seed" in labels ? String(labels.seed) : undefined;
  delete labels.seed;
  const parts = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  const base = s.base ?? instance;
  return { name: parts.length ? `${base}[${parts.join(",")}]` : base, seed };
}

/** A stage's metrics as diff names them: scalars, and the last value of arrays as `name[last]`. */
export function memberMetrics(s: StageRecord): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of Object.entries(s.metrics ?? {})) {
    const x = typeof v === "number" ? v : Array.isArray(v) && v.length ? v[v.length - 1] : null;
    const key = typeof v === "number" ? k : `${k}[last]`;
    if (x === null || !Number.isFinite(x)) continue;
    out.set(key, x);
  }
  return out;
}

export function groupsOf(side: DiffSide): Map<string, DiffGroup> {
  const out = new Map<string, DiffGroup>();
  for (const [instance, s] of Object.entries(side.record.stages)) {
    const at = groupOfInstance(instance, s, side.select);
    if (!at) continue;
    const { name, seed } = at;
    let g = out.get(name);
    if (!g) {
      g = { name, kind: s.kind, params: s.params, metrics: new Map(), members: [] };
      out.set(name, g);
    }
    g.members.push({ instance, seed, record: s });
    for (const [key, x] of memberMetrics(s)) {
      if (!g.metrics.has(key)) g.metrics.set(key, []);
      g.metrics.get(key)!.push(x);
    }
  }
  return out;
}

export function diffSides(sa: DiffSide, sb: DiffSide, all: boolean): DiffRow[] {
  const rows: DiffRow[] = [];
  const ga = groupsOf(sa), gb = groupsOf(sb);
  // A stage present on one side only is one row, not one row per param and metric.
  for (const n of ga.keys()) {
    if (!gb.has(n)) rows.push({ section: "params", name: `${n} (stage)`, a: "present" });
  }
  for (const n of gb.keys()) {
    if (!ga.has(n)) rows.push({ section: "params", name: `${n} (stage)`, b: "present" });
  }
  const shared = [...ga.keys()].filter((n) => gb.has(n)).sort();

  const skipAxis = new Set(["seed", sa.select?.axis, sb.select?.axis].filter(Boolean) as string[]);
  for (const n of shared) {
    const [x, y] = [ga.get(n)!, gb.get(n)!];
    const fa = flatten({ kind: x.kind, ...omit(x.params, skipAxis) }, n);
    const fb = flatten({ kind: y.kind, ...omit(y.params, skipAxis) }, n);
    for (const k of sortedUnion(fa, fb)) {
      const [u, v] = [fa.get(k), fb.get(k)];
      if (!all && u === v) continue;
      const row: DiffRow = { section: "params", name: k, a: parse(u), b: parse(v) };
      addDelta(row);
      rows.push(row);
    }
  }
  for (const n of shared) {
    const [x, y] = [ga.get(n)!, gb.get(n)!];
    for (const m of sortedUnion(x.metrics, y.metrics)) {
      const [u, v] = [x.metrics.get(m), y.metrics.get(m)];
      const row: DiffRow = { section: "metrics", name: `${n}.${m}` };
      if (u) Object.assign(row, stats(u, "a"));
      if (v) Object.assign(row, stats(v, "b"));
      if (!all && u && v && sameValues(u, v)) continue;
      addDelta(row);
      rows.push(row);
    }
  }
  return rows;
}

/** Kept for callers comparing two whole runs. */
export function diffRecords(a: RunRecord, b: RunRecord, all: boolean): DiffRow[] {
  return diffSides({ record: a }, { record: b }, all);
}

function stats(xs: number[], side: "a" | "b"): Partial<DiffRow> {
  const n = xs.length;
  const mean = xs.reduce((s, x) => s + x, 0) / n;
  if (n === 1) return { [side]: mean };
  const sd = Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1));
  return { [side]: mean, [`${side}Sd`]: sd, [`${side}N`]: n };
}

function sameValues(u: number[], v: number[]): boolean {
  const [x, y] = [[...u].sort(), [...v].sort()];
  return x.length === y.length && x.every((e, i) => e === y[i]);
}

function omit(o: Record<string, unknown>, keys: Set<string>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([k]) => !keys.has(k)));
}

function parse(v: string | undefined): string | number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  return v.trim() !== "" && Number.isFinite(n) ? n : v;
}

function addDelta(r: DiffRow) {
  if (typeof r.a === "number" && typeof r.b === "number" && r.a !== r.b) {
    r.delta = r.b - r.a;
    // A relative change means something only between two positive amounts of one scale; for a
    // shift that crosses zero or a hyper-parameter chosen from a grid it only misleads (+10782%).
    if (r.a > 0 && r.b > 0 && r.b / r.a <= 10 && r.a / r.b <= 10) r.rel = r.delta / r.a;
  }
}

/** Names in natural order: R@1, R@5, R@10 (not R@1, R@10, R@5). */
function sortedUnion<K>(a: Map<string, K>, b: Map<string, K>): string[] {
  return [...new Set([...a.keys(), ...b.keys()])].sort(naturalOrder);
}

export const naturalOrder = (x: string, y: string): number =>
  x.localeCompare(y, "en", { numeric: true }) || (x < y ? -1 : x > y ? 1 : 0);

const show = (v: string | number | undefined) =>
  v === undefined ? "-" : typeof v === "number" ? fmtNum(v) : v;

/** "0.412", or "0.412 ± 0.013 (n=3)" when aggregated over seeds. */
function showSide(r: DiffRow, side: "a" | "b"): string {
  const sd = side === "a" ? r.aSd : r.bSd;
  const n = side === "a" ? r.aN : r.bN;
  return show(r[side]) + (sd === undefined ? "" : ` ± ${fmtNum(sd)} (n=${n})`);
}

/** A number for people: integers as they are, others to 4 significant digits. */
export function fmtNum(x: number | undefined): string {
  if (x === undefined || Number.isNaN(x)) return "–";
  if (!Number.isFinite(x)) return x > 0 ? "∞" : "−∞";
  if (Number.isInteger(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 1e6 || a < 1e-4) return x.toExponential(3);
  return String(Number(x.toPrecision(4)));
}

const METHOD: Record<RowInterval["method"], string> = {
  t: "t",
  "t+bootstrap": "t ∪ seeds×queries bootstrap",
  bootstrap: "queries bootstrap",
};

/**
 * The intervals of a row, e.g. `95% CI [0.078, 0.1353] * (seeds: t, n=3)`, then `; queries
 * only [1.2, 3.1]` when per-query results exist. With one seed per side only the query interval
 * exists, said so, and never starred: `*` is for the seed-level interval alone.
 */
export function fmtIntervals(r: DiffRow): string {
  const iv = (i: RowInterval) => `[${fmtNum(i.lo)}, ${fmtNum(i.hi)}]`;
  if (r.seedCi) {
    return `95% CI ${iv(r.seedCi)}${r.significant ? " *" : ""} (seeds: ${
      METHOD[r.seedCi.method]
    }, n=${r.seedCi.n})` + (r.queryCi ? `; queries only ${iv(r.queryCi)}` : "");
  }
  if (r.queryCi) {
    return `95% CI ${iv(r.queryCi)} (queries only, ${
      r.queryCi.n === 1 ? "1 seed pair" : `${r.queryCi.n} seed pairs`
    }: training randomness not covered)`;
  }
  return "";
}

const fmtDelta = (r: DiffRow) =>
  [
    r.delta === undefined ? "" : `${r.delta > 0 ? "+" : ""}${fmtNum(r.delta)}` +
      (r.rel === undefined ? "" : ` (${r.rel > 0 ? "+" : ""}${(100 * r.rel).toFixed(1)}%)`),
    fmtIntervals(r),
  ].filter(Boolean).join(" ");

export function sideLabel(s: DiffSide): string {
  const sel = s.select ? ` [${s.select.axis}=${s.select.value}]` : "";
  return `${s.record.experiment.name}/${s.record.id}${sel}`;
}

export function formatDiffText(a: DiffSide, b: DiffSide, rows: DiffRow[]): string {
  const head = [
    ["", "A", "B", "delta (B - A)"],
    ["run", sideLabel(a), sideLabel(b), ""],
  ];
  const body: string[][] = [];
  for (const section of ["params", "metrics"] as const) {
    const rs = rows.filter((r) => r.section === section);
    if (!rs.length) continue;
    body.push([section, "", "", ""]);
    for (const r of rs) body.push([`  ${r.name}`, showSide(r, "a"), showSide(r, "b"), fmtDelta(r)]);
  }
  if (!body.length) body.push(["(no differences)", "", "", ""]);
  const all = [...head, ...body];
  const w = [0, 1, 2].map((i) => Math.max(...all.map((r) => r[i].length)));
  return all.map((r) => r.map((c, i) => (i < 3 ? c.padEnd(w[i]) : c)).join("  ").trimEnd())
    .join("\n");
}

export function formatDiffMarkdown(a: DiffSide, b: DiffSide, rows: DiffRow[]): string {
  const lines = [
    `| | A: ${sideLabel(a)} | B: ${sideLabel(b)} | delta (B - A) |`,
    "|---|---|---|---|",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.section}: \`${r.name}\` | ${showSide(r, "a")} | ${showSide(r, "b")} | ${
        fmtDelta(r)
      } |`,
    );
  }
  return lines.join("\n");
}

/** A comparison of the baseline A with one other side, for a diff of several runs. */
export interface DiffAgainst {
  side: DiffSide;
  rows: DiffRow[];
}

/** Compact change for a column of the several-runs table: delta, and `*` where seeds say so. */
const shortDelta = (r: DiffRow | undefined) =>
  !r || r.delta === undefined
    ? ""
    : `${r.delta > 0 ? "+" : ""}${fmtNum(r.delta)}${
      r.seedCi
        ? ` [${fmtNum(r.seedCi.lo)}, ${fmtNum(r.seedCi.hi)}]${r.significant ? " *" : ""}`
        : ""
    }`;

/** Rows of A against several others: one line per name that differs in any of them. */
function manyRows(others: DiffAgainst[]) {
  const names: { section: DiffRow["section"]; name: string }[] = [];
  const seen = new Set<string>();
  for (const o of others) {
    for (const r of o.rows) {
      const id = `${r.section}\u0000${r.name}`;
      if (!seen.has(id)) {
        seen.add(id);
        names.push({ section: r.section, name: r.name });
      }
    }
  }
  // Params first, then metrics, each in the order the two-run diff gives them.
  names.sort((x, y) => (x.section === y.section ? 0 : x.section === "params" ? -1 : 1));
  return names.map(({ section, name }) => {
    const per = others.map((o) => o.rows.find((r) => r.section === section && r.name === name));
    const a = per.find((r) => r !== undefined)!;
    return { section, name, a: showSide(a, "a"), per };
  });
}

/**
 * `diff A B C ...`: A's value, then for each other run its value and its change from A (with
 * the seed interval and `*` where one exists). Rows are the union of what differs.
 */
export function formatDiffManyText(a: DiffSide, others: DiffAgainst[]): string {
  const letters = others.map((_, i) => String.fromCharCode(66 + i));
  const head = [
    ["", "A", ...letters.flatMap((l) => [l, `${l} - A`])],
    ["run", sideLabel(a), ...others.flatMap((o) => [sideLabel(o.side), ""])],
  ];
  const body: string[][] = [];
  const rows = manyRows(others);
  for (const section of ["params", "metrics"] as const) {
    const rs = rows.filter((r) => r.section === section);
    if (!rs.length) continue;
    body.push([section, "", ...others.flatMap(() => ["", ""])]);
    for (const r of rs) {
      body.push([
        `  ${r.name}`,
        r.a,
        ...r.per.flatMap((x) => [x ? showSide(x, "b") : r.a, shortDelta(x)]),
      ]);
    }
  }
  if (!body.length) body.push(["(no differences)", "", ...others.flatMap(() => ["", ""])]);
  const all = [...head, ...body];
  const w = all[0].map((_, i) => Math.max(...all.map((r) => r[i].length)));
  return all.map((r) => r.map((c, i) => c.padEnd(w[i])).join("  ").trimEnd()).join("\n");
}

export function formatDiffManyMarkdown(a: DiffSide, others: DiffAgainst[]): string {
  const letters = others.map((_, i) => String.fromCharCode(66 + i));
  const lines = [
    `| | A: ${sideLabel(a)} | ${
      others.map((o, i) => `${letters[i]}: ${sideLabel(o.side)} | ${letters[i]} - A`).join(" | ")
    } |`,
    `|---|---|${others.map(() => "---|---").join("|")}|`,
  ];
  for (const r of manyRows(others)) {
    lines.push(
      `| ${r.section}: \`${r.name}\` | ${r.a} | ${
        r.per.map((x) => `${x ? showSide(x, "b") : r.a} | ${shortDelta(x)}`).join(" | ")
      } |`,
    );
  }
  return lines.join("\n");
}
