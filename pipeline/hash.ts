/** Content hashing of files and folders, with a stat memo so unchanged data is not re-read. */
import { join, relative } from "./paths.ts";
import { hashJson } from "./canonical.ts";
import type { FileRecord } from "./stage.ts";

const CHUNK = 4 << 20;

/** SHA-256 of a file's bytes, streamed in large chunks (no whole-file buffer). */
export async function hashFile(path: string): Promise<string> {
  // Loaded here, not at the top: a cached rerun hashes no file, and node:crypto (native,
  // several times faster than JS on large files) starts Deno's Node-compatibility layer.
  const { createHash } = await import("node:crypto");
  const h = createHash("sha256");
  using f = await Deno.open(path, { read: true });
  const buf = new Uint8Array(CHUNK);
  while (true) {
    const n = await f.read(buf);
    if (n === null) break;
    h.update(n === CHUNK ? buf : buf.subarray(0, n));
  }
  return h.digest("hex");
}

/** Every regular file under `dir`, as sorted paths relative to it (with "/" separators). */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(d: string) {
    for await (const e of Deno.readDir(d)) {
      const p = join(d, e.name);
      const info = e.isSymlink ? await Deno.stat(p) : e;
      if (info.isDirectory) await walk(p);
      else if (info.isFile) out.push(relative(dir, p).split("\\").join("/"));
    }
  }
  await walk(dir);
  return out.sort();
}

/** The digest of a set of files: what "the content of an output" means for cache keys. */
export function digestOfFiles(files: FileRecord[]): Promise<string> {
  return hashJson(files.map((f) => [f.path, f.size, f.sha256]));
}

interface MemoRow {
  size: number;
  mtimeMs: number;
  ino: number | null;
  sha256: string;
}

/**
 * (path, size, mtime, inode) -> digest. Persisted as one JSON file, replaced atomically;
 * concurrent writers lose at most each other's new rows, never correctness.
 */
export class StatMemo {
  #rows: Record<string, MemoRow> = {};
  #dirty = false;
  /** Bytes actually read by the last calls (for tests and the bench). */
  bytesRead = 0;

  constructor(readonly path?: string) {}

  // Async for its callers; the calls in it are synchronous (see local_store.ts).
  // deno-lint-ignore require-await
  static async load(path: string): Promise<StatMemo> {
    const m = new StatMemo(path);
    try {
      m.#rows = JSON.parse(Deno.readTextFileSync(path));
    } catch {
      // Missing or unreadable memo: start empty (it is only an accelerator).
    }
    return m;
  }

  async hashFile(path: string): Promise<FileRecord> {
    const st = Deno.statSync(path); // synchronous: on a cached rerun's path (local_store.ts)
    const mtimeMs = st.mtime?.getTime() ?? 0;
    const row = this.#rows[path];
    if (row && row.size === st.size && row.mtimeMs === mtimeMs && row.ino === st.ino) {
      return { path, size: st.size, sha256: row.sha256 };
    }
    const sha256 = await hashFile(path);
    this.bytesRead += st.size;
    this.#rows[path] = { size: st.size, mtimeMs, ino: st.ino, sha256 };
    this.#dirty = true;
    return { path, size: st.size, sha256 };
  }

  /** Digest of a file or a folder (over its files' relative paths, sizes and digests). */
  async hashPath(path: string): Promise<string> {
    const st = Deno.statSync(path);
    if (st.isFile) return (await this.hashFile(path)).sha256;
    const files: FileRecord[] = [];
    for (const rel of await listFiles(path)) {
      const r = await this.hashFile(join(path, rel));
      files.push({ path: rel, size: r.size, sha256: r.sha256 });
    }
    return await digestOfFiles(files);
  }

  // Async for its callers; the calls in it are synchronous (see local_store.ts).
  // deno-lint-ignore require-await
  async save(): Promise<void> {
    if (!this.path || !this.#dirty) return;
    const tmp = `${this.path}.${Deno.pid}.tmp`;
    Deno.writeTextFileSync(tmp, JSON.stringify(this.#rows));
    Deno.renameSync(tmp, this.path);
    this.#dirty = false;
  }
}
