/** `diff`: two run records side by side, vertically, params then metrics. */
import { flatten } from "./key.ts";
import type { RunRecord } from "./records.ts";

export interface DiffRow {
  section: "params" | "metrics";
  name: string;
  a?: string | number;
  b?: string | number;
  delta?: number;
  rel?: number;
}

export function diffRecords(a: RunRecord, b: RunRecord, all: boolean): DiffRow[] {
  const rows: DiffRow[] = [];
  const paramsOf = (r: RunRecord) => {
    const m = new Map<string, string>();
    for (const [name, s] of Object.entries(r.stages)) {
      flatten({ kind: s.kind, seed: s.seed, ...s.params }, name, m);
    }
    return m;
  };
  const metricsOf = (r: RunRecord) => {
    const m = new Map<string, number>();
    for (const [name, s] of Object.entries(r.stages)) {
      for (const [k, v] of Object.entries(s.metrics ?? {})) {
        if (typeof v === "number") m.set(`${name}.${k}`, v);
        else if (Array.isArray(v) && v.length) m.set(`${name}.${k}[last]`, v[v.length - 1]);
      }
    }
    return m;
  };
  // A stage present in one run only is one row, not one row per param and metric.
  const only = (x: RunRecord, y: RunRecord) =>
    Object.keys(x.stages).filter((n) => !(n in y.stages));
  for (const n of only(a, b)) rows.push({ section: "params", name: `${n} (stage)`, a: "present" });
  for (const n of only(b, a)) rows.push({ section: "params", name: `${n} (stage)`, b: "present" });
  const shared = (r: RunRecord, other: RunRecord): RunRecord => ({
    ...r,
    stages: Object.fromEntries(Object.entries(r.stages).filter(([n]) => n in other.stages)),
  });
  [a, b] = [shared(a, b), shared(b, a)];
  const pa = paramsOf(a), pb = paramsOf(b);
  for (const k of sortedUnion(pa, pb)) {
    const [x, y] = [pa.get(k), pb.get(k)];
    if (!all && x === y) continue;
    const row: DiffRow = { section: "params", name: k, a: parse(x), b: parse(y) };
    addDelta(row);
    rows.push(row);
  }
  const ma = metricsOf(a), mb = metricsOf(b);
  for (const k of sortedUnion(ma, mb)) {
    const [x, y] = [ma.get(k), mb.get(k)];
    if (!all && x === y) continue;
    const row: DiffRow = { section: "metrics", name: k, a: x, b: y };
    addDelta(row);
    rows.push(row);
  }
  return rows;
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

export function fmtNum(v: number): string {
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4)));
}

const fmtDelta = (r: DiffRow) =>
  r.delta === undefined ? "" : `${r.delta > 0 ? "+" : ""}${fmtNum(r.delta)}` +
    (r.rel === undefined ? "" : ` (${r.rel > 0 ? "+" : ""}${(100 * r.rel).toFixed(1)}%)`);

export function formatDiffText(a: RunRecord, b: RunRecord, rows: DiffRow[]): string {
  const head = [
    ["", "A", "B", "delta"],
    ["run", `${a.experiment.name}/${a.id}`, `${b.experiment.name}/${b.id}`, ""],
  ];
  const body: string[][] = [];
  for (const section of ["params", "metrics"] as const) {
    const rs = rows.filter((r) => r.section === section);
    if (!rs.length) continue;
    body.push([section, "", "", ""]);
    for (const r of rs) body.push([`  ${r.name}`, show(r.a), show(r.b), fmtDelta(r)]);
  }
  if (!body.length) body.push(["(no differences)", "", "", ""]);
  const all = [...head, ...body];
  const w = [0, 1, 2].map((i) => Math.max(...all.map((r) => r[i].length)));
  return all.map((r) => r.map((c, i) => (i < 3 ? c.padEnd(w[i]) : c)).join("  ").trimEnd())
    .join("\n");
}

export function formatDiffMarkdown(a: RunRecord, b: RunRecord, rows: DiffRow[]): string {
  const lines = [
    `| | A: ${a.experiment.name}/${a.id} | B: ${b.experiment.name}/${b.id} | delta |`,
    "|---|---|---|---|",
  ];
  for (const r of rows) {
    lines.push(`| ${r.section}: \`${r.name}\` | ${show(r.a)} | ${show(r.b)} | ${fmtDelta(r)} |`);
  }
  return lines.join("\n");
}
