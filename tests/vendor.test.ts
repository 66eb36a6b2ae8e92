/**
 * vendor/ holds copies of two npm packages (vendor/README.md says why): each file must be the
 * installed package's, byte for byte, at the version deno.json locks.
 */
import assert from "node:assert/strict";

const ROOT = new URL("..", import.meta.url).pathname;

const COPIES: { pkg: string; version: string; files: Record<string, string> }[] = [
  {
    pkg: "type-flag",
    version: "4.5.2",
    files: { "index.mjs": "dist/index.mjs", "index.d.ts": "dist/index.d.ts", LICENSE: "LICENSE" },
  },
  {
    pkg: "ansi-styles",
    version: "6.2.3",
    files: { "index.js": "index.js", "index.d.ts": "index.d.ts", license: "license" },
  },
];

Deno.test("vendor/ copies are the locked npm packages' files, byte for byte", async () => {
  const imports = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).imports;
  for (const { pkg, version, files } of COPIES) {
    assert.equal(imports[pkg], `npm:${pkg}@${version}`, `deno.json pins ${pkg}@${version}`);
    await import(pkg); // installs it into node_modules/ if it is not there yet
    const installed = `${ROOT}node_modules/${pkg}/`;
    const manifest = JSON.parse(await Deno.readTextFile(`${installed}package.json`));
    assert.equal(manifest.version, version);
    for (const [copy, original] of Object.entries(files)) {
      const a = await Deno.readFile(`${ROOT}vendor/${pkg}@${version}/${copy}`);
      const b = await Deno.readFile(`${installed}${original}`);
      assert.ok(a.length > 0 && a.length === b.length && a.every((x, i) => x === b[i]), copy);
    }
  }
});

Deno.test("what a cached `kme run` loads holds no npm package and no static node: module", async () => {
  // cli/main.ts and the code it imports, statically or by a literal import() (Deno loads
  // those graphs at start too, run or not; pipeline/lazy_import.ts); and, for a rerun the no-op
  // memo cannot answer, the planning and running modules main.ts loads then. An npm package
  // among them costs ~10 ms (vendor/README.md), a static node: module ~15 ms (paths.ts).
  const bad: string[] = [], seen = new Set<string>();
  for (const root of ["cli/main.ts", "cli/prepare.ts", "cli/run_status.ts"]) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", `${ROOT}${root}`],
      stdout: "piped",
    }).output();
    assert.ok(out.success);
    type Dep = { specifier: string; code?: { specifier: string }; isDynamic?: boolean };
    const graph: { roots: string[]; modules: { specifier: string; dependencies?: Dep[] }[] } = JSON
      .parse(new TextDecoder().decode(out.stdout));
    const byUrl = new Map(graph.modules.map((m) => [m.specifier, m]));
    const todo = [...graph.roots];
    while (todo.length) {
      const url = todo.pop()!;
      if (seen.has(url)) continue;
      seen.add(url);
      for (const d of byUrl.get(url)?.dependencies ?? []) {
        const to = d.code?.specifier; // type-only imports have no `code` and load nothing
        if (!to) continue;
        if (to.startsWith("npm:") || (to.startsWith("node:") && !d.isDynamic)) {
          bad.push(`${url.replace(`file://${ROOT}`, "")} imports ${d.specifier}`);
        } else todo.push(to);
      }
    }
  }
  assert.deepEqual(bad, []);
  for (const m of ["cli/cached_rerun.ts", "pipeline/noop_memo.ts", "pipeline/runner.ts"]) {
    assert.ok(seen.has(`file://${ROOT}${m}`), `the walk reached ${m}`);
  }
});
