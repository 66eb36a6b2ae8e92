/**
 * A memo of module scans (hash and imports) across processes, so that a no-op rerun does not
 * read, hash and lex every module of every stage to check its cached plan.
 *
 * A row is reused only when the file's size, inode, mtime and ctime are what they were. Like
 * git's index, it guards against "racy" files: a file modified less than RACY_MS before it
 * was scanned is not memoized (a second write within the same timestamp tick, keeping the size,
 * would look unchanged), so it is read again next time, until it is old enough. ctime cannot be
 * set by a user (touch and utime update it), so restoring an mtime by hand does not fool it.
 */
import { dirname } from "./paths.ts";
import type { ImportSite } from "./import_scan.ts";

export interface ScanRow {
  sha: string;
  imports: ImportSite[];
  computed: { line: number; col: number }[];
}

interface MemoRow extends ScanRow {
  size: number;
  ino: number | null;
  mtimeMs: number;
  ctimeMs: number;
}

/** Files changed this recently before their scan are not memoized (2 s: coarse filesystems). */
const RACY_MS = 2000;

export class ScanMemo {
  #rows: Record<string, MemoRow> = {};
  #dirty = false;

  private constructor(readonly path: string) {}

  static load(path: string): ScanMemo {
    const m = new ScanMemo(path);
    try {
      const rows = JSON.parse(Deno.readTextFileSync(path));
      if (rows && typeof rows === "object" && !Array.isArray(rows)) m.#rows = rows;
    } catch {
      // Missing or damaged: start empty (it only saves time).
    }
    return m;
  }

  /** The memoized scan of `path` if the file is unchanged, given its current stat. */
  get(path: string, st: Deno.FileInfo): ScanRow | undefined {
    const r = this.#rows[path];
    if (
      !r || r.size !== st.size || r.ino !== st.ino || r.mtimeMs !== (st.mtime?.getTime() ?? -1) ||
      r.ctimeMs !== (st.ctime?.getTime() ?? -1) || typeof r.sha !== "string" ||
      !Array.isArray(r.imports) || !Array.isArray(r.computed)
    ) return undefined;
    return { sha: r.sha, imports: r.imports, computed: r.computed };
  }

  /** Records a scan made now of a file with stat `st` (unless the file is too fresh). */
  set(path: string, st: Deno.FileInfo, row: ScanRow): void {
    const mtimeMs = st.mtime?.getTime() ?? -1, ctimeMs = st.ctime?.getTime() ?? -1;
    const newest = Math.max(mtimeMs, ctimeMs);
    if (newest < 0 || Date.now() - newest < RACY_MS) return;
    this.#rows[path] = { ...row, size: st.size, ino: st.ino, mtimeMs, ctimeMs };
    this.#dirty = true;
  }

  /** Writes the memo if it changed (atomically; a failure only costs time next run). */
  save(): void {
    if (!this.#dirty) return;
    const tmp = `${this.path}.${Deno.pid}.tmp`;
    try {
      Deno.mkdirSync(dirname(this.path), { recursive: true });
      Deno.writeTextFileSync(tmp, JSON.stringify(this.#rows));
      Deno.renameSync(tmp, this.path);
      this.#dirty = false;
    } catch {
      try {
        Deno.removeSync(tmp);
      } catch { /* never written */ }
    }
  }
}
