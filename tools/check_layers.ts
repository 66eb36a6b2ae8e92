/**
 * `deno task check` fails when a module imports across the layers (docs/architecture.md):
 *
 *   cli, dashboard, report  ->  pipeline  <-  stages  ->  stages/lib
 *
 * - `pipeline/` (the engine) imports nothing of `stages/`, `cli/`, `dashboard/`, `report/`,
 *   `bench/`, `tests/`;
 * - a stage (anything under `stages/`) takes from the engine only `pipeline/stage.ts`, its
 *   contract;
 * - `stages/lib/` imports no stage folder and not the registry (stages build on the library,
 *   not the other way round);
 * - a stage's folder imports no other stage's folder: what two stages share lives in
 *   `stages/lib/`, so a newcomer finds one home for it;
 * - no shipped code (cli, dashboard, pipeline, report, stages) imports `bench/` or `tests/`;
 * - only `pipeline/store_layout.ts` builds paths into the store: a store folder's name
 *   (entries, staging, scratch, locks, runs, plans, jobs, reports, quarantine, memo) as an
 *   argument of `join(...)` or `resolve(...)` anywhere else is a violation, so that a second
 *   store implementation has one place to follow.
 *
 * The import graph comes from `deno info --json`, Deno's own parser (static imports, exports,
 * `import type`, and dynamic imports whose specifier is a literal), so comments, strings and
 * regexes cannot fool it. Module paths handed to workers, `new URL("./x.ts", import.meta.url)`,
 * are not imports to Deno; those are read from the source with a pattern, and count as edges.
 *
 * `deno run -A tools/check_layers.ts [ROOT]`: prints each violation as `file:line: rule` and
 * exits 1 when there is one.
 */
import { join, relative, resolve } from "node:path";
import { fileURLToPath as fromFileUrl, pathToFileURL as toFileUrl } from "node:url";

export interface Violation {
  file: string;
  line: number;
  target: string;
  rule: string;
}

const SHIPPED = ["cli", "dashboard", "pipeline", "report", "stages"];
const LAYOUT_MODULE = "pipeline/store_layout.ts";
const LAYOUT_RULE = "only pipeline/store_layout.ts builds paths into the store";

/** The rule an edge from `from` to `to` (paths relative to the root) breaks, if any. */
export function brokenRule(from: string, to: string): string | undefined {
  const top = (p: string) => p.split("/")[0];
  if (!SHIPPED.includes(top(from))) return undefined;
  if (to.startsWith("bench/") || to.startsWith("tests/")) {
    return "shipped code imports no bench/ or tests/ module";
  }
  if (top(from) === "pipeline" && top(to) !== "pipeline" && SHIPPED.includes(top(to))) {
    return "the engine (pipeline/) imports nothing of cli/, dashboard/, report/ or stages/";
  }
  if (top(from) === "stages" && top(to) === "pipeline" && to !== "pipeline/stage.ts") {
    return "a stage takes from the engine only pipeline/stage.ts";
  }
  if (from.startsWith("stages/lib/") && top(to) === "stages" && !to.startsWith("stages/lib/")) {
    return "stages/lib/ imports no stage folder and not the registry";
  }
  const a = stageFolder(from), b = stageFolder(to);
  if (a && b && a !== b) {
    return "a stage folder imports no other stage's folder (shared code lives in stages/lib/)";
  }
  return undefined;
}

/** `stages/<kind>` or `stages/prepare/<source>` of a path in a stage's folder, else undefined. */
function stageFolder(path: string): string | undefined {
  const parts = path.split("/");
  if (parts[0] !== "stages" || parts.length < 3 || parts[1] === "lib") return undefined;
  if (parts[1] === "prepare") return parts.length >= 4 ? parts.slice(0, 3).join("/") : undefined;
  return parts.slice(0, 2).join("/");
}

interface InfoModule {
  specifier: string;
  dependencies?: {
    specifier: string;
    code?: { specifier: string; span: { start: { line: number } } };
    type?: { specifier: string; span: { start: { line: number } } };
  }[];
}

async function shippedFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(join(root, dir))) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory && e.name !== "node_modules") await walk(p);
      else if (e.isFile && /\.(ts|tsx|js|mjs)$/.test(e.name)) out.push(p);
    }
  };
  for (const d of SHIPPED) {
    try {
      await walk(d);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  return out.sort();
}

/** Every violation under `root`. */
export async function checkLayers(root: string): Promise<Violation[]> {
  root = resolve(root);
  const files = await shippedFiles(root);
  const violations: Violation[] = [];
  const rel = (url: string) => url.startsWith("file:") ? relative(root, fromFileUrl(url)) : url;
  const add = (file: string, line: number, target: string) => {
    const rule = brokenRule(file, target);
    if (rule) violations.push({ file, line, target, rule });
  };

  // One `deno info` over a module that imports them all: one process, one graph.
  const entry = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(
      entry,
      files.map((f) => `import ${JSON.stringify(toFileUrl(join(root, f)).href)};`).join("\n"),
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", entry],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(`deno info failed: ${new TextDecoder().decode(out.stderr).slice(0, 2000)}`);
    }
    const graph = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: InfoModule[] };
    for (const m of graph.modules) {
      if (!m.specifier.startsWith("file:")) continue;
      const from = rel(m.specifier);
      if (!files.includes(from)) continue;
      for (const d of m.dependencies ?? []) {
        for (const r of [d.code, d.type]) {
          if (r?.specifier?.startsWith("file:")) add(from, r.span.start.line + 1, rel(r.specifier));
        }
      }
    }
  } finally {
    await Deno.remove(entry);
  }

  // Store paths built outside the layout module.
  const folders = "entries|staging|scratch|locks|runs|plans|jobs|reports|quarantine|memo";
  const layoutPattern = new RegExp(`\\b(?:join|resolve)\\([^)]*?(["'])(?:${folders})\\1`, "g");
  for (const f of files) {
    if (f === LAYOUT_MODULE) continue;
    const text = await Deno.readTextFile(join(root, f));
    for (const m of text.matchAll(layoutPattern)) {
      const line = text.slice(0, m.index).split("\n").length;
      violations.push({ file: f, line, target: LAYOUT_MODULE, rule: LAYOUT_RULE });
    }
  }

  // Worker module paths.
  const urlPattern = /new URL\(\s*(["'])([^"']+\.(?:ts|js))\1\s*,\s*import\.meta\.url\s*\)/g;
  for (const f of files) {
    const text = await Deno.readTextFile(join(root, f));
    for (const m of text.matchAll(urlPattern)) {
      const line = text.slice(0, m.index).split("\n").length;
      const target = relative(root, resolve(join(root, f, ".."), m[2]));
      add(f, line, target);
    }
  }
  return violations;
}

if (import.meta.main) {
  const found = await checkLayers(Deno.args[0] ?? ".");
  for (const v of found) {
    console.error(
      v.rule === LAYOUT_RULE
        ? `${v.file}:${v.line}: ${v.rule}`
        : `${v.file}:${v.line}: imports ${v.target}: ${v.rule}`,
    );
  }
  if (found.length > 0) {
    console.error(`${found.length} import(s) across the layers; see docs/architecture.md`);
    Deno.exit(1);
  }
  console.log("layers: no import crosses them");
}
