/**
 * The content-addressed store. Layout under its root:
 *
 *   entries/<key>/         a published entry: manifest.json, log.txt, out/ (read-only files)
 *   staging/<key>.<pid>.<n>/  an entry being written; renamed into entries/ in one step
 *   scratch/<key>/         checkpoints and the log of unpublished attempts; kept until publish
 *   locks/<key>.lock       per-key flock
 *   runs/<experiment>/     run records
 *   quarantine/            entries that failed `verify`
 *   memo/                  stat memo of external inputs
 *
 * An entry exists exactly when entries/<key>/manifest.json exists: the manifest is written
 * into the staging folder before the rename that publishes it.
 */
import { join } from "node:path";
import { digestOfFiles, hashFile, listFiles } from "./hash.ts";
import type { FileRecord, Metric } from "./stage.ts";
import type { KeyComponents } from "./key.ts";

export interface Manifest {
  format: "kme-entry/1";
  key: string;
  kind: string;
  /** Name of the stage that produced it (entries are shared by any stage with the same key). */
  stage: string;
  components: KeyComponents;
  files: FileRecord[];
  digest: string;
  metrics: Record<string, Metric>;
  info: Record<string, unknown>;
  started: string;
  finished: string;
  seconds: number;
  host: string;
}

export class Store {
  constructor(readonly root: string) {}

  entryDir(key: string): string {
    return join(this.root, "entries", key);
  }
  outDir(key: string): string {
    return join(this.entryDir(key), "out");
  }
  scratchDir(key: string): string {
    return join(this.root, "scratch", key);
  }
  lockPath(key: string): string {
    return join(this.root, "locks", `${key}.lock`);
  }
  runsDir(experiment?: string): string {
    return experiment ? join(this.root, "runs", experiment) : join(this.root, "runs");
  }
  get memoPath(): string {
    return join(this.root, "memo", "stat.json");
  }

  async ensureLayout(): Promise<void> {
    for (const d of ["entries", "staging", "scratch", "locks", "runs", "quarantine", "memo"]) {
      await Deno.mkdir(join(this.root, d), { recursive: true });
    }
  }

  /** The manifest of a published entry, or undefined when there is none. */
  async readManifest(key: string): Promise<Manifest | undefined> {
    try {
      return JSON.parse(await Deno.readTextFile(join(this.entryDir(key), "manifest.json")));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
      if (e instanceof SyntaxError) return undefined; // damaged: treated as absent, verify reports
      throw e;
    }
  }

  async has(key: string): Promise<boolean> {
    try {
      await Deno.stat(join(this.entryDir(key), "manifest.json"));
      return true;
    } catch {
      return false;
    }
  }

  /** A fresh staging folder for `key`; call only while holding the key's lock. */
  async newStaging(key: string): Promise<string> {
    const base = join(this.root, "staging");
    // Leftovers of a killed attempt at this key: nobody else can be writing them (we hold the lock).
    for await (const e of Deno.readDir(base)) {
      if (e.name.startsWith(`${key}.`)) await Deno.remove(join(base, e.name), { recursive: true });
    }
    const dir = join(base, `${key}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}`);
    await Deno.mkdir(join(dir, "out"), { recursive: true });
    return dir;
  }

  /** Hashes a staging folder's outputs. */
  async hashOutputs(staging: string): Promise<{ files: FileRecord[]; digest: string }> {
    const out = join(staging, "out");
    const files: FileRecord[] = [];
    for (const rel of await listFiles(out)) {
      const p = join(out, rel);
      files.push({ path: rel, size: (await Deno.stat(p)).size, sha256: await hashFile(p) });
    }
    return { files, digest: digestOfFiles(files) };
  }

  /**
   * Publishes a staging folder (which already holds manifest.json) as the entry of `key`,
   * replacing an existing entry only when `replace` is set. Returns false when an entry already
   * existed and was kept.
   */
  async publish(staging: string, key: string, replace: boolean): Promise<boolean> {
    for (const rel of await listFiles(join(staging, "out"))) {
      await Deno.chmod(join(staging, "out", rel), 0o444);
    }
    const dest = this.entryDir(key);
    if (replace && (await this.has(key))) {
      const trash = join(
        this.root,
        "staging",
        `${key}.replaced.${crypto.randomUUID().slice(0, 8)}`,
      );
      await Deno.rename(dest, trash);
      await Deno.rename(staging, dest);
      await Deno.remove(trash, { recursive: true });
      return true;
    }
    try {
      await Deno.rename(staging, dest);
      return true;
    } catch (e) {
      if (await this.has(key)) {
        await Deno.remove(staging, { recursive: true });
        return false;
      }
      throw e;
    }
  }

  /** Re-hashes an entry; returns the problems found (empty when intact). */
  async verify(key: string): Promise<string[]> {
    const m = await this.readManifest(key);
    if (!m) return ["manifest.json missing or unreadable"];
    const problems: string[] = [];
    const out = this.outDir(key);
    const present = new Set(await listFiles(out).catch(() => [] as string[]));
    for (const f of m.files) {
      if (!present.has(f.path)) {
        problems.push(`${f.path}: missing`);
        continue;
      }
      present.delete(f.path);
      const p = join(out, f.path);
      const size = (await Deno.stat(p)).size;
      if (size !== f.size) problems.push(`${f.path}: size ${size}, manifest says ${f.size}`);
      else if ((await hashFile(p)) !== f.sha256) problems.push(`${f.path}: content changed`);
    }
    for (const extra of present) problems.push(`${extra}: not in manifest`);
    return problems;
  }

  /** Moves an entry out of the way so that it no longer exists (and its stage reruns). */
  async quarantine(key: string): Promise<string> {
    const dest = join(this.root, "quarantine", `${key}.${Date.now()}`);
    await Deno.rename(this.entryDir(key), dest);
    return dest;
  }

  async listKeys(): Promise<string[]> {
    const keys: string[] = [];
    try {
      for await (const e of Deno.readDir(join(this.root, "entries"))) {
        if (e.isDirectory) keys.push(e.name);
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return keys.sort();
  }
}
