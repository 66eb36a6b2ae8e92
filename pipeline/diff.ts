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
  /** 95% interval of the difference B - A (e.g. a paired bootstrap), when available. */
  ci?: [number, number];
  /** True when the interval excludes 0. */
  significant?: boolean;
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

export function groupsOf(side: DiffSide): Map<string, DiffGroup> {
  const out = new Map<string, DiffGroup>();
  for (const [instance, s] of Object.entries(side.record.stages)) {
    const labels: Record<string, unknown> = { ...(s.labels ?? {}) };
    if (side.select && side.select.axis in labels) {
      if (String(labels[side.select.axis]) !== side.select.value) continue;
      delete labels[side.select.axis];
    }
    const seed = "seed" in labels ? String(labels.seed) : undefined;
    delete labels.seed;
    const parts = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
    const base = s.base ?? instance;
    const name = parts.length ? `${base}[${parts.join(",")}]` : base;
    let g = out.get(name);
    if (!g) {
      g = { name, kind: s.kind, params: s.params, metrics: new Map(), members: [] };
      out.set(name, g);
    }
    g.members.push({ instance, seed, record: s });
    for (const [k, v] of Object.entries(s.metrics ?? {})) {
      const x = typeof v === "number" ? v : Array.isArray(v) && v.length ? v[v.length - 1] : null;
      const key = typeof v === "number" ? k : `${k}[last]`;
      if (x === null || !Number.isFinite(x)) continue;
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
    if (r.a !== 0) r.rel = r.delta / Math.abs(r.a);
  }
}

function sortedUnion<K>(a: Map<string, K>, b: Map<string, K>): string[] {
  return [...new Set([...a.keys(), ...b.keys()])].sort();
}

const show = (v: string | number | undefined) =>
  v === undefined ? "-" : typeof v === "number" ? fmtNum(v) : v;

/** "0.412", or "0.412 ± 0.013 (n=3)" when aggregated over seeds. */
function showSide(r: DiffRow, side: "a" | "b"): string {
  const sd = side === "a" ? r.aSd : r.bSd;
  const n = side === "a" ? r.aN : r.bN;
  return show(r[side]) + (sd === undefined ? "" : ` ± ${fmtNum(sd)} (n=${n})`);
}

export function fmtNum(v: number): string {
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4)));
}

const fmtDelta = (r: DiffRow) =>
  (r.delta === undefined ? "" : `${r.delta > 0 ? "+" : ""}${fmtNum(r.delta)}` +
    (r.rel === undefined ? "" : ` (${r.rel > 0 ? "+" : ""}${(100 * r.rel).toFixed(1)}%)`)) +
  (r.ci ? ` 95% CI [${fmtNum(r.ci[0])}, ${fmtNum(r.ci[1])}]${r.significant ? " *" : ""}` : "");

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
