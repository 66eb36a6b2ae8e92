/**
 * `diff --metric NAME`: which metric rows to keep. NAME is a metric (`rsum`, `i2t_R@1`) or a
 * stage and metric (`retrieval.rsum`); `*` matches any run of characters (`'*R@1'`); several
 * may be given, repeated or comma-separated. Param rows are kept: they say what differs.
 */
import type { DiffRow } from "../pipeline/diff.ts";
import { UsageError } from "../pipeline/errors.ts";
import { didYouMean } from "../pipeline/suggest.ts";

/** A metric row's base stage and metric: `train[similarity=kme,lr=0.1].val_loss` -> train, val_loss. */
function parts(row: string): { base: string; metric: string } {
  const close = row.indexOf("]");
  const dot = row.indexOf(".", close < 0 ? 0 : close);
  const stage = row.slice(0, dot);
  return { base: stage.replace(/\[.*$/, ""), metric: row.slice(dot + 1) };
}

function matcher(pattern: string): (row: string) => boolean {
  const re = new RegExp(
    "^" + pattern.split("*").map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*") + "$",
  );
  return pattern.includes(".")
    ? (row) => {
      const p = parts(row);
      return re.test(`${p.base}.${p.metric}`);
    }
    : (row) => re.test(parts(row).metric);
}

/**
 * The rows with only the metrics `wanted` names. `known` are all metric rows of the comparison
 * (unchanged ones too), so that a name that matches nothing is an error, not an empty table.
 */
export function filterMetrics(rows: DiffRow[], wanted: string[], known: DiffRow[]): DiffRow[] {
  const patterns = wanted.flatMap((w) => w.split(",")).map((w) => w.trim()).filter(Boolean);
  if (!patterns.length) return rows;
  const names = known.filter((r) => r.section === "metrics").map((r) => r.name);
  const tests = patterns.map((p) => {
    const test = matcher(p);
    if (!names.some(test)) {
      const all = new Set(
        names.flatMap((n) => [parts(n).metric, `${parts(n).base}.${parts(n).metric}`]),
      );
      throw new UsageError(
        `--metric ${p}: no metric of these runs is called that${didYouMean(p, all)}; metrics: ` +
          [...new Set(names.map((n) => parts(n).metric))].sort().join(", "),
      );
    }
    return test;
  });
  return rows.filter((r) => r.section !== "metrics" || tests.some((t) => t(r.name)));
}
