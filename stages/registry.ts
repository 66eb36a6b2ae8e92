/**
 * Built-in stage kinds, by name, to the module that default-exports the Stage definition.
 * Paths only: the runner imports a definition when an experiment uses that kind, so an
 * experiment never pays for kinds it does not use.
 */
export const builtinStages: Record<string, string> = {
};

/** Resolves a built-in kind to an absolute module URL, or undefined. */
export function builtinStageUrl(kind: string): URL | undefined {
  const rel = builtinStages[kind];
  return rel === undefined ? undefined : new URL(rel, import.meta.url);
}
