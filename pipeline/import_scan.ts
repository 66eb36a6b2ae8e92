/**
 * Which modules a source file imports, read by a lexer (es-module-lexer) rather than `deno info`
 * or regexes: spawning Deno costs ~100 ms per call, which alone would exceed the no-op rerun
 * budget, and regexes were fooled by strings and regex literals (issue 17). The lexer tokenizes
 * the source (strings, comments, regex and template literals, nested `${}`), so none of them can
 * hide an import or fake one; tests/engine_fingerprint.test.ts checks it against `deno info` on
 * every module of the project. It reads JavaScript; the TypeScript syntax known to make it take
 * a regex literal for a division or the other way round is neutralized first (`lexable`).
 *
 * Speed, over the repo's 231 tracked .ts files (1.37 MB) on a loaded 2-core machine: 9,700 to
 * 11,200 files/s (~60 MB/s), against 5,300 to 8,300 files/s for the regex scanner it replaced
 * (git 2e2c890), plus ~1.5 ms once to compile the lexer's WebAssembly. Measured with
 * `deno eval 'import { scanSource } from "./pipeline/import_scan.ts";
 * const src = new TextDecoder().decode(new Deno.Command("git", { args: ["ls-files", "*.ts"] })
 * .outputSync().stdout).trim().split("\n").map((f) => Deno.readTextFileSync(f));
 * let n = 0; const t = performance.now();
 * while (performance.now() - t < 3000) for (const s of src) { scanSource(s); n++; }
 * console.log(Math.round(n / 3), "files/s");'`.
 */
import { ImportType, initSync, parse } from "es-module-lexer";
import { ConfigError } from "./errors.ts";
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
