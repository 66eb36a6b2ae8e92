/**
 * The store on a local (or shared, POSIX) filesystem: the first `Store`. Atomicity rests on
 * two filesystem facts: rename(2) of a folder is atomic, and an entry exists exactly when
 * entries/<key>/manifest.json exists, because the manifest is written into the staging folder
 * before the rename that publishes it.
 */
import { join } from "./paths.ts";
import { lazyImport } from "./lazy_import.ts";
import type { FileRecord } from "./stage.ts";
import type { Manifest, Store, StoreDescription } from "./store.ts";
import { entryParts, StoreLayout } from "./store_layout.ts";

/** hash.ts, for writing and verifying entries: a cached rerun, which only reads, skips its load. */
function hashing() {
  return lazyImport<typeof import("./hash.ts")>(new URL("./hash.ts", import.meta.url));
}

export class LocalStore implements Store {
  readonly layout: StoreLayout;
  readonly description: StoreDescription;

  constructor(root: string) {
    this.layout = new StoreLayout(root);
    this.description = { kind: "local", root };
  }

  async ensureLayout(): Promise<void> {
    await this.layout.ensure();
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

  // Synchronous reads: a cached rerun reads one small manifest per stage, where an async
  // call's round trip costs more than the read (and its first one loads more of Deno).
  // deno-lint-ignore require-await
  async #manifest(
    key: string,
  ): Promise<{ manifest: Manifest } | { damage: string } | { absent: true }> {
    const dir = this.layout.entryDir(key);
    let link: Deno.FileInfo;
    try {
      link = Deno.lstatSync(dir);
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
      text = Deno.readTextFileSync(this.layout.manifestPath(key));
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
    const base = this.layout.stagingDir;
    // Leftovers of a killed attempt at this key: nobody else can be writing them (we hold the lock).
    for await (const e of Deno.readDir(base)) {
      if (e.name.startsWith(`${key}.`)) await Deno.remove(join(base, e.name), { recursive: true });
    }
    const dir = join(base, `${key}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}`);
    await Deno.mkdir(entryParts(dir).out, { recursive: true });
    return dir;
  }

  /** Hashes a staging folder's outputs. */
  async hashOutputs(staging: string): Promise<{ files: FileRecord[]; digest: string }> {
    const { digestOfFiles, hashFile, listFiles } = await hashing();
    const out = entryParts(staging).out;
    const files: FileRecord[] = [];
    for (const rel of await listFiles(out)) {
      const p = join(out, rel);
      files.push({ path: rel, size: (await Deno.stat(p)).size, sha256: await hashFile(p) });
    }
    return { files, digest: await digestOfFiles(files) };
  }

  /**
   * Publishes a staging folder (which already holds manifest.json) as the entry of `key`,
   * replacing an existing entry only when `replace` is set. Returns false when an entry already
   * existed and was kept.
   */
  async publish(staging: string, key: string, replace: boolean): Promise<boolean> {
    const { listFiles } = await hashing();
    const out = entryParts(staging).out;
    for (const rel of await listFiles(out)) {
      await Deno.chmod(join(out, rel), 0o444);
    }
    const dest = this.layout.entryDir(key);
    if (replace && (await this.has(key))) {
      const trash = join(
        this.layout.stagingDir,
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
    const { hashFile, listFiles } = await hashing();
    const problems: string[] = [];
    const out = this.layout.outDir(key);
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
    const dest = this.layout.quarantinePath(key, Date.now());
    await Deno.rename(this.layout.entryDir(key), dest);
    return dest;
  }

  async remove(key: string): Promise<void> {
    await Deno.remove(this.layout.entryDir(key), { recursive: true });
  }

  async listScratch(): Promise<string[]> {
    const keys: string[] = [];
    try {
      for await (const e of Deno.readDir(this.layout.scratchRoot)) keys.push(e.name);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return keys.sort();
  }

  async removeScratch(key: string): Promise<void> {
    await Deno.remove(this.layout.scratchDir(key), { recursive: true });
  }

  async listKeys(): Promise<string[]> {
    const keys: string[] = [];
    try {
      // Symbolic links too: `verify` must report them, and `gc` may remove them.
      for await (const e of Deno.readDir(this.layout.entriesDir)) {
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
