/**
 * `import()` of a module that only some paths need, kept out of Deno's start-up.
 *
 * Deno loads the module graph under a literal `import("./x.ts")` when the importing module
 * loads, whether or not that line ever runs: the report's graph (vega) cost a cached rerun
 * ~25 ms, the `run` command's ~30 ms, an npm package's ~6 ms, where the whole rerun may cost
 * only ~40 ms above Deno's own start-up (issue 16; measured with `performance.now()` after
 * `import`, 2026-11-30). A specifier computed at run time is resolved only when called.
 *
 * Pass `new URL("./x.ts", import.meta.url)` for a module of ours: that form is also what the
 * fingerprint scanner (import_scan.ts) follows as a dependency, so nothing a module loads this
 * way escapes a key; or the bare name of a package in deno.json's imports. The type argument
 * keeps the module's types:
 * `await lazyImport<typeof import("./x.ts")>(new URL("./x.ts", import.meta.url))`.
 */
export function lazyImport<T>(module: URL | string): Promise<T> {
  return import(module instanceof URL ? module.href : module);
}
