/**
 * What the dashboard shows, read from a store and nothing else: run records, the attempts that
 * are training now (or stopped with scratch left), their training logs and stage logs, and the
 * comparison of `diff --by`. Read-only: nothing here writes, locks or moves a file.
 *
 * A URL never becomes a path: runs are looked up among the records the store lists, and a key
 * must be 64 hex digits naming an entry or a scratch folder that exists.
 */
import { join } from "node:path";
import { StoreDamageError } from "../pipeline/errors.ts";
import { allRecordIds, readRecord, type RunRecord } from "../pipeline/records.ts";
import { entryParts } from "../pipeline/store_layout.ts";
import { liveOwner } from "../pipeline/lock.ts";
import type { Store } from "../pipeline/store.ts";
import type { DiffRow } from "../pipeline/diff.ts";
import { readTrainLog, TRAIN_LOG_FILE, type TrainPoint } from "../report/load.ts";
import { type RunRow, runRow } from "../cli/runs_command.ts";
import { axisValues } from "../cli/diff_command.ts";
import { metricsByAxis } from "../cli/diff_intervals.ts";

/** A run as the runs table shows it, newest first. */
export async function listRuns(store: Store): Promise<RunRow[]> {
  const rows: RunRow[] = [];
  for (const { experiment, id } of await allRecordIds(store)) {
    try {
      rows.push(runRow(await readRecord(store, experiment, id)));
    } catch (e) {
      if (!(e instanceof StoreDamageError)) throw e; // a damaged record is left out
    }
  }
  return rows.sort((a, b) => (a.started < b.started ? 1 : a.started > b.started ? -1 : 0));
}

/** The record of `experiment`/`id` when the store lists exactly that run; else undefined. */
export async function findRun(
  store: Store,
  experiment: string,
  id: string,
): Promise<RunRecord | undefined> {
  const known = (await allRecordIds(store)).some((r) => r.experiment === experiment && r.id === id);
  if (!known) return undefined;
  try {
    return await readRecord(store, experiment, id);
  } catch (e) {
    if (e instanceof StoreDamageError) return undefined;
    throw e;
  }
}

const KEY = /^[0-9a-f]{64}$/;
const exists = (p: string) => Deno.stat(p).then(() => true, () => false);

/**
 * The full key for a key or a unique prefix of at least 8 hex digits (pages show 12), among the
 * store's entries and scratch folders; undefined when none or several match.
 */
export async function fullKey(store: Store, key: string): Promise<string | undefined> {
  if (KEY.test(key)) return key;
  if (!/^[0-9a-f]{8,63}$/.test(key)) return undefined;
  const hits = new Set(
    [...await store.listKeys(), ...await store.listScratch()].filter((k) => k.startsWith(key)),
  );
  return hits.size === 1 ? [...hits][0] : undefined;
}

/** Where a key's files are: its published entry, else its unfinished attempt's scratch. */
export async function keyPlace(
  store: Store,
  key: string,
): Promise<{ log: string; trainLog: string; published: boolean } | undefined> {
  if (!KEY.test(key)) return undefined;
  if (await store.has(key)) {
    const e = entryParts(store.layout.entryDir(key));
    return { log: e.log, trainLog: join(e.out, TRAIN_LOG_FILE), published: true };
  }
  const scratch = store.layout.scratchDir(key);
  if (!(await exists(scratch))) return undefined;
  return {
    log: store.layout.scratchLogPath(key),
    trainLog: join(scratch, TRAIN_LOG_FILE),
    published: false,
  };
}

/** An attempt with scratch: training now (its lock's owner is alive) or stopped. */
export interface Attempt {
  key: string;
  /** The stage instance and kind (scratch/<key>/attempt.json, else the lock's owner). */
  stage?: string;
  kind?: string;
  /** params.similarity, when the stage has one. */
  similarity?: string;
  /** params.steps, when the stage has one: the step the attempt runs to. */
  steps?: number;
  state: "running" | "stopped";
  host?: string;
  pid?: number;
  since?: string;
  /** Seconds since the owner's last heartbeat. */
  heartbeatAge?: number;
  /** What a rerun resumes from, in the stage's words (e.g. "checkpoint at step 120 of 300"). */
  resumesFrom?: string;
  /** From the training log, when the stage writes one. */
  points: number;
  lastStep?: number;
  lastLoss?: number;
  lastValLoss?: number;
}

export async function listAttempts(store: Store): Promise<Attempt[]> {
  const out: Attempt[] = [];
  for (const key of await store.listScratch()) {
    if (!KEY.test(key)) continue;
    const a: Attempt = { key, state: "stopped", points: 0 };
    const owner = await liveOwner(store.layout.ownerPath(key));
    if (owner) {
      Object.assign(a, { state: "running", stage: owner.stage, host: owner.host, pid: owner.pid });
      Object.assign(a, { since: owner.since, heartbeatAge: owner.heartbeatAge });
    }
    try {
      const o = JSON.parse(await Deno.readTextFile(store.layout.attemptPath(key)));
      if (typeof o.stage === "string") a.stage = o.stage;
      if (typeof o.kind === "string") a.kind = o.kind;
      if (typeof o.params?.similarity === "string") a.similarity = o.params.similarity;
      if (typeof o.params?.steps === "number") a.steps = o.params.steps;
    } catch {
      // Written by an older version: the log's first line names the stage and kind.
      const head = await firstLine(store.layout.scratchLogPath(key));
      const m = /^--- \S+ (\S+) \(([^)]+)\) key /.exec(head);
      if (m) [a.stage, a.kind] = [a.stage ?? m[1], m[2]];
    }
    try {
      a.resumesFrom = (await Deno.readTextFile(store.layout.resumeNotePath(key))).trim() ||
        undefined;
    } catch { /* no checkpoint yet, or a stage that keeps none */ }
    const pts = await trainPoints(join(store.layout.scratchDir(key), TRAIN_LOG_FILE));
    if (pts?.length) {
      const last = pts.at(-1)!;
      a.points = pts.length;
      a.lastStep = last.step;
      a.lastLoss = last.loss;
      a.lastValLoss = pts.findLast((p) => p.val_loss !== undefined)?.val_loss;
    }
    out.push(a);
  }
  // Running first, then by the stage's name.
  return out.sort((x, y) =>
    x.state === y.state
      ? (x.stage ?? "~").localeCompare(y.stage ?? "~")
      : x.state === "running"
      ? -1
      : 1
  );
}

/** The points of a training log (a torn last line of a live log is skipped silently). */
export async function trainPoints(path: string): Promise<TrainPoint[] | undefined> {
  if (!(await exists(path))) return undefined;
  return await readTrainLog(path, () => {});
}

/** A file's first line (of its first 4 KiB); "" when unreadable. */
async function firstLine(path: string): Promise<string> {
  try {
    using f = await Deno.open(path);
    const buf = new Uint8Array(4096);
    const n = (await f.read(buf)) ?? 0;
    return new TextDecoder().decode(buf.subarray(0, n)).split("\n")[0];
  } catch {
    return "";
  }
}

/** The last `maxBytes` of a log, cut at a line start. */
export async function logTail(path: string, maxBytes = 256 * 1024): Promise<string | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch {
    return undefined;
  }
  if (bytes.length <= maxBytes) return new TextDecoder().decode(bytes);
  const text = new TextDecoder().decode(bytes.subarray(bytes.length - maxBytes));
  return `… (${bytes.length - maxBytes} earlier bytes left out)\n` +
    text.slice(text.indexOf("\n") + 1);
}

/** The axes of a run that take two or more values (what `diff --by` can compare). */
export function comparableAxes(rec: RunRecord): Map<string, string[]> {
  const axes = new Map<string, string[]>();
  for (const s of Object.values(rec.stages)) {
    for (const [k, v] of Object.entries(s.labels ?? {})) {
      if (k === "seed") continue;
      const vs = axes.get(k) ?? [];
      if (!vs.includes(String(v))) vs.push(String(v));
      axes.set(k, vs);
    }
  }
  return new Map([...axes].filter(([, vs]) => vs.length >= 2));
}

export interface Comparison {
  axis: string;
  a: string;
  b: string;
  rows: DiffRow[];
}

/** `diff RUN --by AXIS=A,B`, metrics only, with the seed-level and query-level intervals. */
export async function compare(
  store: Store,
  rec: RunRecord,
  axis: string,
  a: string,
  b: string,
): Promise<Comparison> {
  const { values } = axisValues(rec, `${axis}=${a},${b}`);
  // Only the metrics that differ (the data stage's counts are the same on both sides).
  const rows = await metricsByAxis(
    store,
    rec,
    axis,
    values[0],
    values[1],
    (r) => typeof r.a === "number" && typeof r.b === "number" && r.a !== r.b,
  );
  return { axis, a: values[0], b: values[1], rows };
}
