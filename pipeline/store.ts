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

  /**
   * The manifest of a published entry, or undefined when there is none or it is damaged
   * (truncated, not JSON, or not the shape the store writes): a damaged entry counts as
   * absent, so its stage recomputes it (`damage` says why; `verify` reports it).
   */
  async readManifest(key: string): Promise<Manifest | undefined> {
    const r = await this.#manifest(key);
    return "manifest" in r ? r.manifest : undefined;
  }

  /** Why entries/<key> is not a usable entry although something is there; undefined if fine or absent. */
  async damage(key: string): Promise<string | undefined> {
    const r = await this.#manifest(key);
    return "damage" in r ? r.damage : undefined;
  }

  async #manifest(
    key: string,
  ): Promise<{ manifest: Manifest } | { damage: string } | { absent: true }> {
    const dir = this.entryDir(key);
    let link: Deno.FileInfo;
    try {
      link = await Deno.lstat(dir);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return { absent: true };
      throw e;
    }
    if (!link.isDirectory) {
      return {
        damage: link.isSymlink
          ? "entries/" + key + " is a symbolic link, not a folder the store wrote"
          : "entries/" + key + " is not a folder",
      };
    }
    let text: string;
    try {
      text = await Deno.readTextFile(join(dir, "manifest.json"));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return { damage: "manifest.json is missing" };
      throw e;
    }
    let m: unknown;
    try {
      m = JSON.parse(text);
    } catch (e) {
      return { damage: `manifest.json is not valid JSON (${(e as Error).message})` };
    }
    const why = manifestShapeProblem(m);
    return why ? { damage: `manifest.json ${why}` } : { manifest: m as Manifest };
  }

  /** Whether a usable entry exists (a damaged one does not count). */
  async has(key: string): Promise<boolean> {
    return (await this.readManifest(key)) !== undefined;
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
    if (!m) return [(await this.damage(key)) ?? "entry missing"];
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

  /**
   * Moves an entry out of the way so that it no longer exists (and its stage reruns); a symbolic
   * link is moved itself, never what it points to.
   */
  async quarantine(key: string): Promise<string> {
    const dest = join(this.root, "quarantine", `${key}.${Date.now()}`);
    await Deno.rename(this.entryDir(key), dest);
    return dest;
  }

  async listKeys(): Promise<string[]> {
    const keys: string[] = [];
    try {
      // Symbolic links too: `verify` must report them, and `gc` may remove them.
      for await (const e of Deno.readDir(join(this.root, "entries"))) {
        if (e.isDirectory || e.isSymlink) keys.push(e.name);
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return keys.sort();
  }
}

/** What is wrong with the shape of a parsed manifest, or undefined when it is one. */
function manifestShapeProblem(m: unknown): string | undefined {
  if (typeof m !== "object" || m === null || Array.isArray(m)) return "is not a JSON object";
  const o = m as Record<string, unknown>;
  if (o.format !== "kme-entry/1") {
    return `has format ${JSON.stringify(o.format)}, not "kme-entry/1"`;
  }
  if (typeof o.digest !== "string") return "has no digest";
  if (!Array.isArray(o.files)) return "has no files list";
  for (const f of o.files as unknown[]) {
    const r = f as Record<string, unknown> | null;
    if (
      typeof r !== "object" || r === null || typeof r.path !== "string" ||
      typeof r.size !== "number" || typeof r.sha256 !== "string"
    ) return "has a files entry without path, size and sha256";
  }
  return undefined;
}
