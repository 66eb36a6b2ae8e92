/**
 * `kme log EXPERIMENT.yaml|RUN STAGE [--follow] [--path] [-S PATH=VALUE]`: a stage's log without
 * knowing the store's layout. For an experiment file (with the run's -S overrides, if any), the
 * stage's key is planned as `status` plans it: the log is that of the attempt in progress (its
 * scratch log, which `--follow` tails until the entry is published) or of the entry the
 * experiment uses now. For a run (an id, or NAME / NAME:-2 as `diff` takes them), the log of the
 * entry that run used.
 */
import { UsageError } from "../pipeline/errors.ts";
import { planStages } from "../pipeline/plan.ts";
import { liveOwner } from "../pipeline/lock.ts";
import { recordFor } from "./record_ref.ts";
import { entryParts } from "../pipeline/store_layout.ts";
import type { Store } from "../pipeline/store.ts";
import { didYouMean } from "../pipeline/suggest.ts";
import type { Prepared } from "./prepare.ts";

export interface LogFlags {
  follow: boolean;
  path: boolean;
}

/** The instance a name means: itself, or the one instance of a stage of that name. */
function pick(names: { name: string; base: string }[], wanted: string): string {
  if (names.some((s) => s.name === wanted)) return wanted;
  const of = names.filter((s) => s.base === wanted).map((s) => s.name);
  if (of.length === 1) return of[0];
  if (of.length > 1) {
    throw new UsageError(`'${wanted}' has ${of.length} instances; name one: ${of.join(", ")}`);
  }
  const all = new Set(names.flatMap((s) => [s.name, s.base]));
  throw new UsageError(
    `no stage '${wanted}'${didYouMean(wanted, all)}; stages: ` +
      [...new Set(names.map((s) => s.base))].join(", "),
  );
}

const exists = (p: string) => Deno.stat(p).then(() => true, () => false);

/**
 * Where the log of `key` is: an attempt's that has not published yet (running, or stopped to be
 * resumed; also a forced rerun of an entry that exists), else the entry's; and which.
 */
async function logOf(store: Store, key: string) {
  const scratch = store.layout.scratchLogPath(key);
  if (await exists(scratch)) return { path: scratch, live: true };
  const entry = entryParts(store.layout.entryDir(key)).log;
  return (await store.has(key)) ? { path: entry, live: false } : undefined;
}

export async function logCommand(
  store: Store,
  ref: string,
  stage: string,
  flags: LogFlags,
  plan: () => Promise<Prepared>,
): Promise<number> {
  let key: string | undefined, why = "";
  if (/\.ya?ml$/i.test(ref)) {
    const p = await plan();
    const name = pick(p.stages, stage);
    const row = (await planStages(p.stages, p.kc, new Set(), () => undefined))
      .find((r) => r.stage === name)!;
    if (row.state === "waits") why = `it waits on ${row.upstream.join(", ")}`;
    else key = row.key;
    stage = name;
  } else {
    const rec = await recordFor(store, ref);
    const names = Object.entries(rec.stages).map(([name, s]) => ({ name, base: s.base }));
    stage = pick(names, stage);
    key = rec.stages[stage].key;
    if (!key) why = `run ${rec.id} did not get to it (${rec.stages[stage].outcome})`;
  }
  const log = key ? await logOf(store, key) : undefined;
  if (!log) {
    throw new UsageError(`${stage} has no log yet: ${why || "it has not run with these inputs"}`);
  }
  if (flags.path) {
    console.log(log.path);
    return 0;
  }
  let shown = await print(log.path, 0);
  const stopped = () =>
    console.error(
      `(${stage} is not running now: its attempt stopped, and its log ends here; ` +
        "a rerun resumes it)",
    );
  while (flags.follow && log.live) {
    // Until the attempt publishes its entry (then its log is complete in the entry) or stops:
    // a log that no process writes any more would be followed for ever.
    const owner = await liveOwner(store.layout.ownerPath(key!));
    if (await store.has(key!) && !(await exists(log.path))) {
      await print(entryParts(store.layout.entryDir(key!)).log, shown);
      break;
    }
    shown = await print(log.path, shown);
    if (!owner) {
      stopped();
      break;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  return 0;
}

/** Writes the bytes of `path` from `from` on; returns its length. */
async function print(path: string, from: number): Promise<number> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return from;
    throw e;
  }
  if (bytes.length > from) await Deno.stdout.write(bytes.subarray(from));
  return bytes.length;
}
