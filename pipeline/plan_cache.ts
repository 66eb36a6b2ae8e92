/**
 * The resolved plan of an experiment, cached so that a rerun of an unchanged experiment skips
 * YAML parsing, zod validation and importing stage definitions (together most of a no-op
 * rerun's time). The cache is used only when every input of resolution is unchanged:
 * the experiment file and every file it extends (by content), each stage's code fingerprint
 * (which covers its params schema, defaults and facet code, and the modules its params name,
 * whose code `refineParams` may have used), deno.json and the lockfile, the Deno version, the
 * installed package folders (the project's and the working folder's), the system's library
 * folders (their mtimes, and /etc/ld.so.cache's), the environment variables named KME_* or
 * *LIBRARY_PATH, the engine's own code (engine_code.ts) and the working folder. Facets
 * may depend on what is installed (which TensorFlow.js backend or scoring engine `auto`
 * means) and on those variables, and must not depend on anything else.
 */
import { join, resolve } from "./paths.ts";
import type { StoreLayout } from "./store_layout.ts";
import { canonicalJson, hashJson, sha256Hex } from "./canonical.ts";
import { facetVariables, libraryPlaces, packagePlaces } from "./facet_environment.ts";
import { engineCodeFiles, statSignature } from "./engine_code.ts";
import { type ProjectResolver, stageFingerprint } from "./fingerprint.ts";
import type { PlannedStage } from "./resolve.ts";

export interface PlanExperiment {
  name: string;
  file: string;
  seed: number;
  sha256: Record<string, string>;
  lineage: string[];
}

const FORMAT = "kme-plan/4";

interface CachedPlan {
  format: typeof FORMAT;
  /** The project's folder: module paths in the plan are absolute. */
  root: string;
  /** The working folder: the experiment's source paths are relative to it. */
  cwd: string;
  env: string;
  experiment: PlanExperiment;
  stages: PlannedStage[];
}

async function cachePath(layout: StoreLayout, file: string): Promise<string> {
  return layout.planPath((await sha256Hex(resolve(file))).slice(0, 32));
}

/** Lockfile, Deno version, installed packages and libraries, facet variables; hashed. */
async function environmentSignature(root: string): Promise<string> {
  // Synchronous calls throughout, as on the rest of a cached rerun's path (local_store.ts).
  const names = (dir: string) => {
    const out: string[] = [];
    try {
      for (const e of Deno.readDirSync(dir)) out.push(e.name);
    } catch { /* absent */ }
    return out.sort();
  };
  const digestOf = async (name: string) => {
    try {
      return await sha256Hex(Deno.readFileSync(join(root, name)));
    } catch {
      return ""; // no such file
    }
  };
  // deno.json: its import map decides what a bare specifier in a module means.
  const [lock, config] = [await digestOf("deno.lock"), await digestOf("deno.json")];
  const vars = facetVariables();
  const libraries = libraryPlaces(vars).map((p) => `${p}:${statSignature(p)}`);
  return hashJson({
    lock,
    config,
    deno: Deno.version.deno,
    packages: packagePlaces(root).map((p) => [p, names(p)]),
    libraries,
    vars,
    engine: engineCodeFiles(root).map((f) => `${f}:${statSignature(f)}`),
  });
}

export async function savePlan(
  layout: StoreLayout,
  root: string,
  experiment: PlanExperiment,
  stages: PlannedStage[],
): Promise<void> {
  const plan: CachedPlan = {
    format: FORMAT,
    root,
    cwd: Deno.cwd(),
    env: await environmentSignature(root),
    experiment,
    stages: stages.map((s) => ({ ...s, def: undefined })),
  };
  const path = await cachePath(layout, experiment.file);
  Deno.mkdirSync(layout.plansDir, { recursive: true });
  const tmp = `${path}.${Deno.pid}.tmp`;
  Deno.writeTextFileSync(tmp, JSON.stringify(plan));
  Deno.renameSync(tmp, path);
}

/** The cached plan of `file`, if everything it was resolved from is unchanged. */
export async function loadPlan(
  layout: StoreLayout,
  root: string,
  file: string,
  resolver: ProjectResolver,
): Promise<{ experiment: PlanExperiment; stages: PlannedStage[] } | undefined> {
  let plan: CachedPlan;
  try {
    plan = JSON.parse(Deno.readTextFileSync(await cachePath(layout, file)));
  } catch {
    return undefined;
  }
  if (
    plan.format !== FORMAT || plan.root !== root || plan.cwd !== Deno.cwd() ||
    plan.experiment.file !== file
  ) {
    return undefined;
  }
  for (const [path, sha] of Object.entries(plan.experiment.sha256)) {
    try {
      if ((await sha256Hex(Deno.readFileSync(path))) !== sha) return undefined;
    } catch {
      return undefined;
    }
  }
  if (plan.env !== (await environmentSignature(root))) return undefined;
  // Every module file of every fingerprint as it was when scanned (by the scan memo's stat
  // check, nothing read) and with the plan's hash: then every import graph, and so every
  // fingerprint, is the plan's (npm digests follow deno.lock and bare specifiers deno.json,
  // both in the environment signature). This saves walking 15 graphs on a cached rerun of
  // tiny.yaml (~15 ms); when it cannot tell, each fingerprint is computed and compared.
  const codes = plan.stages.map((s) => s.code?.files);
  if (codes.some((c) => !c) || !resolver.unchanged(codes as Record<string, string>[])) {
    for (const s of plan.stages) {
      let fp;
      try {
        fp = await stageFingerprint(resolver, s);
      } catch {
        return undefined; // a module gone or broken: let full resolution report it
      }
      // Compared as canonical text: hashing both would cost more than comparing them.
      if (!s.code || canonicalJson(fp) !== canonicalJson(s.code)) return undefined;
      s.code = fp;
    }
  }
  for (const s of plan.stages) {
    for (const path of Object.values(s.externals)) {
      try {
        Deno.statSync(path);
      } catch {
        return undefined; // let full resolution report it properly
      }
    }
  }
  return { experiment: plan.experiment, stages: plan.stages };
}
