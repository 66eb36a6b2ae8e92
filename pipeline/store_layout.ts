/**
 * Where everything lives under a store's root: the one module that knows the folder names.
 * The README's "Store layout" lists the same folders; `tests/engine_layers.test.ts` keeps
 * every other module from spelling them.
 *
 *   entries/<key>/              a published entry: manifest.json, log.txt, out/ (read-only files)
 *   staging/<key>.<pid>.<n>/    an entry being written; renamed into entries/ in one step
 *   scratch/<key>/              checkpoints, log.txt, attempt.json, resume.txt of unpublished attempts;
 *                               kept until publish
 *   locks/<key>.lock, .owner    per-key flock and its owner (pipeline/lock.ts)
 *   locks/store.lock            runs share it, gc owns it (pipeline/store_lock.ts)
 *   runs/<experiment>/<id>.json run records
 *   plans/<hash>.json           the plan cache of a no-op rerun (pipeline/plan_cache.ts)
 *   jobs/<id>.{json,sh,out}     Slurm job files and their output (pipeline/slurm.ts)
 *   reports/<experiment>/       HTML reports written by default (report/mod.ts)
 *   quarantine/<key>.<ms>/      entries that `verify` or a run found damaged
 *   memo/stat.json              stat memo of external inputs
 *   memo/code.json              scans of code modules, for the plan cache (pipeline/scan_memo.ts)
 *   memo/noop/<hash>.json       the answer of the last all-cached run (pipeline/noop_memo.ts)
 */
import { join } from "./paths.ts";

/** The folders `ensure` creates up front; plans/, jobs/ and reports/ appear when first used. */
const CORE = ["entries", "staging", "scratch", "locks", "runs", "quarantine", "memo"] as const;

/** The anatomy of an entry folder, published or in staging. */
export function entryParts(dir: string): { out: string; log: string; manifest: string } {
  return { out: join(dir, "out"), log: join(dir, "log.txt"), manifest: join(dir, "manifest.json") };
}

export class StoreLayout {
  constructor(readonly root: string) {}

  get entriesDir(): string {
    return join(this.root, "entries");
  }
  entryDir(key: string): string {
    return join(this.entriesDir, key);
  }
  manifestPath(key: string): string {
    return entryParts(this.entryDir(key)).manifest;
  }
  outDir(key: string): string {
    return entryParts(this.entryDir(key)).out;
  }
  get stagingDir(): string {
    return join(this.root, "staging");
  }
  get scratchRoot(): string {
    return join(this.root, "scratch");
  }
  scratchDir(key: string): string {
    return join(this.scratchRoot, key);
  }
  /** The log of the attempt at `key` that has not been published yet. */
  scratchLogPath(key: string): string {
    return join(this.scratchDir(key), "log.txt");
  }
  /** What the attempt at `key` is (stage, kind, params), for the dashboard to show. */
  attemptPath(key: string): string {
    return join(this.scratchDir(key), "attempt.json");
  }
  /** What a rerun of the attempt at `key` resumes from, in the stage's words (one line). */
  resumeNotePath(key: string): string {
    return join(this.scratchDir(key), "resume.txt");
  }
  get locksDir(): string {
    return join(this.root, "locks");
  }
  lockPath(key: string): string {
    return join(this.locksDir, `${key}.lock`);
  }
  /** Who holds `lockPath(key)`: host, pid, stage (pipeline/lock.ts; mtime is its heartbeat). */
  ownerPath(key: string): string {
    return join(this.locksDir, `${key}.owner`);
  }
  get storeLockPath(): string {
    return join(this.locksDir, "store.lock");
  }
  runsDir(experiment?: string): string {
    return experiment ? join(this.root, "runs", experiment) : join(this.root, "runs");
  }
  recordPath(experiment: string, id: string): string {
    return join(this.runsDir(experiment), `${id}.json`);
  }
  get plansDir(): string {
    return join(this.root, "plans");
  }
  planPath(name: string): string {
    return join(this.plansDir, `${name}.json`);
  }
  get jobsDir(): string {
    return join(this.root, "jobs");
  }
  reportPath(experiment: string, name: string): string {
    return join(this.root, "reports", experiment, `${name}.html`);
  }
  quarantinePath(key: string, stamp: number): string {
    return join(this.root, "quarantine", `${key}.${stamp}`);
  }
  get memoPath(): string {
    return join(this.root, "memo", "stat.json");
  }
  get codeMemoPath(): string {
    return join(this.root, "memo", "code.json");
  }
  get noopMemoDir(): string {
    return join(this.root, "memo", "noop");
  }
  noopMemoPath(name: string): string {
    return join(this.noopMemoDir, `${name}.json`);
  }

  // Synchronous: see local_store.ts.
  // deno-lint-ignore require-await
  async ensure(): Promise<void> {
    for (const d of CORE) Deno.mkdirSync(join(this.root, d), { recursive: true });
  }
}
