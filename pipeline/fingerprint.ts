/**
 * Code fingerprints: the hashes of a stage module and every local module it imports,
 * transitively (static imports, literal dynamic imports and worker modules named with
 * `new URL("./w.ts", import.meta.url)`; `import type` is skipped because it
 * cannot change behaviour), plus the locked integrity of every npm package reached.
 * A stage's fingerprint also covers the modules its params name (`Stage.modules`).
 *
 * Imports are found with a scanner rather than `deno info`: spawning Deno costs ~100 ms per
 * call, which alone would exceed the no-op rerun budget. What the scanner cannot see is
 * refused rather than ignored: a dynamic import with a computed specifier (its code would be
 * missing from the key) and a local import of a file that does not exist.
 */
import { dirname, isAbsolute, relative, resolve } from "node:path";
import { fromFileUrl, toFileUrl } from "./paths.ts";
import { hashJson, sha256Hex } from "./canonical.ts";
import { ConfigError, type SourcePos } from "./errors.ts";

export interface CodeFingerprint {
  /** Project-relative path -> sha256 of the file's bytes. */
  files: Record<string, string>;
  /** npm package (as locked) -> sha256 over its and its dependencies' integrities. */
  npm: Record<string, string>;
  /** Specifiers that are neither local nor locked npm (e.g. remote URLs), recorded as-is. */
  other: string[];
}

/**
 * Comments that allow a computed `import(...)` on their line. Each is a promise by the
 * module's author that the key covers what the import loads some other way:
 * - `fingerprint: module named by params`: the path comes from `ctx.modules` (or the paths
 *   given to `refineParams`), whose code is part of the stage's fingerprint;
 * - `fingerprint: optional npm package`: a bare package name that may be absent (kept out of
 *   `deno check`); its presence must reach the key through a facet.
 */
export const COMPUTED_IMPORT_MARKERS = [
  "fingerprint: module named by params",
  "fingerprint: optional npm package",
] as const;

const STATIC_RE =
  /^[ \t]*(import|export)\s+(type\s+)?(?:[\w*${}\s,]*?\s*from\s*)?["']([^"'\n]+)["']/gm;
/** A dynamic import whose specifier is one string literal (a template without `${}` too). */
const LITERAL_DYNAMIC = String.raw`(?<![\w$.])import\s*\(\s*(?:"([^"\n]+)"|'([^'\n]+)'|` +
  "`([^`$\\n]+)`" + String.raw`)\s*\)`;
const DYNAMIC_RE = new RegExp(LITERAL_DYNAMIC, "g");
const DYNAMIC_AT = new RegExp(LITERAL_DYNAMIC, "y");
/** Any call of `import(`, literal or not (run on source whose strings are blanked). */
const ANY_DYNAMIC_RE = /(?<![\w$.])import\s*\(/g;
/** Modules loaded as workers: `new URL("./worker.ts", import.meta.url)`. */
const WORKER_RE =
  /\bnew URL\(\s*["']([^"'\n]+\.(?:ts|js|mts|mjs))["']\s*,\s*import\.meta\.url\s*\)/g;

/** An import specifier and where it is written (1-based line and column of its quote). */
export interface ImportSite {
  spec: string;
  line: number;
  col: number;
}

/** Every import specifier in `source`, except type-only imports and those in comments. */
export function scanImports(source: string): string[] {
  return [...new Set(scanSource(source).imports.map((i) => i.spec))];
}

/**
 * The imports of `source` with their positions, and the positions of dynamic imports whose
 * specifier is computed (`import(path)`, `import(\`./${x}.ts\`)`) unless their line carries
 * one of `COMPUTED_IMPORT_MARKERS` (looked for in the source as written, comments included).
 */
export function scanSource(source: string): {
  imports: ImportSite[];
  computed: { line: number; col: number }[];
} {
  const code = stripComments(source);
  const pos = positions(source);
  const imports: ImportSite[] = [];
  const at = (spec: string, index: number) => imports.push({ spec, ...pos(index) });
  for (const m of code.matchAll(STATIC_RE)) {
    if (!m[2]) at(m[3], m.index + m[0].length - m[3].length - 2);
  }
  for (const m of code.matchAll(DYNAMIC_RE)) {
    const spec = m[1] ?? m[2] ?? m[3];
    at(spec, m.index + m[0].lastIndexOf(spec) - 1);
  }
  for (const m of code.matchAll(WORKER_RE)) at(m[1], m.index + m[0].indexOf(m[1]) - 1);
  const computed: { line: number; col: number }[] = [];
  let blanked: string | undefined; // only built when needed: most files have no candidate
  for (const m of code.matchAll(ANY_DYNAMIC_RE)) {
    DYNAMIC_AT.lastIndex = m.index;
    if (DYNAMIC_AT.test(code)) continue;
    blanked ??= blankStrings(code);
    if (!blanked.startsWith("import", m.index)) continue; // inside a string
    const p = pos(m.index);
    const end = source.indexOf("\n", m.index);
    const line = source.slice(source.lastIndexOf("\n", m.index) + 1, end < 0 ? undefined : end);
    if (COMPUTED_IMPORT_MARKERS.some((k) => line.includes(k))) continue;
    computed.push(p);
  }
  imports.sort((a, b) => a.line - b.line || a.col - b.col);
  return { imports, computed };
}

/** Index -> 1-based line and column. */
function positions(src: string): (index: number) => { line: number; col: number } {
  const starts = [0];
  for (let i = src.indexOf("\n"); i >= 0; i = src.indexOf("\n", i + 1)) starts.push(i + 1);
  return (index) => {
    let lo = 0, hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid] <= index) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, col: index - starts[lo] + 1 };
  };
}

/**
 * Blanks out comments, keeping strings (where "//" is common: URLs), line structure and
 * every other character's position. Regex literals are not recognised; a "//" inside one
 * only hides the rest of that line.
 */
export function stripComments(src: string): string {
  let out = "";
  let i = 0;
  while (i < src.length) {
    const c = src[i], n = src[i + 1];
    if (c === "/" && n === "/") {
      const end = src.indexOf("\n", i);
      const stop = end < 0 ? src.length : end;
      out += " ".repeat(stop - i);
      i = stop;
    } else if (c === "/" && n === "*") {
      const end = src.indexOf("*/", i + 2);
      const stop = end < 0 ? src.length : end + 2;
      out += src.slice(i, stop).replace(/[^\n]/g, " ");
      i = stop;
    } else if (c === '"' || c === "'" || c === "`") {
      let j = i + 1;
      while (j < src.length && src[j] !== c) j += src[j] === "\\" ? 2 : 1;
      out += src.slice(i, j + 1);
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** Replaces what is inside string literals by spaces (same length, lines kept). */
function blankStrings(src: string): string {
  let out = "";
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (c === '"' || c === "'" || c === "`") {
      let j = i + 1;
      while (j < src.length && src[j] !== c) j += src[j] === "\\" ? 2 : 1;
      out += c + src.slice(i + 1, j).replace(/[^\n]/g, " ") + (j < src.length ? c : "");
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out.slice(0, src.length);
}

/** How a file is named in an error: relative to the working folder when below it. */
function shown(path: string): string {
  const rel = relative(Deno.cwd(), path);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : path;
}

interface LockFile {
  specifiers?: Record<string, string>;
  npm?: Record<string, { integrity?: string; dependencies?: string[] }>;
}

/** Resolves bare specifiers and npm packages against a project's deno.json and deno.lock. */
export class ProjectResolver {
  #fileCache = new Map<string, { sha: string } & ReturnType<typeof scanSource>>();
  /** Per entry; like the file cache, it assumes no code changes while the process runs. */
  #fpCache = new Map<string, CodeFingerprint>();
  #npmCache = new Map<string, string>();

  private constructor(
    readonly root: string,
    private imports: Record<string, string>,
    private lock: LockFile,
  ) {}

  static async load(root: string): Promise<ProjectResolver> {
    const cfg = JSON.parse(await Deno.readTextFile(resolve(root, "deno.json")));
    let lock: LockFile = {};
    try {
      lock = JSON.parse(await Deno.readTextFile(resolve(root, "deno.lock")));
    } catch {
      // No lockfile: npm versions are then only what the import map says.
    }
    return new ProjectResolver(root, cfg.imports ?? {}, lock);
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
    const todo: { path: string; from?: SourcePos & { spec: string } }[] = [{ path: root }];
    const seen = new Set<string>();
    while (todo.length) {
      const { path, from } = todo.pop()!;
      if (seen.has(path)) continue;
      seen.add(path);
      const row = await this.#scanFile(path);
      if (!row) {
        if (!from) throw new ConfigError(`module '${shown(path)}' does not exist`);
        const { spec, ...pos } = from;
        throw new ConfigError(`imports '${spec}', which does not exist`, pos);
      }
      const { sha, imports, computed } = row;
      if (computed.length) {
        throw new ConfigError(
          "dynamic import with a computed specifier: the cache key cannot include the code it " +
            "loads; import a literal path, or name the module through the stage's modules()",
          { file: shown(path), ...computed[0] },
        );
      }
      files[relative(this.root, path).split("\\").join("/")] = sha;
      for (const { spec, line, col } of imports) {
        const from = { spec, file: shown(path), line, col };
        if (/^(\.\.?\/|\/|file:)/.test(spec)) {
          const target = spec.startsWith("file:")
            ? fromFileUrl(spec)
            : resolve(dirname(path), spec);
          todo.push({ path: target, from });
          continue;
        }
        if (spec.startsWith("node:")) continue;
        const mapped = this.#mapBare(spec);
        if (mapped.startsWith("npm:")) {
          const pkg = npmPackageOf(mapped);
          npm[pkg] = this.#npmDigest(pkg);
        } else if (/^(\.\.?\/|\/|file:)/.test(mapped)) {
          const target = resolve(
            this.root,
            mapped.startsWith("file:") ? fromFileUrl(mapped) : mapped,
          );
          todo.push({ path: target, from });
        } else other.add(mapped);
      }
    }
    const fp = { files: sortRecord(files), npm: sortRecord(npm), other: [...other].sort() };
    this.#fpCache.set(root, fp);
    return fp;
  }

  /** The file's hash and imports; undefined when it does not exist. */
  async #scanFile(path: string) {
    let row = this.#fileCache.get(path);
    if (!row) {
      let bytes: Uint8Array;
      try {
        bytes = await Deno.readFile(path);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return undefined;
        throw e;
      }
      row = { sha: sha256Hex(bytes), ...scanSource(new TextDecoder().decode(bytes)) };
      this.#fileCache.set(path, row);
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
  #npmDigest(pkg: string): string {
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
    const digest = sha256Hex(integrities.sort().join("\n"));
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
    m.digest = hashJson(fp);
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
