/** Run records: one JSON file per run of an experiment, under runs/<experiment>/<id>.json. */
import { dirname, join } from "./paths.ts";
import { StoreDamageError, UsageError } from "./errors.ts";
import type { KeyComponents } from "./key.ts";
import type { Metric } from "./stage.ts";
import type { Store } from "./store.ts";

export type Outcome = "ran" | "cached" | "reused" | "failed" | "interrupted" | "not-run";

export interface StageRecord {
  kind: string;
  /** The stage's name in the experiment file (differs from the instance name in sweeps). */
  base: string;
  /** Matrix values of this instance (its own and its upstream's). */
  labels: Record<string, string | number | boolean>;
  key?: string;
  outcome: Outcome;
  /** Wall time in this run (0 for cache hits). */
  seconds: number;
  /** Wall time of the run that produced the entry. */
  computeSeconds?: number;
  params: Record<string, unknown>;
  inputs: Record<string, string>;
  seed: number;
  facets: Record<string, string>;
  metrics?: Record<string, Metric>;
  info?: Record<string, unknown>;
  components?: KeyComponents;
  host?: string;
  error?: string;
  log?: string;
}

export interface RunRecord {
  format: "kme-run/1";
  id: string;
  experiment: { name: string; file: string; sha256: Record<string, string> };
  status: "ok" | "failed" | "interrupted";
  started: string;
  finished: string;
  seconds: number;
  argv: string[];
  seed: number;
  env: Record<string, unknown>;
  stages: Record<string, StageRecord>;
}

export function newRunId(now = new Date()): string {
  // Milliseconds included: ids sort by time, and `gc` and `diff` rely on that order.
  const ts = now.toISOString().replace(/[-:]/g, "");
  return `${ts}-${crypto.randomUUID().slice(0, 6)}`;
}

/** A record of a run that started at `started` and ends now; `env` is filled in after. */
export function newRunRecord(
  started: Date,
  experiment: RunRecord["experiment"],
  seed: number,
  status: RunRecord["status"],
  stages: RunRecord["stages"],
  argv: string[],
): RunRecord {
  const finished = new Date();
  return {
    format: "kme-run/1",
    id: newRunId(started),
    experiment,
    status,
    started: started.toISOString(),
    finished: finished.toISOString(),
    seconds: (finished.getTime() - started.getTime()) / 1000,
    argv,
    seed,
    env: {},
    stages,
  };
}

/**
 * A record's stages as its file spells them (JSON, one-space indent, at their depth), for
 * writing records whose stages are known as text (the no-op memo): parsing and spelling them
 * again would be most of a cached rerun's work.
 */
export function stagesText(stages: RunRecord["stages"]): string {
  return JSON.stringify(stages, null, 1).replace(/\n/g, "\n ");
}

/** The file text of `rec`; with `stages` (from stagesText), those replace `rec.stages`. */
export function recordText(rec: RunRecord, stages?: string): string {
  if (stages === undefined) return JSON.stringify(rec, null, 1);
  // `stages` is the record's last field: its placeholder is the text's last value.
  const head = JSON.stringify({ ...rec, stages: 0 }, null, 1);
  return head.slice(0, head.lastIndexOf("0")) + stages + "\n}";
}

// Async for its callers; the calls in it are synchronous (see local_store.ts).
// deno-lint-ignore require-await
export async function writeRecord(store: Store, rec: RunRecord, stages?: string): Promise<string> {
  const path = store.layout.recordPath(rec.experiment.name, rec.id);
  // Synchronous calls, as on the rest of a cached rerun's path: the first asynchronous write
  // of a process loads Deno's stream code (~7 ms), for one small file.
  Deno.mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp`;
  try {
    Deno.writeTextFileSync(tmp, recordText(rec, stages));
    Deno.renameSync(tmp, path);
  } catch (e) {
    // A full disk must not leave a half-written record behind for readers to trip on.
    try {
      Deno.removeSync(tmp);
    } catch { /* never written */ }
    throw e;
  }
  return path;
}

/** Record ids of an experiment, oldest first (ids sort by time). */
export async function listRecordIds(store: Store, experiment: string): Promise<string[]> {
  const ids: string[] = [];
  try {
    for await (const e of Deno.readDir(store.layout.runsDir(experiment))) {
      if (e.isFile && e.name.endsWith(".json")) ids.push(e.name.slice(0, -5));
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return ids.sort();
}

/** A run record; a damaged one (not JSON, not a record) is a StoreDamageError naming it. */
export async function readRecord(store: Store, experiment: string, id: string): Promise<RunRecord> {
  const path = store.layout.recordPath(experiment, id);
  const advice = "move it out of runs/ (or delete it) and retry; entries are not affected";
  let r: unknown;
  try {
    r = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (e instanceof SyntaxError) {
      throw new StoreDamageError(path, `damaged run record (${e.message})`, advice);
    }
    throw e;
  }
  const o = r as Partial<RunRecord> | null;
  if (
    typeof o !== "object" || o === null || o.format !== "kme-run/1" ||
    typeof o.stages !== "object" || o.stages === null || typeof o.id !== "string"
  ) {
    throw new StoreDamageError(path, 'not a run record (expected format "kme-run/1")', advice);
  }
  return o as RunRecord;
}

/**
 * The newest record that passes `filter`. A damaged record is skipped with a warning naming
 * it: one bad file must not stop `status`, `diff` or `report` from using the others.
 */
export async function latestRecord(
  store: Store,
  experiment: string,
  filter: (r: RunRecord) => boolean = () => true,
): Promise<RunRecord | undefined> {
  const ids = await listRecordIds(store, experiment);
  for (let i = ids.length - 1; i >= 0; i--) {
    let r: RunRecord;
    try {
      r = await readRecord(store, experiment, ids[i]);
    } catch (e) {
      if (!(e instanceof StoreDamageError)) throw e;
      console.error(`warning: ${e.message} (skipped)`);
      continue;
    }
    if (filter(r)) return r;
  }
  return undefined;
}

/** Every (experiment, id) in the store, oldest first within each experiment. */
export async function allRecordIds(store: Store): Promise<{ experiment: string; id: string }[]> {
  const out: { experiment: string; id: string }[] = [];
  try {
    for await (const e of Deno.readDir(store.layout.runsDir())) {
      if (!e.isDirectory) continue;
      for (const id of await listRecordIds(store, e.name)) out.push({ experiment: e.name, id });
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out;
}

/** Finds a record by "<experiment>/<id>", "<id>" or a unique id prefix. */
export async function findRecord(store: Store, ref: string): Promise<RunRecord> {
  const [exp, id] = ref.includes("/") ? ref.split("/", 2) : [undefined, ref];
  const all = (await allRecordIds(store)).filter((r) =>
    (exp === undefined || r.experiment === exp) && r.id.startsWith(id)
  );
  if (all.length === 0) throw new UsageError(`no run record '${ref}' in ${store.layout.runsDir()}`);
  if (
    all.length > 1 && !all.every((r) => r.id === all[0].id && r.experiment === all[0].experiment)
  ) {
    throw new UsageError(
      `run id '${ref}' is ambiguous: ${
        all.slice(0, 5).map((r) => `${r.experiment}/${r.id}`).join(", ")
      }`,
    );
  }
  return readRecord(store, all[0].experiment, all[0].id);
}

let envCache: Record<string, unknown> | undefined;

/**
 * Deno, OS, host, git commit and locked direct npm packages: facts every record carries.
 * The commit is read from .git directly: spawning git costs more than a whole no-op run.
 * Whether the tree is dirty is asked of git only when something ran (`checkDirty`).
 */
export async function environment(
  root: string,
  checkDirty: boolean,
): Promise<Record<string, unknown>> {
  if (envCache) return envCache;
  let git: Record<string, unknown> | null = null;
  const commit = gitCommit(root);
  if (commit) {
    git = { commit };
    if (checkDirty) {
      try {
        const out = await new Deno.Command("git", {
          args: ["-C", root, "status", "--porcelain", "--untracked-files=no"],
          stdout: "piped",
          stderr: "null",
        }).output();
        if (out.success) git.dirty = new TextDecoder().decode(out.stdout).trim().length > 0;
      } catch { /* git not installed */ }
    }
  }
  let packages: Record<string, string> = {};
  try {
    const lock = JSON.parse(Deno.readTextFileSync(join(root, "deno.lock")));
    packages = Object.fromEntries(
      Object.entries(lock.specifiers ?? {}).map(([k, v]) => [k.replace(/^npm:/, ""), String(v)]),
    );
  } catch { /* no lockfile */ }
  envCache = {
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
    os: `${Deno.build.os} ${NODE_ARCH[Deno.build.arch] ?? Deno.build.arch}`,
    host: Deno.hostname(),
    git,
    packages,
  };
  return envCache;
}

/** Records have always said "linux x64", as node:os does; Deno says "x86_64". */
const NODE_ARCH: Record<string, string> = { x86_64: "x64", aarch64: "arm64" };

function gitCommit(root: string): string | undefined {
  try {
    const head = Deno.readTextFileSync(join(root, ".git", "HEAD")).trim();
    if (!head.startsWith("ref: ")) return head;
    const ref = head.slice(5);
    try {
      return Deno.readTextFileSync(join(root, ".git", ref)).trim();
    } catch {
      const packed = Deno.readTextFileSync(join(root, ".git", "packed-refs"));
      return packed.split("\n").find((l) => l.endsWith(` ${ref}`))?.split(" ")[0];
    }
  } catch {
    return undefined;
  }
}
