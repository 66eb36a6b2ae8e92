/**
 * Built-in stage kinds, by name, to the module that default-exports the Stage definition.
 * Paths only: the runner imports a definition when an experiment uses that kind, so an
 * experiment never pays for kinds it does not use.
 */
export const builtinStages: Record<string, string> = {
  "prepare/synthetic": "./prepare/synthetic/stage.ts",
  "prepare/fashion-mnist": "./prepare/fashion-mnist/stage.ts",
  "pretrain": "./pretrain/stage.ts",
  "prepare/coco": "./prepare/coco/stage.ts",
  "embed": "./embed/stage.ts",
  "retrieval": "./retrieval/stage.ts",
  "linear-probe": "./linear-probe/stage.ts",
  "zero-shot": "./zero-shot/stage.ts",
  "pmi": "./pmi/stage.ts",
};

/** Every built-in kind with its absolute module URL (the engine's stage catalog). */
export function builtinCatalog(): Record<string, URL> {
  return Object.fromEntries(
    Object.entries(builtinStages).map(([k, rel]) => [k, new URL(rel, import.meta.url)]),
  );
}
