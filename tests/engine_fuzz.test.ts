/**
 * Fuzzed experiment files (issue 17): mutants of the shipped experiments (lines deleted,
 * duplicated or swapped; characters deleted; YAML syntax inserted) go through the loader and
 * resolver in process (a few hundred), and a sample through the real CLI (`status`,
 * `run --dry-run`). Every outcome is success or a ConfigError / UsageError: exit 0 or 2, never
 * a stack trace, never a write to the store on exit 2. Offline, `deno task bench fuzz` runs
 * thousands through the CLI (bench/fuzz_experiments.ts).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import fc from "fast-check";
import { ConfigError, UsageError } from "../pipeline/errors.ts";
import { loadExperiment } from "../pipeline/experiment_file.ts";
import { resolveExperiment } from "../pipeline/resolve.ts";
import { ProjectResolver } from "../pipeline/fingerprint.ts";
import { builtinCatalog } from "../stages/registry.ts";
import { mutantArbitrary, SEEDS } from "./helpers/mutants.ts";
import { kme, readTree, ROOT } from "./helpers/cli.ts";

const resolver = await ProjectResolver.load(ROOT);
// Mutants live beside the shipped files, so relative paths (extends, roots) resolve as theirs.
const DIR = await Deno.makeTempDir({ dir: join(ROOT, "experiments"), prefix: ".fuzz-" });
globalThis.addEventListener("unload", () => Deno.removeSync(DIR, { recursive: true }));

Deno.test("fuzzed experiment files: loader and resolver fail only with config errors", async () => {
  let n = 0, ok = 0;
  await fc.assert(
    fc.asyncProperty(mutantArbitrary(), async (text) => {
      const file = join(DIR, `m${n++}.yaml`);
      await Deno.writeTextFile(file, text);
      try {
        await resolveExperiment(await loadExperiment(file), builtinCatalog(), resolver);
        ok++;
      } catch (e) {
        if (e instanceof ConfigError || e instanceof UsageError) return;
        throw new Error(`mutant raised ${(e as Error)?.name}: ${(e as Error)?.message}\n${text}`);
      }
    }),
    { numRuns: 300, seed: 17 },
  );
  // The mutations must leave some files valid and break others, or the test tests nothing.
  assert.ok(ok > 10 && ok < n - 100, `${ok} of ${n} mutants were valid`);
});

Deno.test("fuzzed experiment files through the CLI: exit 0 or 2, no stack, no store write on 2", async () => {
  const store = join(DIR, "store");
  const mutants = fc.sample(mutantArbitrary(), { numRuns: 24, seed: 42 });
  let twos = 0;
  for (const [i, text] of mutants.entries()) {
    const file = join(DIR, `cli${i}.yaml`);
    await Deno.writeTextFile(file, text);
    const args = i % 2 ? ["status", file] : ["run", file, "--dry-run"];
    const before = await readTree(store).catch(() => new Map());
    const r = await kme([...args, "--store", store], DIR);
    assert.ok(r.code === 0 || r.code === 2, `exit ${r.code} on\n${text}\n${r.stderr}`);
    assert.doesNotMatch(r.stderr, /\n\s+at /, `stack trace on\n${text}\n${r.stderr}`);
    if (r.code === 2) {
      twos++;
      assert.match(r.stderr, /^(.+:\d+:\d+: )?error: /, r.stderr);
      const after = await readTree(store).catch(() => new Map());
      assert.deepEqual([...after.keys()], [...before.keys()], "exit 2 wrote to the store");
    }
  }
  assert.ok(twos > 3, `only ${twos} of ${mutants.length} mutants were rejected`);
  assert.ok(SEEDS.length >= 2);
});
