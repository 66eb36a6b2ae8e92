/**
 * Code fingerprints: the hashes of a stage module and every local module it imports,
 * transitively (static imports, literal dynamic imports and worker modules named with
 * `new URL("./w.ts", import.meta.url)`; `import type` is skipped because it
 * cannot change behaviour), plus the locked integrity of every npm package reached.
 * A stage's fingerprint also covers the modules its params name (`Stage.modules`).
 *
 * Imports are found with a lexer (es-module-lexer) rather than `deno info`: spawning Deno costs
 * ~100 ms per call, which alone would exceed the no-op rerun budget. The lexer tokenizes the
 * source (strings, comments, regex and template literals, nested `${}`), so none of them can
 * hide an import or fake one; tests/engine_fingerprint.test.ts checks it against `deno info`
 * on every module of the project. It reads JavaScript; the TypeScript syntax known to make it
 * take a regex literal for a division or the other way round is neutralized first (`lexable`).
 * What the scanner cannot see is refused rather than ignored: a module the lexer cannot parse,
 * a dynamic import with a computed specifier (its code would be missing from the key) and a
 * local import of a file that does not exist.
 *
 * Speed, over the repo's 231 tracked .ts files (1.37 MB) on a loaded 2-core machine: 9,700 to
 * 11,200 files/s (~60 MB/s), against 5,300 to 8,300 files/s for the regex scanner it replaced
 * (git 2e2c890), plus ~1.5 ms once to compile the lexer's WebAssembly. Measured with
 * `deno eval 'import { scanSource } from "./pipeline/fingerprint.ts";
 * const src = new TextDecoder().decode(new Deno.Command("git", { args: ["ls-files", "*.ts"] })
 * .outputSync().stdout).trim().split("\n").map((f) => Deno.readTextFileSync(f));
 * let n = 0; const t = performance.now();
 * while (performance.now() - t < 3000) for (const s of src) { scanSource(s); n++; }
 * console.log(Math.round(n / 3), "files/s");'`.
 */
import { dirname, isAbsolute, relative, resolve } from "node:path";
import { ImportType, initSync, parse } from "es-module-lexer";
import { fromFileUrl, toFileUrl } from "./paths.ts";
import { hashJson, sha256Hex } from "./canonical.ts";
import { ConfigError } from "./errors.ts";
import type { ScanMemo } from "./scan_memo.ts";

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

initSync(); // compiles the lexer's WebAssembly (~1 ms), so that scanning stays synchronous

/** An import specifier and where it is written (1-based line and column of its quote). */
export interface ImportSite {
  spec: string;
  line: number;
  col: number;
}

/** `import type {…}`, `import type * as…`, `import type X from` (not a default named `type`). */
const TYPE_ONLY = /^import\s+type(?:\s*[{*]|\s+(?!from\s*["'])[\w$]+\s+from\b)/;
/** What comes before `import.meta` in `new URL("./w.ts", import.meta.url)`, a module's path. */
const WORKER_BEFORE = /new\s+URL\(\s*(?:"([^"\n]+)"|'([^'\n]+)'|`([^`$\\\n]+)`)\s*,\s*$/;
const WORKER_AFTER = /\s*\.\s*url\s*,?\s*\)/y;
const CODE_FILE = /\.(?:ts|js|mts|mjs)$/;
/** A non-null assertion before a division, `n! / 2` (see `lexable`); group 1 is what it follows. */
const NON_NULL_DIVISION = /([\w$]+|[)\]])(!+)(?=\s*(?:\/\*[^]*?\*\/\s*)*\/(?![/*]))/g;
/** A `}` that ends a line, when the next line that is not blank starts with a `/`. */
const BLOCK_END_BEFORE_SLASH = /\}(?=[ \t]*\r?\n\s*\/(?![/*]))/g;
/** Words after which `!` is the prefix operator, as in `return!/x/.test(s)`. */
const PREFIX_AFTER = new Set(
  "return typeof void delete throw case do else in of instanceof yield await".split(" "),
);

/** Every import specifier in `source`, except type-only imports and those in comments. */
export function scanImports(source: string): string[] {
  return [...new Set(scanSource(source).imports.map((i) => i.spec))];
}

/**
 * The imports of `source` with their positions, and the positions of dynamic imports whose
 * specifier is computed (`import(path)`, `import(\`./${x}.ts\`)`) unless their line carries
 * one of `COMPUTED_IMPORT_MARKERS` (looked for in the source as written, comments included).
 *
 * The source is tokenized by es-module-lexer, so strings, comments, regex and template
 * literals cannot hide an import or fake one. Where it cannot parse the source, this throws a
 * ConfigError at the place (`file` names the source in it): imports it could not see would be
 * missing from the key.
 */
export function scanSource(source: string, file = "<source>"): {
  imports: ImportSite[];
  computed: { line: number; col: number }[];
} {
  const { code, orig } = lexable(source);
  const pos = positions(source);
  let found: ReturnType<typeof parse>[0];
  try {
    [found] = parse(code, file);
  } catch (e) {
    const idx = (e as { idx?: unknown }).idx;
    throw new ConfigError(
      `cannot scan this module for its imports (es-module-lexer: ${(e as Error).message}), ` +
        "so the cache key would miss what it imports; if Deno runs it, TypeScript syntax " +
        "fooled the lexer, e.g. a regex literal starting a line after a type annotation: " +
        "put a ';' before that regex",
      { file, ...pos(typeof idx === "number" ? Math.min(orig(idx), source.length) : 0) },
    );
  }
  const imports: ImportSite[] = [];
  const computed: { line: number; col: number }[] = [];
  for (const lexed of found) {
    // Offsets in `source`; the lexer's are in `code`.
    const s = orig(lexed.s), e = orig(lexed.e), ss = orig(lexed.ss), se = orig(lexed.se);
    if (lexed.t === ImportType.ImportMeta) {
      const m = WORKER_BEFORE.exec(source.slice(Math.max(0, s - 400), s));
      WORKER_AFTER.lastIndex = e;
      const spec = m && (m[1] ?? m[2] ?? m[3]);
      if (spec && CODE_FILE.test(spec) && WORKER_AFTER.test(source)) {
        imports.push({ spec, ...pos(s - m[0].length + m[0].indexOf(spec) - 1) });
      }
      continue;
    }
    // Where `code` differs from `source` in the specifier, the import is lexed again as written.
    const again = source.slice(s, e) === code.slice(lexed.s, lexed.e) ? undefined : [ss, se];
    const spec = specifierOf(lexed.n, source, s, e, again);
    if (lexed.d === -1) { // static: import, export from, import source / defer
      if (TYPE_ONLY.test(source.slice(ss, s))) continue;
      imports.push({ spec: spec ?? source.slice(s, e), ...pos(s - 1) }); // n: always set
    } else if (spec !== undefined) { // dynamic: import(), import.source(), import.defer()
      imports.push({ spec, ...pos(s) });
    } else {
      const start = source.lastIndexOf("\n", ss) + 1;
      const end = source.indexOf("\n", ss);
      const line = source.slice(start, end < 0 ? undefined : end);
      if (COMPUTED_IMPORT_MARKERS.some((k) => line.includes(k))) continue;
      computed.push(pos(ss));
    }
  }
  imports.sort((a, b) => a.line - b.line || a.col - b.col);
  computed.sort((a, b) => a.line - b.line || a.col - b.col);
  return { imports, computed };
}

/**
 * The specifier of a static import, or of a dynamic one whose argument is a string literal or
 * a template literal without `${}`; undefined for a computed one. `n` is the lexer's reading,
 * `s`..`e` the specifier (a dynamic import's argument) in `source`; `again`, the import's
 * extent in `source` when that is to be lexed again.
 */
function specifierOf(
  n: string | undefined,
  source: string,
  s: number,
  e: number,
  again?: number[],
): string | undefined {
  if (n !== undefined) {
    if (!again) return n;
    try {
      return parse(source.slice(again[0], again[1]))[0][0]?.n ?? n;
    } catch {
      return n;
    }
  }
  // A template: \`./a.ts\` alone, or before options (then the lexer's span takes them in too).
  return /^`([^`$\\]*)`\s*(?:,|$)/.exec(source.slice(s, e))?.[1];
}

/**
 * `source` made lexable for es-module-lexer, a JavaScript lexer, where TypeScript syntax
 * would make it take a regex literal for a division or the other way round:
 * - the `!` of a non-null assertion before a `/` becomes a space (`n! / 2`: not a regex);
 * - a `;` is inserted after a `}` that ends a line before one starting with a `/` (a return
 *   type makes it take a function body's `{` for an object literal: `function f(): void {`
 *   ... `}` then `/x/.test(s)` on the next line; a division there is no real code's).
 * Neither changes what a string, comment, regex or template literal holds in a way that
 * matters to the lexer. `orig` maps an offset in `code` back to one in `source`.
 */
function lexable(source: string): { code: string; orig: (at: number) => number } {
  let code = source;
  if (code.includes("!")) {
    code = code.replace(
      NON_NULL_DIVISION,
      (all: string, before: string, bangs: string, at: number) => {
        if (PREFIX_AFTER.has(before) && source[at - 1] !== ".") return all;
        return before + " ".repeat(bangs.length);
      },
    );
  }
  const inserted: number[] = []; // offsets in `code` of the inserted `;`
  code = code.replace(BLOCK_END_BEFORE_SLASH, (_: string, at: number) => {
    inserted.push(at + 1 + inserted.length);
    return "};";
  });
  if (!inserted.length) return { code, orig: (at) => at };
  return {
    code,
    orig(at) {
      let lo = 0, hi = inserted.length; // how many were inserted before `at`
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (inserted[mid] < at) lo = mid + 1;
        else hi = mid;
      }
      return at - lo;
    },
  };
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
  #fileCache = new Map<string, { sha: string } & ReturnType<typeof scanSource>>();
  /** Per entry; like the file cache, it assumes no code changes while the process runs. */
  #fpCache = new Map<string, CodeFingerprint>();
  #edgeCache = new Map<string, ModuleEdges>();
  #npmCache = new Map<string, string>();

  private constructor(
    readonly root: string,
    private imports: Record<string, string>,
    private lock: LockFile,
    private memo?: ScanMemo,
  ) {}

  /** `memo`: scans kept across processes (scan_memo.ts); call `saveMemo()` when done. */
  static async load(root: string, memo?: ScanMemo): Promise<ProjectResolver> {
    const cfg = JSON.parse(await Deno.readTextFile(resolve(root, "deno.json")));
    let lock: LockFile = {};
    try {
      lock = JSON.parse(await Deno.readTextFile(resolve(root, "deno.lock")));
    } catch {
      // No lockfile: npm versions are then only what the import map says.
    }
    return new ProjectResolver(root, cfg.imports ?? {}, lock, memo);
  }

  saveMemo(): void {
    this.memo?.save();
  }

  /**
   * The fingerprint of `entry` and everything it imports. Throws ConfigError at a dynamic
   * import with a computed specifier and at a local import of a file that does not exist.
   */
  // Async although nothing in it awaits now (reads are synchronous): errors stay rejections.
  // deno-lint-ignore require-await
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
      const edges = this.#edges(path);
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
  #edges(path: string): ModuleEdges | undefined {
    const cached = this.#edgeCache.get(path);
    if (cached) return cached;
    const row = this.#scanFile(path);
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
        edges.npm.push([pkg, this.#npmDigest(pkg)]);
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
  #scanFile(path: string) {
    let row = this.#fileCache.get(path);
    if (!row) {
      // Synchronous: a no-op rerun visits every module of every stage, one small file at a
      // time, and an async call's round trip costs more than the work.
      let st: Deno.FileInfo, bytes: Uint8Array;
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
      row = {
        sha: sha256Hex(bytes),
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
