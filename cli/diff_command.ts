/** `diff A B`: A and B are experiment files (their latest run) or run ids. */
import { loadExperiment } from "../pipeline/experiment_file.ts";
import { UsageError } from "../pipeline/errors.ts";
import { findRecord, latestRecord, type RunRecord } from "../pipeline/records.ts";
import { diffRecords, formatDiffMarkdown, formatDiffText } from "../pipeline/diff.ts";
import type { Store } from "../pipeline/store.ts";

async function recordFor(store: Store, ref: string): Promise<RunRecord> {
  if (/\.ya?ml$/i.test(ref)) {
    const exp = await loadExperiment(ref);
    const rec = await latestRecord(store, exp.name);
    if (!rec) {
      throw new UsageError(`experiment '${exp.name}' (${ref}) has no run yet: run it first`);
    }
    return rec;
  }
  return await findRecord(store, ref);
}

export async function diffCommand(
  store: Store,
  a: string,
  b: string,
  o: { all: boolean; json: boolean; md: boolean },
): Promise<number> {
  const [ra, rb] = [await recordFor(store, a), await recordFor(store, b)];
  const rows = diffRecords(ra, rb, o.all);
  if (o.json) {
    console.log(JSON.stringify(
      {
        a: { experiment: ra.experiment.name, id: ra.id },
        b: { experiment: rb.experiment.name, id: rb.id },
        rows,
      },
      null,
      2,
    ));
  } else if (o.md) console.log(formatDiffMarkdown(ra, rb, rows));
  else console.log(formatDiffText(ra, rb, rows));
  return 0;
}
