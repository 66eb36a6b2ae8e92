/** Choosing the stages a run needs: targets and, transitively, their upstream. */
import { ConfigError } from "./errors.ts";
import type { PlannedStage } from "./resolve.ts";
import { didYouMean } from "./suggest.ts";

/**
 * The stages needed for `targets` (each with its upstream), in order. A target is a stage
 * instance (`train[seed=1]`) or a stage's name in the experiment file (all its instances).
 */
export function withUpstream<S extends PlannedStage>(
  stages: S[],
  targets: string[],
  file: string,
): S[] {
  const byName = new Map(stages.map((s) => [s.name, s]));
  const need = new Set<string>();
  const add = (n: string) => {
    if (need.has(n)) return;
    need.add(n);
    for (const up of Object.values(byName.get(n)!.inputs)) add(up);
  };
  for (const t of targets) {
    const group = stages.filter((s) => s.base === t);
    if (group.length) group.forEach((s) => add(s.name));
    else if (byName.has(t)) add(t);
    else {
      const names = new Set(stages.flatMap((s) => [s.base, s.name]));
      throw new ConfigError(`no stage named '${t}' in ${file}${didYouMean(t, names)}`);
    }
  }
  return stages.filter((s) => need.has(s.name));
}
