/**
 * Code fingerprints: the hashes of a stage module and every local module it imports,
 * transitively (static imports, literal dynamic imports and worker modules named with
 * `new URL("./w.ts", import.meta.url)`; `import type` is skipped because it
 * cannot change behaviour), plus the locked integrity of every npm package reached.
 * A stage's fingerprint also covers the modules its params name (`Stage.modules`).
 *
 * The imports of each module come from import_scan.ts (a lexer). What it cannot see is refused
 * rather than ignored: a module the lexer cannot parse, a dynamic import with a computed
 * specifier (its code would be missing from the key) and a local import of a file that does
 * not exist.
 */
import { dirname, fromFileUrl, isAbsolute, relative, resolve, toFileUrl } from "./paths.ts";
import { hashJson, sha256Hex } from "./canonical.ts";
import { ConfigError } from "./errors.ts";
import type { ScanMemo, ScanRow } from "./scan_memo.ts";
import { lazyImport } from "./lazy_import.ts";

export interface CodeFingerprint {
  /** Project-relative path -> sha256 of the file's bytes. */
  files: Record<string, string>;
  /** npm package (as locked) -> sha256 over its and its dependencies' integrities. */
  npm: Record<string, string>;
  /** Specifiers that are neither local nor locked npm (e.g. remote URLs), recorded as-is. */
  other: string[];
}

let cwd: string | undefined;

/**
 * How a file is named in an error: relative to the working folder when below it. The folder is
 * read once: Deno.cwd() is a system call, and this runs for every import of a no-op rerun.
 */
function shown(path: string): string {
  const rel = relative(cwd ??= Deno.cwd(), path);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : path;
}

interface LockFile {
  specifiers?: Record<string, string>;
  npm?: Record<string, { integrity?: string; dependencies?: string[] }>;
}

/** A local import, resolved; where it was written, for the error when its target is missing. */
interface LocalImport {
  spec: string;
  target: string;
  importer: string;
  line: number;
  col: number;
}

interface ModuleEdges {
  /** Path relative to the project root, with '/'. */
  name: string;
  sha: string;
  local: LocalImport[];
  npm: [pkg: string, digest: string][];
  other: string[];
}

/** Resolves bare specifiers and npm packages against a project's deno.json and deno.lock. */
export class ProjectResolver {
  #fileCache = new Map<string, ScanRow>();
  /** Per entry; like the file cache, it assumes no code changes while the process runs. */
  #fpCache = new Map<string, CodeFingerprint>();
  #edgeCache = new Map<string, ModuleEdges>();
  #npmCache = new Map<string, string>();

  private constructor(
    readonly root: string,
    private imports: Record<string, string>,
    private lock: LockFile,
    private readonly memo?: ScanMemo,
  ) {}

  /** `memo`: scans kept across processes (scan_memo.ts); call `saveMemo()` when done. */
  // Async for its callers; the reads in it are synchronous (see local_store.ts).
  // deno-lint-ignore require-await
  static async load(root: string, memo?: ScanMemo): Promise<ProjectResolver> {
    const cfg = JSON.parse(Deno.readTextFileSync(resolve(root, "deno.json")));
    let lock: LockFile = {};
    try {
      lock = JSON.parse(Deno.readTextFileSync(resolve(root, "deno.lock")));
    } catch {
      // No lockfile: npm versions are then only what the import map says.
    }
    return new ProjectResolver(root, cfg.imports ?? {}, lock, memo);
  }

  /**
   * Whether every file named (project-relative name -> sha256, as in fingerprints) is as it was
   * when scanned, by the scan memo's stat check alone (nothing is read or hashed), and has that
   * hash. False when one changed or is gone, or is not in the memo (a file written less than
   * two seconds before its scan is not), or when names disagree on a hash.
   */
  unchanged(files: Record<string, string>[]): boolean {
    if (!this.memo) return false;
    const seen = new Map<string, string>();
    for (const [name, sha] of files.flatMap((f) => Object.entries(f))) {
      const before = seen.get(name);
      if (before !== undefined) {
        if (before !== sha) return false;
        continue;
      }
      seen.set(name, sha);
      const path = resolve(this.root, name);
      let st: Deno.FileInfo;
      try {
        st = Deno.statSync(path);
      } catch {
        return false;
      }
      if (this.memo.get(path, st)?.sha !== sha) return false;
    }
    return true;
  }

  saveMemo(): void {
    this.memo?.save();
  }

  /**
   * The fingerprint of `entry` and everything it imports. Throws ConfigError at a dynamic
   * import with a computed specifier and at a local import of a file that does not exist.
   */
  async fingerprint(entry: string): Promise<CodeFingerprint> {
    const root = resolve(entry);
    const cached = this.#fpCache.get(root);
    if (cached) return cached;
    const files: Record<string, string> = {};
    const npm: Record<string, string> = {};
    const other = new Set<string>();
    const todo: { path: string; from?: LocalImport }[] = [{ path: root }];
    const seen = new Set<string>();
    while (todo.length) {
      const { path, from } = todo.pop()!;
      if (seen.has(path)) continue;
      seen.add(path);
      const edges = await this.#edges(path);
      if (!edges) {
        if (!from) throw new ConfigError(`module '${shown(path)}' does not exist`);
        throw new ConfigError(`imports '${from.spec}', which does not exist`, {
          file: shown(from.importer),
          line: from.line,
          col: from.col,
        });
      }
      files[edges.name] = edges.sha;
      for (const imp of edges.local) todo.push({ path: imp.target, from: imp });
      for (const [pkg, digest] of edges.npm) npm[pkg] = digest;
      for (const o of edges.other) other.add(o);
    }
    const fp = { files: sortRecord(files), npm: sortRecord(npm), other: [...other].sort() };
    this.#fpCache.set(root, fp);
    return fp;
  }

  /**
   * What a module contributes to a fingerprint: its name and hash, and its imports resolved
   * (local files, npm packages with their digests, anything else); computed once per process,
   * since every stage's walk passes the shared modules again. Undefined when it does not exist.
   */
  async #edges(path: string): Promise<ModuleEdges | undefined> {
    const cached = this.#edgeCache.get(path);
    if (cached) return cached;
    const row = await this.#scanFile(path);
    if (!row) return undefined;
    const { sha, imports, computed } = row;
    if (computed.length) {
      throw new ConfigError(
        "dynamic import with a computed specifier: the cache key cannot include the code it " +
          "loads; import a literal path, or name the module through the stage's modules()",
        { file: shown(path), ...computed[0] },
      );
    }
    const edges: ModuleEdges = {
      name: relative(this.root, path).split("\\").join("/"),
      sha,
      local: [],
      npm: [],
      other: [],
    };
    const dir = dirname(path);
    for (const { spec, line, col } of imports) {
      const at = { spec, importer: path, line, col };
      if (/^(\.\.?\/|\/|file:)/.test(spec)) {
        edges.local.push({
          ...at,
          target: spec.startsWith("file:") ? fromFileUrl(spec) : resolve(dir, spec),
        });
        continue;
      }
      if (spec.startsWith("node:")) continue;
      const mapped = this.#mapBare(spec);
      if (mapped.startsWith("npm:")) {
        const pkg = npmPackageOf(mapped);
        edges.npm.push([pkg, await this.#npmDigest(pkg)]);
      } else if (/^(\.\.?\/|\/|file:)/.test(mapped)) {
        const target = resolve(
          this.root,
          mapped.startsWith("file:") ? fromFileUrl(mapped) : mapped,
        );
        edges.local.push({ ...at, target });
      } else edges.other.push(mapped);
    }
    this.#edgeCache.set(path, edges);
    return edges;
  }

  /** The file's hash and imports; undefined when it does not exist. */
  async #scanFile(path: string): Promise<ScanRow | undefined> {
    let row = this.#fileCache.get(path);
    if (!row) {
      // Synchronous reads: a no-op rerun visits every module of every stage, one small file at
      // a time, and an async call's round trip costs more than the work.
      let st: Deno.FileInfo, bytes: Uint8Array<ArrayBuffer>;
      try {
        st = Deno.statSync(path);
        row = this.memo?.get(path, st);
        if (row) {
          this.#fileCache.set(path, row);
          return row;
        }
        bytes = Deno.readFileSync(path);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return undefined;
        throw e;
      }
      // The lexer is loaded only when a module changed: its WebAssembly loader starts Deno's
      // Node-compatibility layer (~20 ms), which a cached rerun must not pay (issue 16).
      const { scanSource } = await lazyImport<typeof import("./import_scan.ts")>(
        new URL("./import_scan.ts", import.meta.url),
      );
      row = {
        sha: await sha256Hex(bytes),
        ...scanSource(new TextDecoder().decode(bytes), shown(path)),
      };
      this.#fileCache.set(path, row);
      this.memo?.set(path, st, row);
    }
    return row;
  }

  #mapBare(spec: string): string {
    if (this.imports[spec]) return this.imports[spec];
    for (const [k, v] of Object.entries(this.imports)) {
      if (k.endsWith("/") && spec.startsWith(k)) return v + spec.slice(k.length);
    }
    const prefix = Object.keys(this.imports).find((k) => spec.startsWith(k + "/"));
    return prefix ? this.imports[prefix] + spec.slice(prefix.length) : spec;
  }

  /** Hash over the locked integrity of the package and, transitively, its dependencies. */
  async #npmDigest(pkg: string): Promise<string> {
    const cached = this.#npmCache.get(pkg);
    if (cached) return cached;
    const npm = this.lock.npm ?? {};
    const resolved = this.lock.specifiers?.[`npm:${pkg}`];
    const name = pkg.slice(0, pkg.lastIndexOf("@"));
    const first = resolved ? `${name}@${resolved}` : pkg;
    const integrities: string[] = [];
    const seen = new Set<string>();
    const stack = [first];
    while (stack.length) {
      const id = stack.pop()!;
      if (seen.has(id)) continue;
      seen.add(id);
      const entry = npm[id];
      if (!entry) {
        integrities.push(`unlocked:${id}`);
        continue;
      }
      integrities.push(`${id}=${entry.integrity ?? ""}`);
      for (const dep of entry.dependencies ?? []) stack.push(this.#lockId(dep));
    }
    const digest = await sha256Hex(integrities.sort().join("\n"));
    this.#npmCache.set(pkg, digest);
    return digest;
  }

  /** A lockfile dependency entry is "name" (one version locked) or "name@version". */
  #lockId(dep: string): string {
    const npm = this.lock.npm ?? {};
    if (npm[dep]) return dep;
    const hit = Object.keys(npm).find((k) => k.startsWith(`${dep}@`));
    return hit ?? dep;
  }
}

/** What `stageFingerprint` needs of a stage. */
export interface FingerprintedStage {
  /** The module that default-exports the Stage. */
  modulePath: string;
  /** Modules named by its params (`Stage.modules`), by param; `digest` is filled in here. */
  modules?: Record<string, { path: string; digest?: string }>;
}

/**
 * A stage's code fingerprint: its module's and those of the modules its params name, merged,
 * so that editing a plugin (or anything it imports) changes the stage's key like editing the
 * stage does. Sets each named module's `digest` to the hash of that module's own fingerprint,
 * which the stage sees as `ctx.modules[param].digest` and may record in its outputs.
 */
export async function stageFingerprint(
  resolver: ProjectResolver,
  stage: FingerprintedStage,
): Promise<CodeFingerprint> {
  const parts = [await resolver.fingerprint(stage.modulePath)];
  for (const m of Object.values(stage.modules ?? {})) {
    const fp = await resolver.fingerprint(m.path);
    m.digest = await hashJson(fp);
    parts.push(fp);
  }
  return {
    files: sortRecord(Object.assign({}, ...parts.map((p) => p.files))),
    npm: sortRecord(Object.assign({}, ...parts.map((p) => p.npm))),
    other: [...new Set(parts.flatMap((p) => p.other))].sort(),
  };
}

/** "npm:@scope/name@1.2.3/sub/path" -> "@scope/name@1.2.3". */
function npmPackageOf(spec: string): string {
  const rest = spec.slice(4);
  const parts = rest.split("/");
  return rest.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
}

function sortRecord<T>(r: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : 1)));
}

export { toFileUrl };
