/**
 * `diff A B [C ...]`: runs named as record_ref.ts says (an experiment file or name, with an
 * optional `:SELECTOR`, or a run id); with more than two, every run against A in one table.
 * `diff A --by AXIS[=V1,V2]`: within one run, the instances where AXIS = V1 against V2
 * (e.g. `--by similarity` compares clip with kme), matched on their other labels.
 * Seeds are aggregated (mean, sd, n). With >= 2 seeds paired across the sides every metric
 * gets a seed-level interval; stage kinds with a `compare` hook add query-level ones
 * (./diff_intervals.ts).
 */
import { recordFor } from "./record_ref.ts";
import { UsageError } from "../pipeline/errors.ts";
import type { RunRecord } from "../pipeline/records.ts";
import {
  type DiffAgainst,
  type DiffSide,
  diffSides,
  formatDiffManyMarkdown,
  formatDiffManyText,
  formatDiffMarkdown,
  formatDiffText,
  sideLabel,
} from "../pipeline/diff.ts";
import type { Store } from "../pipeline/store.ts";
import { addIntervals } from "./diff_intervals.ts";
import { filterMetrics } from "./metric_filter.ts";

/** The two values of `axis` to compare: given (`axis=v1,v2`) or the two found in the run. */
export function axisValues(rec: RunRecord, by: string): { axis: string; values: [string, string] } {
  const [axis, given] = by.split("=", 2);
  if (axis === "seed") {
    throw new UsageError(
      "--by seed: seeds are what diff pairs and averages over, not what it compares; --by takes " +
        "another label (e.g. --by similarity)",
    );
  }
  const found: string[] = [];
  for (const s of Object.values(rec.stages)) {
    const v = s.labels?.[axis];
    if (v !== undefined && !found.includes(String(v))) found.push(String(v));
  }
  const values = given ? given.split(",") : found;
  if (values.length !== 2) {
    throw new UsageError(
      `--by ${axis}: need exactly two values to compare; the run has ${
        found.length ? found.join(", ") : "no such axis"
      }${given || found.length < 2 ? "" : ` (choose with --by ${axis}=A,B)`}`,
    );
  }
  for (const v of values) {
    if (!found.includes(v)) throw new UsageError(`--by ${axis}: no instance has ${axis}=${v}`);
  }
  return { axis, values: values as [string, string] };
}

/** A run that failed or was interrupted has partial metrics: say so before the table. */
function warnPartial(records: RunRecord[]) {
  for (const r of records) {
    if (r.status !== "ok") {
      console.error(
        `warning: ${r.experiment.name}/${r.id} ${
          r.status === "failed" ? "failed" : "was interrupted"
        }` +
          `: stages it did not finish show '-' (name another run with ${r.experiment.name}:-2, ...)`,
      );
    }
  }
}

/** `diff A B C ...`: every other run against A, in one table. */
async function diffMany(
  store: Store,
  sa: DiffSide,
  refs: string[],
  o: { all: boolean; json: boolean; md: boolean; metrics: string[] },
): Promise<number> {
  const others: DiffAgainst[] = [];
  warnPartial([sa.record]);
  for (const ref of refs) {
    const side = { record: await recordFor(store, ref) };
    warnPartial([side.record]);
    const rows = filterMetrics(diffSides(sa, side, o.all), o.metrics, diffSides(sa, side, true));
    await addIntervals(store, sa, side, rows);
    others.push({ side, rows });
  }
  if (o.json) {
    console.log(JSON.stringify(
      { a: sideLabel(sa), others: others.map((x) => ({ b: sideLabel(x.side), rows: x.rows })) },
      null,
      2,
    ));
  } else if (o.md) console.log(formatDiffManyMarkdown(sa, others));
  else console.log(formatDiffManyText(sa, others));
  return 0;
}

export async function diffCommand(
  store: Store,
  refs: string[],
  o: { all: boolean; json: boolean; md: boolean; by?: string; metrics: string[] },
): Promise<number> {
  let sa: DiffSide, sb: DiffSide;
  if (o.by) {
    if (refs.length !== 1) throw new UsageError("diff --by takes one experiment file or run id");
    const rec = await recordFor(store, refs[0]);
    const { axis, values } = axisValues(rec, o.by);
    sa = { record: rec, select: { axis, value: values[0] } };
    sb = { record: rec, select: { axis, value: values[1] } };
  } else {
    if (refs.length < 2) {
      throw new UsageError("diff needs two or more runs (experiment files, names or run ids)");
    }
    sa = { record: await recordFor(store, refs[0]) };
    if (refs.length > 2) return await diffMany(store, sa, refs.slice(1), o);
    sb = { record: await recordFor(store, refs[1]) };
  }
  warnPartial([sa.record, ...(o.by ? [] : [sb.record])]);
  const rows = filterMetrics(diffSides(sa, sb, o.all), o.metrics, diffSides(sa, sb, true));
  await addIntervals(store, sa, sb, rows);
  if (o.json) {
    console.log(JSON.stringify({ a: sideLabel(sa), b: sideLabel(sb), rows }, null, 2));
  } else if (o.md) console.log(formatDiffMarkdown(sa, sb, rows));
  else console.log(formatDiffText(sa, sb, rows));
  return 0;
}
