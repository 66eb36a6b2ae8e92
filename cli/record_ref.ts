/** What a user names a run by on the command line: an experiment file (its latest run) or an id. */
import { loadExperiment } from "../pipeline/experiment_file.ts";
import { UsageError } from "../pipeline/errors.ts";
import { findRecord, latestRecord, type RunRecord } from "../pipeline/records.ts";
import type { Store } from "../pipeline/store.ts";

export async function recordFor(store: Store, ref: string): Promise<RunRecord> {
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
