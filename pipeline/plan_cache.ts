/**
 * The resolved plan of an experiment, cached so that a rerun of an unchanged experiment skips
 * YAML parsing, zod validation and importing stage definitions (together most of a no-op
 * rerun's time). The cache is used only when every input of resolution is unchanged:
 * the experiment file and every file it extends (by content), each stage's code fingerprint
 * (which covers its params schema, defaults and facet code, and the modules its params name,
 * whose code `refineParams` may have used), the lockfile, the
 * Deno version, the installed package folders, the system's library folders (their mtimes,
 * and /etc/ld.so.cache's) and the environment variables named KME_* or *LIBRARY_PATH. Facets
 * may depend on what is installed (which TensorFlow.js backend or scoring engine `auto`
 * means) and on those variables, and must not depend on anything else.
 */
import { join, resolve } from "node:path";
import type { StoreLayout } from "./store_layout.ts";
import { hashJson, sha256Hex } from "./canonical.ts";
import { type ProjectResolver, stageFingerprint } from "./fingerprint.ts";
import type { PlannedStage } from "./resolve.ts";

export interface PlanExperiment {
  name: string;
  file: string;
  seed: number;
  sha256: Record<string, string>;
  lineage: string[];
}

interface CachedPlan {
  format: "kme-plan/2";
  env: string;
  experiment: PlanExperiment;
  stages: PlannedStage[];
}

function cachePath(layout: StoreLayout, file: string): string {
  return layout.planPath(sha256Hex(resolve(file)).slice(0, 32));
}

/** Where system libraries live (Linux, multiarch, Homebrew); facets may look for them. */
const LIBRARY_PLACES = [
  "/etc/ld.so.cache",
  "/lib",
  "/lib64",
  "/usr/lib",
  "/usr/lib64",
  "/usr/local/lib",
  "/lib/x86_64-linux-gnu",
  "/usr/lib/x86_64-linux-gnu",
  "/lib/aarch64-linux-gnu",
  "/usr/lib/aarch64-linux-gnu",
  "/opt/homebrew/opt",
  "/usr/local/opt",
];

/** Lockfile, Deno version, installed packages and libraries, facet variables; hashed. */
async function environmentSignature(root: string): Promise<string> {
  const names = async (dir: string) => {
    const out: string[] = [];
    try {
      for await (const e of Deno.readDir(dir)) out.push(e.name);
    } catch { /* absent */ }
    return out.sort();
  };
  let lock = "";
  try {
    lock = sha256Hex(await Deno.readFile(join(root, "deno.lock")));
  } catch { /* no lockfile */ }
  const vars = Object.entries(Deno.env.toObject())
    .filter(([k]) => k.startsWith("KME_") || k.endsWith("LIBRARY_PATH"))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  // A folder's mtime changes when a file is added to it or removed from it: installing a
  // library (with or without ldconfig, Homebrew's opt/ links too) shows here.
  const libraryPaths = [
    ...LIBRARY_PLACES,
    ...vars.filter(([k]) => k.endsWith("LIBRARY_PATH")).flatMap(([, v]) => v.split(":")),
  ].filter(Boolean);
  const libraries = await Promise.all(libraryPaths.map(async (p) => {
    try {
      const st = await Deno.stat(p);
      return `${p}:${st.mtime?.getTime()}:${st.size}`;
    } catch {
      return `${p}:-`;
    }
  }));
  return hashJson({
    lock,
    deno: Deno.version.deno,
    modules: await names(join(root, "node_modules")),
    scoped: await names(join(root, "node_modules", "@tensorflow")),
    libraries,
    vars,
  });
}

export async function savePlan(
  layout: StoreLayout,
  root: string,
  experiment: PlanExperiment,
  stages: PlannedStage[],
): Promise<void> {
  const plan: CachedPlan = {
    format: "kme-plan/2",
    env: await environmentSignature(root),
    experiment,
    stages: stages.map((s) => ({ ...s, def: undefined })),
  };
  const path = cachePath(layout, experiment.file);
  await Deno.mkdir(layout.plansDir, { recursive: true });
  const tmp = `${path}.${Deno.pid}.tmp`;
  await Deno.writeTextFile(tmp, JSON.stringify(plan));
  await Deno.rename(tmp, path);
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
    plan = JSON.parse(await Deno.readTextFile(cachePath(layout, file)));
  } catch {
    return undefined;
  }
  if (plan.format !== "kme-plan/2" || plan.experiment.file !== file) return undefined;
  for (const [path, sha] of Object.entries(plan.experiment.sha256)) {
    try {
      if (sha256Hex(await Deno.readFile(path)) !== sha) return undefined;
    } catch {
      return undefined;
    }
  }
  if (plan.env !== (await environmentSignature(root))) return undefined;
  for (const s of plan.stages) {
    let fp;
    try {
      fp = await stageFingerprint(resolver, s);
    } catch {
      return undefined; // a module gone or broken: let full resolution report it
    }
    if (!s.code || hashJson(fp) !== hashJson(s.code)) return undefined;
    s.code = fp;
  }
  for (const s of plan.stages) {
    for (const path of Object.values(s.externals)) {
      try {
        await Deno.stat(path);
      } catch {
        return undefined; // let full resolution report it properly
      }
    }
  }
  return { experiment: plan.experiment, stages: plan.stages };
}
