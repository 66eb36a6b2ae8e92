/**
 * What a user names a run by on the command line:
 * - `EXPERIMENT.yaml` or an experiment's name: its latest run;
 * - `EXPERIMENT.yaml:-2` or `NAME:-2`: the second latest (`:-1` is the latest);
 * - `NAME:ID` or `EXPERIMENT.yaml:ID`: that experiment's run whose id starts with ID, or ends
 *   with it (the random suffix after the time stamp, `tiny:0d9d46`, is what people copy);
 * - a run id, `NAME/ID`, or a unique prefix of an id.
 */
import { loadExperiment } from "../pipeline/experiment_file.ts";
import { UsageError } from "../pipeline/errors.ts";
import {
  findRecord,
  latestRecord,
  listRecordIds,
  readRecord,
  type RunRecord,
} from "../pipeline/records.ts";
import type { Store } from "../pipeline/store.ts";

async function experimentName(store: Store, ref: string): Promise<string | undefined> {
  if (/\.ya?ml$/i.test(ref)) return (await loadExperiment(ref)).name;
  // A name, never a path: `../x:-1` must not list folders outside runs/.
  if (!/^[\w.-]+$/.test(ref) || ref === "." || ref === "..") return undefined;
  return (await listRecordIds(store, ref)).length ? ref : undefined;
}

export async function recordFor(store: Store, ref: string): Promise<RunRecord> {
  const m = /^(.+):([^:/]+)$/.exec(ref);
  if (m) {
    const name = await experimentName(store, m[1]);
    if (name === undefined) throw new UsageError(`${ref}: '${m[1]}' is no experiment with runs`);
    const ids = await listRecordIds(store, name);
    const sel = m[2];
    let id: string | undefined;
    if (/^-\d+$/.test(sel)) {
      id = ids.at(Number(sel));
      if (!id || Number(sel) === 0) {
        throw new UsageError(`${ref}: '${name}' has ${ids.length} runs (use -1 .. -${ids.length})`);
      }
    } else {
      const hits = ids.filter((i) => i.startsWith(sel) || i.endsWith(`-${sel}`));
      if (hits.length !== 1) {
        throw new UsageError(
          `${ref}: ${hits.length ? `${hits.length} runs of '${name}' match` : "no run of"} ` +
            `'${sel}'${hits.length ? "" : ` in '${name}'`}`,
        );
      }
      id = hits[0];
    }
    return await readRecord(store, name, id);
  }
  if (/\.ya?ml$/i.test(ref)) {
    const exp = await loadExperiment(ref);
    const rec = await latestRecord(store, exp.name);
    if (!rec) {
      throw new UsageError(`experiment '${exp.name}' (${ref}) has no run yet: run it first`);
    }
    return rec;
  }
  if (!ref.includes("/") && (await listRecordIds(store, ref)).length) {
    const rec = await latestRecord(store, ref);
    if (rec) return rec;
  }
  return await findRecord(store, ref);
}
