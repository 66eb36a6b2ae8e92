/**
 * The answer of the last run that found every stage cached, reused while nothing it rests on
 * has changed: a rerun of an unchanged experiment then reads one file and stats the files
 * below instead of loading the plan, walking code and computing keys (issue 16: with it a
 * cached rerun of tiny.yaml takes 0.088 s, against 0.133 s by the plan cache alone; Deno on an
 * empty module starts in 0.065 s).
 *
 * What the answer rests on, each checked by its stat (size, mtime, ctime, inode; or absence),
 * as git's index and the scan memo (scan_memo.ts) check files:
 * - the experiment file and every file it extends;
 * - deno.json (bare specifiers) and deno.lock (npm packages), the node_modules folders of the
 *   project and of the working folder (the packages installed) and the library folders facets
 *   may look at (facet_environment.ts);
 * - the engine's own code, which plans and makes keys (engine_code.ts);
 * - every module file of every stage's code fingerprint: unchanged files import what they did,
 *   so fingerprints, and with the plan's params, facets and seeds, keys are as they were;
 * - every stage's entry folder and manifest.json: a deleted (gc), quarantined (verify) or
 *   rewritten entry changes them, and a manifest holds the outputs' digest that downstream
 *   keys hash;
 * - every external input, each file and each folder of it (a folder's mtime changes when an
 *   entry is added, removed or renamed in it).
 * Besides files: the project and working folders, the experiment argument and stage targets,
 * Deno's version and the variables facets may read must be the same.
 *
 * It is not written while any of those files changed less than two seconds before the run
 * began (or since): the stats are taken after the run read the files, and a second change
 * within one timestamp tick, keeping the size, could look unchanged (the scan memo's rule).
 * Anything else (an -S override, --force, Slurm) takes the full path and writes no memo.
 */
import { join, resolve } from "./paths.ts";
import { facetVariables, libraryPlaces, packagePlaces } from "./facet_environment.ts";
import { engineCodeFiles, statSignature as signature } from "./engine_code.ts";
import type { StoreLayout } from "./store_layout.ts";

const FORMAT = "kme-noop/3";
/** Files changed this recently are not trusted by their stat (scan_memo.ts's RACY_MS). */
const RACY_MS = 2000;

/** What must be equal, besides files, for the answer to hold. */
export interface NoopIdentity {
  root: string;
  cwd: string;
  /** The experiment file as given, and the stages asked for. */
  file: string;
  targets: string[];
  deno: string;
  vars: [string, string][];
}

/**
 * A cached run's answer: the experiment as its record names it, its stages in order, their
 * records as the record file spells them (records.ts, stagesText) and the table the run
 * printed. Kept as text: parsing and spelling 15 stage records again (~120 KB, most of it code
 * fingerprints) would be most of the rerun's work.
 */
export interface NoopAnswer {
  experiment: { name: string; file: string; sha256: Record<string, string> };
  seed: number;
  stageNames: string[];
  stagesText: string;
  table: string;
}

interface Memo extends NoopAnswer {
  format: typeof FORMAT;
  identity: string;
  /** Path -> stat signature (or "-" for absent). */
  files: Record<string, string>;
}

export function noopIdentity(root: string, file: string, targets: string[]): NoopIdentity {
  return {
    root,
    cwd: Deno.cwd(),
    file,
    targets,
    deno: Deno.version.deno,
    vars: facetVariables(),
  };
}

/** What a stage contributes to the files watched: its code, entry and external inputs. */
export interface WatchedStage {
  codeFiles: string[];
  key: string;
  externals: string[];
}

/**
 * Every path the answer rests on (see the module's comment): `required` ones were read by the
 * run, so one absent when the memo is written went missing since, and the memo must not say
 * "absent is as it was"; `optional` ones may be absent (a library folder, a lockfile).
 */
export function watchedPaths(
  root: string,
  layout: StoreLayout,
  sources: string[],
  stages: WatchedStage[],
): { required: string[]; optional: string[] } {
  const required = new Set<string>([
    ...sources.map((s) => resolve(s)),
    join(root, "deno.json"),
    ...engineCodeFiles(root),
  ]);
  for (const s of stages) {
    for (const f of s.codeFiles) required.add(resolve(root, f));
    required.add(layout.entryDir(s.key));
    required.add(layout.manifestPath(s.key));
    for (const e of s.externals) walk(resolve(e), required);
  }
  const optional = [
    join(root, "deno.lock"),
    ...packagePlaces(root),
    ...libraryPlaces(facetVariables()),
  ].filter((p) => !required.has(p));
  return { required: [...required], optional: [...new Set(optional)] };
}

/** A path and, when it is a folder, everything under it. */
function walk(path: string, into: Set<string>): void {
  into.add(path);
  let entries: Deno.DirEntry[];
  try {
    if (!Deno.statSync(path).isDirectory) return;
    entries = [...Deno.readDirSync(path)];
  } catch {
    return; // absent: its signature says so
  }
  for (const e of entries) walk(join(path, e.name), into);
}

function memoPath(layout: StoreLayout, identity: string): string {
  // FNV-1a: a name for the file, not a guard (the identity inside is compared in full), so it
  // needs no cryptographic hash, whose first use costs a few ms.
  let h = 0x811c9dc5;
  for (let i = 0; i < identity.length; i++) {
    h = Math.imul(h ^ identity.charCodeAt(i), 0x01000193) >>> 0;
  }
  return layout.noopMemoPath(h.toString(16).padStart(8, "0"));
}

/** Whether a memo for `id` exists (to be read under the store's lock, which creates folders). */
export function hasNoopMemo(layout: StoreLayout, id: NoopIdentity): boolean {
  try {
    return Deno.statSync(memoPath(layout, JSON.stringify(id))).isFile;
  } catch {
    return false;
  }
}

/** The memoized answer for `identity`, if every file it rests on is as it was. */
export function readNoopMemo(layout: StoreLayout, id: NoopIdentity): NoopAnswer | undefined {
  const identity = JSON.stringify(id);
  let memo: Memo;
  try {
    memo = JSON.parse(Deno.readTextFileSync(memoPath(layout, identity)));
  } catch {
    return undefined;
  }
  if (memo.format !== FORMAT || memo.identity !== identity) return undefined;
  for (const [path, sig] of Object.entries(memo.files)) {
    if (signature(path) !== sig) return undefined;
  }
  const { experiment, seed, stageNames, stagesText, table } = memo;
  return { experiment, seed, stageNames, stagesText, table };
}

/**
 * Deletes the memos that no longer hold (a file they rest on changed) or cannot be read, for
 * `gc`: each experiment, stage selection and working folder leaves one. Returns how many.
 */
export function pruneNoopMemos(layout: StoreLayout): number {
  let removed = 0;
  let names: string[];
  try {
    names = [...Deno.readDirSync(layout.noopMemoDir)].map((e) => e.name);
  } catch {
    return 0; // none yet
  }
  for (const name of names) {
    const path = join(layout.noopMemoDir, name);
    let holds = false;
    try {
      const memo: Memo = JSON.parse(Deno.readTextFileSync(path));
      holds = memo.format === FORMAT &&
        Object.entries(memo.files).every(([p, sig]) => signature(p) === sig);
    } catch { /* unreadable: remove */ }
    if (!holds) {
      try {
        Deno.removeSync(path);
        removed++;
      } catch { /* removed meanwhile */ }
    }
  }
  return removed;
}

/**
 * Memoizes the answer of a run that found every stage cached, unless a file it rests on is
 * too recent to be trusted by its stat. A failure to write only costs time next run.
 */
export function writeNoopMemo(
  layout: StoreLayout,
  id: NoopIdentity,
  answer: NoopAnswer,
  paths: { required: string[]; optional: string[] },
  /** When the run began reading what the answer rests on (ms since the epoch). */
  since: number,
): void {
  const files: Record<string, string> = {};
  const required = new Set(paths.required);
  for (const p of [...paths.required, ...paths.optional]) {
    const sig = signature(p);
    if (sig === "-" && required.has(p)) return; // gone since the run read it
    if (sig !== "-") {
      // The stats are taken now, after the run read these files: one changed since the run
      // began would be memoized with its new stat and the answer of its old content. So every
      // file must be older than the run, by the racy margin (coarse timestamps round down).
      const [, mtime, ctime] = sig.split(":").map(Number);
      if (!(since - Math.max(mtime, ctime) >= RACY_MS)) return;
    }
    files[p] = sig;
  }
  const identity = JSON.stringify(id);
  const memo: Memo = { format: FORMAT, identity, files, ...answer };
  const path = memoPath(layout, identity);
  const tmp = `${path}.${Deno.pid}.tmp`;
  try {
    Deno.mkdirSync(layout.noopMemoDir, { recursive: true });
    Deno.writeTextFileSync(tmp, JSON.stringify(memo));
    Deno.renameSync(tmp, path);
  } catch {
    try {
      Deno.removeSync(tmp);
    } catch { /* never written */ }
  }
}
