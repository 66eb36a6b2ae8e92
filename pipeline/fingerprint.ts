/**
 * Code fingerprints: the hashes of a stage module and every local module it imports,
 * transitively (static imports, literal dynamic imports and worker modules named with
 * `new URL("./w.ts", import.meta.url)`; `import type` is skipped because it
 * cannot change behaviour), plus the locked integrity of every npm package reached.
 *
 * Imports are found with a scanner rather than `deno info`: spawning Deno costs ~100 ms per
 * call, which alone would exceed the no-op rerun budget.
 */
import { dirname, relative, resolve } from "node:path";
import { fromFileUrl, toFileUrl } from "./paths.ts";
import { sha256Hex } from "./canonical.ts";

export interface CodeFingerprint {
  /** Project-relative path -> sha256 of the file's bytes. */
  files: Record<string, string>;
  /** npm package (as locked) -> sha256 over its and its dependencies' integrities. */
  npm: Record<string, string>;
  /** Specifiers that are neither local nor locked npm (e.g. remote URLs), recorded as-is. */
  other: string[];
}

const STATIC_RE =
  /^[ \t]*(import|export)\s+(type\s+)?(?:[\w*${}\s,]*?\s*from\s*)?["']([^"'\n]+)["']/gm;
const DYNAMIC_RE = /\bimport\(\s*["']([^"'\n]+)["']\s*\)/g;
/** Modules loaded as workers: `new URL("./worker.ts", import.meta.url)`. */
const WORKER_RE =
  /\bnew URL\(\s*["']([^"'\n]+\.(?:ts|js|mts|mjs))["']\s*,\s*import\.meta\.url\s*\)/g;

/** Every import specifier in `source`, except type-only imports and those in comments. */
export function scanImports(source: string): string[] {
  source = stripComments(source);
  const out = new Set<string>();
  for (const m of source.matchAll(STATIC_RE)) if (!m[2]) out.add(m[3]);
  for (const m of source.matchAll(DYNAMIC_RE)) out.add(m[1]);
  for (const m of source.matchAll(WORKER_RE)) out.add(m[1]);
  return [...out];
}

/**
 * Blanks out comments, keeping strings (where "//" is common: URLs) and line structure.
 * Regex literals are not recognised; a "//" inside one only hides the rest of that line.
 */
export function stripComments(src: string): string {
  let out = "";
  let i = 0;
  while (i < src.length) {
    const c = src[i], n = src[i + 1];
    if (c === "/" && n === "/") {
      while (i < src.length && src[i] !== "\n") i++;
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

interface LockFile {
  specifiers?: Record<string, string>;
  npm?: Record<string, { integrity?: string; dependencies?: string[] }>;
}

/** Resolves bare specifiers and npm packages against a project's deno.json and deno.lock. */
export class ProjectResolver {
  #fileCache = new Map<string, { sha: string; imports: string[] }>();
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

  async fingerprint(entry: string): Promise<CodeFingerprint> {
    const files: Record<string, string> = {};
    const npm: Record<string, string> = {};
    const other = new Set<string>();
    const todo = [resolve(entry)];
    const seen = new Set<string>();
    while (todo.length) {
      const path = todo.pop()!;
      if (seen.has(path)) continue;
      seen.add(path);
      const { sha, imports } = await this.#scanFile(path);
      files[relative(this.root, path).split("\\").join("/")] = sha;
      for (const spec of imports) {
        if (/^(\.\.?\/|\/|file:)/.test(spec)) {
          todo.push(spec.startsWith("file:") ? fromFileUrl(spec) : resolve(dirname(path), spec));
          continue;
        }
        if (spec.startsWith("node:")) continue;
        const mapped = this.#mapBare(spec);
        if (mapped.startsWith("npm:")) {
          const pkg = npmPackageOf(mapped);
          npm[pkg] = this.#npmDigest(pkg);
        } else if (/^(\.\.?\/|\/|file:)/.test(mapped)) {
          todo.push(resolve(this.root, mapped.startsWith("file:") ? fromFileUrl(mapped) : mapped));
        } else other.add(mapped);
      }
    }
    return { files: sortRecord(files), npm: sortRecord(npm), other: [...other].sort() };
  }

  async #scanFile(path: string) {
    let row = this.#fileCache.get(path);
    if (!row) {
      let bytes: Uint8Array;
      try {
        bytes = await Deno.readFile(path);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
        // An import that does not resolve: the stage will fail to load; record the absence.
        return { sha: "missing", imports: [] };
      }
      row = { sha: sha256Hex(bytes), imports: scanImports(new TextDecoder().decode(bytes)) };
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
