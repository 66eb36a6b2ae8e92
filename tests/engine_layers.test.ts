/**
 * The layer check of `deno task check` (tools/check_layers.ts) on a planted tree: every kind of
 * crossing is found at its line, allowed imports and imports in comments or strings are not,
 * and the repository itself has none.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { checkLayers } from "../tools/check_layers.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

const PLANTED: Record<string, string> = {
  "pipeline/stage.ts": "export const defineStage = 1;\n",
  "pipeline/runner.ts": [
    '// import { x } from "../stages/k/run.ts";  (a comment, not an import)',
    "export const y = \"import '../cli/main.ts'\";",
  ].join("\n") + "\n",
  "pipeline/a.ts": 'import { x } from "../stages/k/run.ts";\nexport const z = x;\n',
  "pipeline/b.ts": 'export const W = new URL("../cli/w.ts", import.meta.url);\n',
  "pipeline/store_layout.ts":
    'import { join } from "node:path";\nexport const e = join("r", "entries");\n',
  "report/r.ts": [
    'import { join } from "node:path";',
    'export const ok = "runs"; // a word, not a path',
    'export const bad = join(root, "reports", "x.html");',
  ].join("\n") + "\n",
  "stages/k/run.ts": [
    'import { defineStage } from "../../pipeline/stage.ts";',
    'import { y } from "../../pipeline/runner.ts";',
    "export const x = [defineStage, y];",
  ].join("\n") + "\n",
  "stages/lib/u.ts": 'export const u = 1;\nexport { x } from "../k/run.ts";\n',
  "stages/lib/t.ts": 'const m = await import("../../tests/helper.ts");\nexport { m };\n',
  "stages/m/run.ts": 'import { x } from "../k/run.ts";\nexport const w = x;\n',
  "stages/prepare/p/run.ts": 'import { u } from "../../lib/u.ts";\nimport "../q/run.ts";\n',
  "stages/prepare/q/run.ts": "export const q = 1;\n",
  "tests/helper.ts": "export const h = 1;\n",
  "cli/w.ts":
    'import { x } from "../stages/k/run.ts";\nimport "../pipeline/runner.ts";\nexport { x };\n',
};

Deno.test("engine/layers: planted crossings are found at their lines, allowed imports are not", async () => {
  const root = await Deno.makeTempDir();
  try {
    for (const [path, text] of Object.entries(PLANTED)) {
      await Deno.mkdir(join(root, dirname(path)), { recursive: true });
      await Deno.writeTextFile(join(root, path), text);
    }
    const found = (await checkLayers(root)).map((v) => `${v.file}:${v.line} -> ${v.target}`);
    assert.deepEqual(found.sort(), [
      "pipeline/a.ts:1 -> stages/k/run.ts",
      "pipeline/b.ts:1 -> cli/w.ts",
      "report/r.ts:3 -> pipeline/store_layout.ts",
      "stages/k/run.ts:2 -> pipeline/runner.ts",
      "stages/lib/t.ts:1 -> tests/helper.ts",
      "stages/lib/u.ts:2 -> stages/k/run.ts",
      "stages/m/run.ts:1 -> stages/k/run.ts",
      "stages/prepare/p/run.ts:2 -> stages/prepare/q/run.ts",
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("engine/layers: the repository crosses no layer", async () => {
  assert.deepEqual(await checkLayers(ROOT), []);
});
