/**
 * What `run`, `status` and `log` need before anything is written: the experiment parsed,
 * validated and resolved into planned stages (or the cached plan, when nothing it was made
 * from changed), with what computing keys needs. Loaded only when the no-op memo cannot
 * answer (cli/cached_rerun.ts).
 */
import { UsageError } from "../pipeline/errors.ts";
import type { PlannedStage } from "../pipeline/resolve.ts";
import { withUpstream } from "../pipeline/select.ts";
import { loadPlan, type PlanExperiment, savePlan } from "../pipeline/plan_cache.ts";
import type { Store } from "../pipeline/store.ts";
import { ProjectResolver, stageFingerprint } from "../pipeline/fingerprint.ts";
import { StatMemo } from "../pipeline/hash.ts";
import { ScanMemo } from "../pipeline/scan_memo.ts";
import type { KeyContext } from "../pipeline/plan.ts";
import { join } from "../pipeline/paths.ts";
import { sha256Hex } from "../pipeline/canonical.ts";
import { didYouMean } from "../pipeline/suggest.ts";
import { lazyImport } from "../pipeline/lazy_import.ts";

export interface Prepared {
  store: Store;
  stages: PlannedStage[];
  experiment: PlanExperiment;
  kc: KeyContext;
  configPath: string;
}

/**
 * Everything that must hold before anything is written: parse, validate, resolve. An
 * unchanged experiment reuses its cached plan and never loads YAML, zod or stage modules.
 */
export async function prepare(
  root: string,
  file: string,
  targets: string[],
  store: Store,
  overrides: string[] = [],
): Promise<Prepared> {
  const resolver = await ProjectResolver.load(root, ScanMemo.load(store.layout.codeMemoPath));
  // A plan with -S overrides is not cached: the cache is keyed by the experiment's files.
  let planned = overrides.length ? undefined : await loadPlan(store.layout, root, file, resolver);
  if (!planned) {
    const { loadExperiment } = await lazyImport<typeof import("../pipeline/experiment_file.ts")>(
      new URL("../pipeline/experiment_file.ts", import.meta.url),
    );
    const { resolveExperiment } = await lazyImport<typeof import("../pipeline/resolve.ts")>(
      new URL("../pipeline/resolve.ts", import.meta.url),
    );
    const { builtinCatalog } = await lazyImport<typeof import("../stages/registry.ts")>(
      new URL("../stages/registry.ts", import.meta.url),
    );
    const exp = await loadExperiment(file, overrides);
    const res = await resolveExperiment(exp, builtinCatalog(), resolver);
    const sha256: Record<string, string> = {};
    for (const s of exp.sources) sha256[s.file] = await sha256Hex(await Deno.readFile(s.file));
    const stages: PlannedStage[] = res.stages.map(({ def: _def, ...rest }) => rest);
    for (const s of stages) s.code = await stageFingerprint(resolver, s);
    const experiment = { name: exp.name, file, seed: exp.seed, sha256, lineage: exp.lineage };
    planned = { experiment, stages };
    if (!overrides.length) await savePlan(store.layout, root, experiment, stages);
  }
  resolver.saveMemo();
  return {
    store,
    stages: targets.length ? withUpstream(planned.stages, targets, file) : planned.stages,
    experiment: planned.experiment,
    kc: { store, resolver, memo: await StatMemo.load(store.layout.memoPath) },
    configPath: join(root, "deno.json"),
  };
}

/** `--force NAME` must name a stage (an instance or a swept stage as a whole). */
export function checkForced(forced: string[], stages: PlannedStage[]) {
  const names = new Set(stages.flatMap((s) => [s.name, s.base]));
  for (const f of forced) {
    if (!names.has(f)) {
      throw new UsageError(
        `--force ${f}: no such stage${didYouMean(f, names)}; stages: ` +
          [...new Set(stages.map((s) => s.base))].join(", "),
      );
    }
  }
}
