/** Unit tests of the engine's pure parts: canonical JSON, import scanning, hashing, diffs. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { canonicalJson, hashJson } from "../pipeline/canonical.ts";
import { scanImports, scanSource } from "../pipeline/import_scan.ts";
import { hashFile, StatMemo } from "../pipeline/hash.ts";
import { explainChange, type KeyComponents, leafDiff } from "../pipeline/key.ts";
import { closest, editDistance } from "../pipeline/suggest.ts";

Deno.test("canonical JSON sorts keys at every depth and rejects non-finite numbers", async () => {
  assert.equal(
    canonicalJson({ b: 1, a: { d: [2, { z: 1, y: 2 }], c: null } }),
    '{"a":{"c":null,"d":[2,{"y":2,"z":1}]},"b":1}',
  );
  assert.equal(await hashJson({ x: 1, y: 2 }), await hashJson({ y: 2, x: 1 }));
  assert.notEqual(await hashJson({ x: 1 }), await hashJson({ x: "1" }));
  assert.throws(() => canonicalJson({ x: NaN }), /non-finite/);
});

Deno.test("scanImports finds static, re-export and literal dynamic imports, not type or commented ones", () => {
  const src = `
import { a } from "./a.ts";
import type { T } from "./types.ts";
import * as b from '../b.ts';
import "./side.ts";
export { c } from "./c.ts";
export * from "./d.ts";
import {
  e,
  f,
} from "npm:yaml";
// import { g } from "./commented.ts";
/* import("./block.ts") */
const h = () => import("./lazy.ts");
const url = "http://example.com/x"; // not an import
const notLiteral = import(name);
const w = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
const wasm = new URL("./data.wasm", import.meta.url);
`;
  assert.deepEqual(scanImports(src).sort(), [
    "../b.ts",
    "./a.ts",
    "./c.ts",
    "./d.ts",
    "./lazy.ts",
    "./side.ts",
    "./worker.ts",
    "npm:yaml",
  ]);
  assert.deepEqual(scanImports('const s = "a // b"; import("./x.ts"); // import("./c.ts")'), [
    "./x.ts",
  ]);
});

Deno.test("scanSource finds computed dynamic imports, except on a marked line", () => {
  const src = [
    'import { a } from "./a.ts";',
    "const m = await import(path);",
    "const t = import(`./${name}.ts`);",
    "const l = import(`./literal.ts`);",
    'const s = "import(notCode)"; // import(comment)',
    "/* import(block) */ obj.import(x);",
    "await import(toFileUrl(p).href); // fingerprint: module named by params",
    "const o = import (spec);",
    "await import(last); // fingerprint: module named by params",
  ].join("\n");
  const { imports, computed } = scanSource(src);
  assert.deepEqual(computed, [{ line: 2, col: 17 }, { line: 3, col: 11 }, { line: 8, col: 11 }]);
  assert.deepEqual(imports, [
    { spec: "./a.ts", line: 1, col: 19 },
    { spec: "./literal.ts", line: 4, col: 18 },
  ]);
});

Deno.test("hashFile equals SHA-256 of the bytes, across chunk boundaries", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const bytes = new Uint8Array((4 << 20) + 12345).map((_, i) => (i * 31) & 255);
    await Deno.writeFile(join(dir, "f"), bytes);
    assert.equal(await hashFile(join(dir, "f")), createHash("sha256").update(bytes).digest("hex"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the stat memo re-reads a file only when size, mtime or inode changed", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const f = join(dir, "data.bin");
    await Deno.writeFile(f, new Uint8Array(100_000).fill(7));
    await Deno.mkdir(join(dir, "sub"));
    await Deno.writeTextFile(join(dir, "sub", "x.txt"), "x");
    const memoPath = join(dir, "memo.json");
    const m1 = await StatMemo.load(memoPath);
    const d1 = await m1.hashPath(dir + "/sub");
    const f1 = await m1.hashPath(f);
    assert.equal(m1.bytesRead, 100_001);
    await m1.save();

    const m2 = await StatMemo.load(memoPath);
    assert.equal(await m2.hashPath(f), f1);
    assert.equal(await m2.hashPath(dir + "/sub"), d1);
    assert.equal(m2.bytesRead, 0, "unchanged data is not re-read");

    await Deno.writeFile(f, new Uint8Array(100_000).fill(8));
    await Deno.utime(f, 1, 1);
    assert.notEqual(await m2.hashPath(f), f1);
    assert.equal(m2.bytesRead, 100_000);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("explainChange names the component that changed", () => {
  const base: KeyComponents = {
    kind: "pretrain",
    code: { files: { "stages/pretrain/model.ts": "1", "stages/x.ts": "2" }, npm: {}, other: [] },
    params: { lr: 0.001, model: { width: 128 } },
    inputs: { data: "d1" },
    externals: {},
    facets: { backend: "wasm" },
    seed: 0,
  };
  const next: KeyComponents = {
    ...base,
    code: { ...base.code, files: { ...base.code.files, "stages/pretrain/model.ts": "9" } },
    params: { lr: 0.0005, model: { width: 128 } },
    facets: { backend: "cpu" },
  };
  assert.deepEqual(explainChange(base, next), [
    "params.lr 0.001 -> 0.0005",
    "code: stages/pretrain/model.ts",
    "env.backend wasm -> cpu",
  ]);
  assert.deepEqual(leafDiff({ a: { b: 1 } }, { a: { c: 1 } }, "p"), [
    "p.a.b 1 -> (unset)",
    "p.a.c (unset) -> 1",
  ]);
});

Deno.test("did-you-mean suggests only close names", () => {
  assert.equal(editDistance("kitten", "sitting"), 3);
  assert.equal(closest("lrr", ["lr", "steps", "batch_size"]), "lr");
  assert.equal(closest("zzzzzz", ["lr", "steps"]), undefined);
});

Deno.test("file URL <-> path agrees with node:url on awkward POSIX paths", async () => {
  const { fileURLToPath, pathToFileURL } = await import("node:url");
  const { fromFileUrl, toFileUrl } = await import("../pipeline/paths.ts");
  for (
    const p of [
      "/a/b.ts",
      "/with space/é ü/x.ts",
      "/per%cent/100%/x",
      "/hash#/q?/x",
      "/tab\tnew\nline",
      "/back\\slash",
      "/",
    ]
  ) {
    assert.equal(toFileUrl(p).href, pathToFileURL(p).href, p);
    assert.equal(fromFileUrl(toFileUrl(p)), p);
    assert.equal(fromFileUrl(pathToFileURL(p).href), fileURLToPath(pathToFileURL(p)), p);
  }
  assert.equal(fromFileUrl("file:///a%20b/%E2%9C%93"), "/a b/✓");
  assert.throws(() => fromFileUrl("https://example.org/x"), /not a file URL/);
  assert.throws(() => toFileUrl("relative/x"), /not an absolute path/);
});

Deno.test("a record written with its stages as text is the same bytes as spelled whole", async () => {
  const { newRunRecord, recordText, stagesText } = await import("../pipeline/records.ts");
  const stages = {
    "train[similarity=kme]": {
      kind: "pretrain",
      base: "train",
      labels: { similarity: "kme", seed: 2 },
      outcome: "cached" as const,
      seconds: 0,
      params: { lr: 0.001, nested: { list: [1, [2, { x: 'é\n"q"' }]], empty: {}, none: [] } },
      inputs: { data: "data" },
      seed: 2,
      facets: {},
      metrics: { loss: 2.5, tiny: 1e-9 },
    },
    data: {
      kind: "prepare",
      base: "data",
      labels: {},
      outcome: "cached" as const,
      seconds: 0,
      params: {},
      inputs: {},
      seed: 0,
      facets: {},
    },
  };
  const rec = newRunRecord(
    new Date(0),
    { name: "e", file: "e.yaml", sha256: {} },
    1,
    "ok",
    stages,
    [
      "run",
      "e.yaml",
    ],
  );
  rec.env = { deno: "2", git: null, packages: { a: "1" } };
  const whole = recordText(rec);
  assert.equal(whole, JSON.stringify(rec, null, 1));
  assert.equal(recordText({ ...rec, stages: {} }, stagesText(stages)), whole);
});

Deno.test("path arithmetic agrees with node:path on random POSIX paths", async () => {
  const fc = (await import("fast-check")).default;
  const node = await import("node:path");
  const ours = await import("../pipeline/paths.ts");
  // Segments that exercise the rules: dots, empty segments (//), trailing slashes, a leading /.
  const seg = fc.constantFrom("", ".", "..", "a", "b", "...", ".x", "a b", "é");
  const path = fc.tuple(fc.boolean(), fc.array(seg, { maxLength: 6 }), fc.boolean())
    .map(([abs, segs, trail]) => (abs ? "/" : "") + segs.join("/") + (trail ? "/" : ""));
  fc.assert(
    fc.property(fc.array(path, { maxLength: 4 }), path, path, (parts, p, q) => {
      assert.equal(ours.join(...parts), node.join(...parts), `join ${JSON.stringify(parts)}`);
      assert.equal(ours.resolve(...parts), node.resolve(...parts), `resolve ${parts}`);
      assert.equal(ours.dirname(p), node.dirname(p), `dirname ${p}`);
      assert.equal(ours.isAbsolute(p), node.isAbsolute(p), p);
      assert.equal(ours.relative(p, q), node.relative(p, q), `relative ${p} ${q}`);
    }),
    { numRuns: 5000, seed: 16 },
  );
});
