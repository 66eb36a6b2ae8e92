/**
 * The import scanner behind code fingerprints (pipeline/import_scan.ts): what it must find
 * (static, re-export, literal dynamic imports, worker modules), what it must not (comments,
 * strings, regex and template literals, type-only imports), checked on a corpus of tricky
 * files, against Deno's own parser (`deno info`), on generated sources, and end to end: a
 * stage reruns when a module its code imports changes.
 */
import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import fc from "fast-check";
import { ConfigError } from "../pipeline/errors.ts";
import { ProjectResolver } from "../pipeline/fingerprint.ts";
import { type ImportSite, scanSource } from "../pipeline/import_scan.ts";
import { lastRecord, ROOT, sandbox } from "./helpers/cli.ts";

const FIXTURES = join(ROOT, "tests", "fixtures", "fingerprint");

// The bug this scanner replaces: "//" in the regex hid the rest of the line from the old
// comment stripper, so helper2.ts was not part of the fingerprint.
const HELPER = 'export const clean = (s: string) => s.replace(/\\/\\//g, "/"); ' +
  'export const { mark } = await import("./helper2.ts");\n';

Deno.test("a regex literal with // does not hide the dynamic import after it on its line", async () => {
  const col = HELPER.indexOf('"./helper2.ts"') + 1;
  assert.deepEqual(scanSource(HELPER).imports, [{ spec: "./helper2.ts", line: 1, col }]);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "deno.json"), "{}");
    await Deno.writeTextFile(join(dir, "main.ts"), 'import { mark } from "./helper.ts";\n');
    await Deno.writeTextFile(join(dir, "helper.ts"), HELPER);
    await Deno.writeTextFile(join(dir, "helper2.ts"), 'export const mark = "!";\n');
    const before = await (await ProjectResolver.load(dir)).fingerprint(join(dir, "main.ts"));
    assert.deepEqual(Object.keys(before.files), ["helper.ts", "helper2.ts", "main.ts"]);
    await Deno.writeTextFile(join(dir, "helper2.ts"), 'export const mark = "?";\n');
    const after = await (await ProjectResolver.load(dir)).fingerprint(join(dir, "main.ts"));
    assert.notEqual(after.files["helper2.ts"], before.files["helper2.ts"]);
    assert.equal(after.files["helper.ts"], before.files["helper.ts"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const PLUGIN = `import { shout } from "./helper.ts";
export default (p: Record<string, unknown>) => shout(String(p.word ?? "hi")).repeat(2);
`;
const EXP = `name: fp
stages:
  p:
    kind: $STAGES/plugin.ts
    params:
      plugin: ./sims/upper.ts
`;

function outcomes(stdout: string): Record<string, string> {
  const table: Record<string, string> = {};
  for (const m of stdout.matchAll(/^ {2}([\w[\]=,./-]+)\s+(ran|cached|failed|not-run)\b/gm)) {
    table[m[1]] = m[2];
  }
  return table;
}

async function result(store: string): Promise<string> {
  const key = (await lastRecord(store, "fp")).stages.p.key;
  return await Deno.readTextFile(join(store, "entries", key, "out", "result.txt"));
}

Deno.test("editing a module imported after a regex with // reruns the stage (status and run)", async () => {
  await using sb = await sandbox();
  await sb.write("exp/sims/upper.ts", PLUGIN);
  await sb.write(
    "exp/sims/helper.ts",
    HELPER + "export const shout = (s: string) => clean(s).toUpperCase() + mark;\n",
  );
  await sb.write("exp/sims/helper2.ts", 'export const mark = "!";\n');
  const f = await sb.write("exp/exp.yaml", EXP);
  const first = await sb.run("run", f);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(await result(sb.store), "HI!HI!");
  assert.deepEqual(outcomes((await sb.run("run", f)).stdout), { p: "cached" });

  await sb.write("exp/sims/helper2.ts", 'export const mark = "?";\n');
  const st = await sb.run("status", f);
  assert.equal(st.code, 0, st.stderr);
  assert.match(st.stdout, /p\s+run\s+code: \S*exp\/sims\/helper2\.ts\n/);
  const again = await sb.run("run", f);
  assert.deepEqual(outcomes(again.stdout), { p: "ran" }, again.stdout + again.stderr);
  assert.equal(await result(sb.store), "HI?HI?");
});

// Runs under Deno, but es-module-lexer takes the regex for a division after `string[]`.
const UNLEXABLE = 'export const mark = "!";\nlet a: string[]\n/"/.test(mark);\n';

Deno.test("a module the lexer cannot parse is a ConfigError at the place, never a silent miss", async () => {
  assert.throws(
    () => scanSource(UNLEXABLE, "sims/helper2.ts"),
    (e) =>
      e instanceof ConfigError &&
      String(e).startsWith("sims/helper2.ts:3:16: error: cannot scan this module") &&
      e.message.includes("es-module-lexer: Parse error"),
  );
  // Through the CLI: exit 2, one `file:line:col: error:` line (and its source excerpt, indented),
  // nothing written.
  await using sb = await sandbox();
  await sb.write("exp/sims/upper.ts", PLUGIN);
  await sb.write(
    "exp/sims/helper.ts",
    'import { mark } from "./helper2.ts";\nexport const shout = (s: string) => s + mark;\n',
  );
  await sb.write("exp/sims/helper2.ts", UNLEXABLE);
  const f = await sb.write("exp/exp.yaml", EXP);
  const r = await sb.run("run", f);
  assert.equal(r.code, 2, r.stderr);
  const lines = r.stderr.trimEnd().split("\n").filter((l) => !l.startsWith(" "));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^exp\/sims\/helper2\.ts:3:16: error: cannot scan this module .*lexer/);
  assert.match(r.stderr, /\n 3 \| .*\n {3}\| {16}\^/, "the line and a caret under column 16");
  const entries = await Array.fromAsync(Deno.readDir(join(sb.store, "entries"))).catch(() => []);
  assert.deepEqual(entries, []);
});

interface Expected {
  /** The specifiers found, in source order. */
  imports: string[];
  /** "line:col" of each computed dynamic import (its `import` keyword). */
  computed: string[];
}

async function fixtureFiles(): Promise<string[]> {
  const names = (await Array.fromAsync(Deno.readDir(FIXTURES)))
    .filter((e) => e.isFile && e.name.endsWith(".ts")).map((e) => e.name).sort();
  assert.ok(names.length >= 9, names.join());
  return names;
}

Deno.test("the fixture corpus: each file's imports, positions and computed imports", async () => {
  const expected: Record<string, Expected> = JSON.parse(
    await Deno.readTextFile(join(FIXTURES, "expected.json")),
  );
  const names = await fixtureFiles();
  assert.deepEqual(Object.keys(expected).sort(), names, "every fixture has its expectations");
  for (const name of names) {
    const src = await Deno.readTextFile(join(FIXTURES, name));
    const { imports, computed } = scanSource(src, name);
    assert.deepEqual(imports.map((i) => i.spec), expected[name].imports, name);
    assert.deepEqual(computed.map((c) => `${c.line}:${c.col}`), expected[name].computed, name);
    // Each position is the specifier's opening quote, found here without the scanner.
    const lines = src.split("\n");
    for (const i of imports) {
      const at = lines[i.line - 1].slice(i.col - 1);
      assert.ok([`"`, `'`, "`"].some((q) => at.startsWith(q + i.spec + q)), `${name}: ${at}`);
    }
    assert.ok(!imports.some((i) => i.spec.includes("never")), `${name}: a decoy was taken`);
  }
});

interface InfoDependency {
  specifier: string;
  code?: { span: { start: { line: number; character: number } } };
  type?: unknown;
}

async function tsFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory && e.name !== "node_modules") out.push(...await tsFiles(p));
    else if (e.isFile && e.name.endsWith(".ts")) out.push(p);
  }
  return out;
}

/** A worker module (`new URL("./w.ts", import.meta.url)`): no import to Deno, code to us. */
function isWorkerSite(lines: string[], i: ImportSite): boolean {
  const before = [...lines.slice(0, i.line - 1), lines[i.line - 1].slice(0, i.col - 1)];
  return /new\s+URL\(\s*$/.test(before.join("\n"));
}

Deno.test("scanSource agrees with deno info on every module of pipeline/, stages/, cli/, report/ and the corpus", async () => {
  const files = [
    ...(await Promise.all(
      ["pipeline", "stages", "cli", "report"].map((d) => tsFiles(join(ROOT, d))),
    )).flat(),
    ...(await fixtureFiles()).map((n) => join(FIXTURES, n)),
  ].sort();
  assert.ok(files.length > 100, `${files.length} files`);
  // One `deno info` over an entry importing them all: its "modules" list every module's
  // direct dependencies, as Deno's parser sees them.
  const dir = await Deno.makeTempDir();
  let info: { modules: { specifier: string; dependencies?: InfoDependency[] }[] };
  try {
    const entry = join(dir, "entry.ts");
    await Deno.writeTextFile(
      entry,
      files.map((f) => `import ${JSON.stringify(pathToFileURL(f).href)};\n`).join(""),
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", `--config=${join(ROOT, "deno.json")}`, entry],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    info = JSON.parse(new TextDecoder().decode(out.stdout));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const bySpecifier = new Map(info.modules.map((m) => [m.specifier, m]));
  let compared = 0, localImports = 0;
  for (const file of files) {
    const name = relative(ROOT, file);
    const mod = bySpecifier.get(pathToFileURL(file).href);
    assert.ok(mod, `deno info lists ${name}`);
    const src = await Deno.readTextFile(file);
    const lines = src.split("\n");
    const { imports } = scanSource(src, name);
    // `typeof import("x")` is counted though it may be a type only: the safe side.
    const typeQuery = (i: ImportSite) =>
      /typeof\s+import\s*\(\s*$/.test(lines[i.line - 1].slice(0, i.col - 1));
    const ours = imports.filter((i) => !isWorkerSite(lines, i) && !typeQuery(i));
    const deps = mod.dependencies ?? [];
    const code = deps.filter((d) => d.code);
    const local = (s: string) => /^\.\.?\//.test(s);
    assert.deepEqual(
      [...new Set(ours.map((i) => i.spec).filter(local))].sort(),
      code.map((d) => d.specifier).filter(local).sort(),
      `${name}: local imports`,
    );
    assert.deepEqual(
      [...new Set(ours.map((i) => i.spec))].sort(),
      code.map((d) => d.specifier).sort(),
      `${name}: all imports`,
    );
    // Deno gives one position per specifier (0-based): one of ours is there.
    for (const d of code) {
      const { line, character } = d.code!.span.start;
      assert.ok(
        ours.some((i) => i.spec === d.specifier && i.line === line + 1 && i.col === character + 1),
        `${name}: ${d.specifier} at ${line + 1}:${character + 1}`,
      );
    }
    // Type-only dependencies are left out (but a `typeof import(...)`).
    for (const d of deps.filter((d) => d.type && !d.code)) {
      assert.ok(!ours.some((i) => i.spec === d.specifier), `${name}: type-only ${d.specifier}`);
    }
    compared++;
    localImports += code.filter((d) => local(d.specifier)).length;
  }
  assert.equal(compared, files.length);
  assert.ok(localImports > 300, `${localImports} local imports compared`);
});

// ---- Generated sources: real imports among strings, regexes, comments, templates, types.

/** A piece of source; `sites` and `computed` are offsets of quotes / `import` keywords. */
interface Piece {
  text: string;
  sites: { spec: string; at: number }[];
  computed: number[];
}

type Make = (n: number) => Piece;

/** A Make that fast-check shows, in a counterexample, as the text it makes for n = 0. */
function shown(make: Make): Make {
  return Object.assign(make, { [fc.toStringMethod]: () => JSON.stringify(make(0).text) });
}

/** A piece with one import of `spec` written as `before + q + spec + q + after`. */
function site(before: string, spec: string, q: string, after: string): Piece {
  return {
    text: before + q + spec + q + after,
    sites: [{ spec, at: before.length }],
    computed: [],
  };
}

const quote = fc.constantFrom('"', "'");
const anyQuote = fc.constantFrom('"', "'", "`");

const realImport: fc.Arbitrary<Make> = fc.oneof(
  fc.tuple(
    quote,
    fc.constantFrom(
      "import ",
      "import a$N from ",
      "import { x as y$N } from ",
      "import * as ns$N from ",
      "import d$N, { e$N } from ",
      "import {\n  a$N,\n  b$N,\n} from ",
      "import { type T$N, v$N } from ",
      "export * from ",
      "export { z$N } from ",
      "export * as ex$N from ",
      "const s$N = 1; import { late$N } from ",
    ),
  ).map(([q, head]) => (n: number) => site(head.replaceAll("$N", `${n}`), `./m${n}.ts`, q, ";\n")),
  fc.tuple(
    anyQuote,
    fc.constantFrom(
      ["await import(", ");"],
      ["const l$N = () => import(\n  ", "\n);"],
      ["const t$N = `pre ${(await import(", ")).v} post`;"],
      ["const r$N = /\\/\\//g; await import(", ");"],
      ["const r$N = /\\/*/; const h$N = import(", ");"],
      ["const k$N = !/\\/\\//.test(x) && import(", ", { with: {} });"],
      // A return type, then a regex starting the next line (see `lexable`).
      ["function f$N(): void {}\n/a\\/*b/.test(s) && import(", "); /* c */"],
      ["function f$N(): Promise<void> {\n  return p;\n}\n/\\/\\//.test(s) && import(", ");"],
      ["function f$N(): string[] {\n  return [];\n}\n\n/'/.test(s) && import(", ");"],
      ['function f$N(): { a: number } {\n  return { a: 1 };\n}\n/"/.test(s) && import(', ");"],
    ),
  ).map(([q, [before, after]]) => (n: number) =>
    site(before.replaceAll("$N", `${n}`), `./m${n}.ts`, q, after + "\n")
  ),
  quote.map((q) => (n: number) =>
    site(`const w${n} = new URL(`, `./m${n}.ts`, q, ", import.meta.url);\n")
  ),
).map(shown);

const computedImport: fc.Arbitrary<Make> = fc.constantFrom(
  "await import(p$N);\n",
  "const c$N = import(`./m${p$N}.ts`);\n",
  'import("./" + p$N);\n',
  "const c$N = () => import (\n  p$N,\n);\n",
).map((t) => (n: number) => {
  const text = t.replaceAll("$N", `${n}`);
  return { text, sites: [], computed: [text.indexOf("import")] };
}).map(shown);

/** Text that must yield nothing: each may contain a decoy `./never$N.ts`. */
const STRING_PARTS = [
  "//",
  "/*",
  "*/",
  'import("./never$N.ts")',
  "import './never$N.ts'",
  "${",
  "}",
  "`",
  "\\\\",
  "a b",
];
const REGEX_PARTS = [
  "\\/\\/",
  "\\/*",
  "[/]",
  '"',
  "'",
  "`",
  'import\\("\\.\\/never$N\\.ts"\\)',
  "a*",
  "\\*\\/",
  "x",
];
const COMMENT_PARTS = ['import "./never$N.ts";', 'import("./never$N.ts")', '"', "'", "`", "//"];

const noise: fc.Arbitrary<Make> = fc.oneof(
  fc.tuple(anyQuote, fc.array(fc.constantFrom(...STRING_PARTS, "QUOTE"), { maxLength: 6 })).map(
    ([q, parts]) => (n: number) => {
      const esc = (p: string) =>
        p === "QUOTE"
          ? `\\${q}`
          : p.replaceAll(q, `\\${q}`).replaceAll(q === "`" ? "${" : "\0", "\\${");
      return none(`const s${n} = ${q}${parts.map(esc).join("")}${q};\n`, n);
    },
  ),
  fc.tuple(
    fc.array(fc.constantFrom(...REGEX_PARTS), { minLength: 1, maxLength: 5 }),
    fc.constantFrom("", "g", "gu"),
  ).map(([parts, flags]) => (n: number) => none(`const r${n} = /${parts.join("")}/${flags};\n`, n)),
  fc.array(fc.constantFrom(...COMMENT_PARTS, "*/"), { maxLength: 4 }).map((parts) => (n: number) =>
    none(`// ${parts.join(" ")}\n`, n)
  ),
  fc.array(fc.constantFrom(...COMMENT_PARTS, "\n", "/*"), { maxLength: 4 }).map(
    (parts) => (n: number) => none(`/* ${parts.join(" ")} */ `, n),
  ),
  fc.tuple(
    fc.array(fc.constantFrom("//", "/*", 'import("./never$N.ts")', "\\`", "'", '"', "\n"), {
      maxLength: 4,
    }),
    fc.constantFrom('"}"', "'`'", '{ a: "}" }.a', '`x ${"}"} ${`y`}`', "1 / 2", "/`/.source"),
  ).map(([parts, inner]) => (n: number) =>
    none(`const t${n} = \`${parts.join("")}\${${inner}}${parts.join("")}\`;\n`, n)
  ),
  fc.constantFrom(
    'import type { T$N } from "./never$N.ts";\n',
    "import type * as N$N from './never$N.ts';\n",
    'import type D$N from "./never$N.ts";\n',
    'export type { T$N } from "./never$N.ts";\n',
    'export type * from "./never$N.ts";\n',
    "const d$N = a / b / 2;\n",
    'const e$N = m.get(k)! / 2; const q$N = "\'";\n',
    "const f$N = (x as number[])[0]! / 2; const q$N = '\"';\n",
    'obj.import(p$N); const u$N = "import(p)";\n',
    "await import(p$N); // fingerprint: module named by params\n",
  ).map((t) => (n: number) => none(t, n)),
).map(shown);

function none(template: string, n: number): Piece {
  return { text: template.replaceAll("$N", `${n}`), sites: [], computed: [] };
}

/** A module of pieces, with the import sites and computed imports it holds. */
function assemble(makes: Make[]) {
  let text = "";
  const sites: ImportSite[] = [], computed: { line: number; col: number }[] = [];
  const pos = (at: number) => {
    const before = text.slice(0, at).split("\n");
    return { line: before.length, col: before.at(-1)!.length + 1 };
  };
  makes.forEach((make, n) => {
    const piece = make(n);
    const start = text.length;
    text += piece.text;
    for (const s of piece.sites) sites.push({ spec: s.spec, ...pos(start + s.at) });
    for (const c of piece.computed) computed.push(pos(start + c));
  });
  return { text, sites, computed };
}

Deno.test("generated sources: scanSource finds exactly the real imports and computed imports", () => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(realImport, noise, noise, computedImport), { maxLength: 25 }),
      (makes) => {
        const { text, sites, computed } = assemble(makes);
        assert.deepEqual(scanSource(text), { imports: sites, computed }, text);
      },
    ),
    { numRuns: 400 },
  );
});

Deno.test("generated modules: the fingerprint holds exactly the imported files, and follows them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let round = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(realImport, noise), { minLength: 1, maxLength: 12 }),
        fc.nat(),
        async (makes, pick) => {
          const root = join(dir, `r${round++}`);
          await Deno.mkdir(root);
          await Deno.writeTextFile(join(root, "deno.json"), "{}");
          const { text, sites } = assemble(makes);
          await Deno.writeTextFile(join(root, "main.ts"), text);
          const targets = [...new Set(sites.map((s) => s.spec.slice(2)))].sort();
          for (const t of targets) await Deno.writeTextFile(join(root, t), `export const v = 1;\n`);
          const fp = async () =>
            (await (await ProjectResolver.load(root)).fingerprint(join(root, "main.ts"))).files;
          const before = await fp();
          assert.deepEqual(Object.keys(before), [...targets, "main.ts"].sort());
          // A decoy coming into existence changes nothing; editing an imported file does.
          for (let n = 0; n < makes.length; n++) {
            await Deno.writeTextFile(join(root, `never${n}.ts`), "export const v = 2;\n");
          }
          assert.deepEqual(await fp(), before);
          if (targets.length) {
            const edited = targets[pick % targets.length];
            await Deno.writeTextFile(join(root, edited), "export const v = 3;\n");
            const after = await fp();
            const changed = Object.keys(after).filter((k) => after[k] !== before[k]);
            assert.deepEqual(changed, [edited]);
          }
        },
      ),
      { numRuns: 30 },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
