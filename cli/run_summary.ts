/** The table printed at the end of a run. */
import { fmtNum, groupsOf } from "../pipeline/diff.ts";
import type { RunRecord } from "../pipeline/records.ts";
import { summaryTail } from "./outcome_line.ts";

/** The end-of-run table: stage, outcome, time, a few metrics; seed groups; failures. */
export function summaryTable(rec: RunRecord): string {
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
  return lines.join("\n");
}

/** The end-of-run table, then the line that counts outcomes and says how long it took. */
export function summary(rec: RunRecord): string {
  const outcomes = Object.values(rec.stages).map((s) => s.outcome);
  return `${summaryTable(rec)}\n${summaryTail(rec.status, outcomes, rec.seconds)}`;
}
