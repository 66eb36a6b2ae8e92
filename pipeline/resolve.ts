/**
 * From a merged experiment to validated, ordered stages: stage kinds loaded, params checked
 * against each kind's schema (defaults applied), inputs bound, cycles rejected. Every problem
 * is a ConfigError at the file, line and column responsible.
 */
import { z } from "zod";
import { ConfigError } from "./errors.ts";
import { type MergedExperiment, type Resources, zodToConfigError } from "./experiment_file.ts";
import type { CodeFingerprint, ProjectResolver } from "./fingerprint.ts";
import { dirname, fromFileUrl, resolve as resolvePath, toFileUrl } from "./paths.ts";
import type { ParamSource, Stage } from "./stage.ts";
import { didYouMean } from "./suggest.ts";
import {
  checkExclude,
  excludes,
  expandMatrix,
  instanceName,
  isPlain,
  type Labels,
  mergeLabels,
  splitExclude,
} from "./matrix.ts";

export type { Labels };
import type { PathSeg } from "./yaml_source.ts";

/** A stage instance as the runner needs it: everything but the loaded definition. */
export type PlannedStage = Omit<ResolvedStage, "def">;

export interface ResolvedStage {
  /** Instance name: the YAML name, with `[axis=value,...]` when swept by a matrix. */
  name: string;
  /** The stage's name in the experiment file. */
  base: string;
  /** Matrix values of this instance and of the upstream instances it consumes. */
  labels: Labels;
  kind: string;
  /** Absolute path of the module that default-exports the Stage. */
  modulePath: string;
  def: Stage<unknown>;
  params: Record<string, unknown>;
  /** Input name -> upstream stage name. */
  inputs: Record<string, string>;
  seed: number;
  externals: Record<string, string>;
  facets: Record<string, string>;
  /** For cluster executors; not part of the cache key. */
  resources: Resources;
  /**
   * Code modules named by params (`Stage.modules`), by param: absolute path, and the hash
   * of the module's own code fingerprint once it is computed (`stageFingerprint`).
   */
  modules: Record<string, { path: string; digest?: string }>;
  /** The stage module's code fingerprint merged with those of `modules`. */
  code?: CodeFingerprint;
}

export interface ResolvedExperiment {
  exp: MergedExperiment;
  /** In a topological order (inputs before the stages that use them). */
  stages: ResolvedStage[];
  byName: Map<string, ResolvedStage>;
  /** YAML stage name -> its instances. */
  instancesOf: Map<string, ResolvedStage[]>;
}

/** Built-in stage kinds -> module URL. Supplied by the CLI so the engine knows no stage. */
export type StageCatalog = Record<string, URL>;

const defCache = new Map<string, Stage<unknown>>();

/** Imports the stage definition behind `kind`, as set in its stage entry. */
async function loadDefinition(
  kind: string,
  exp: MergedExperiment,
  stageName: string,
  catalog: StageCatalog,
): Promise<{ def: Stage<unknown>; modulePath: string }> {
  const at = () => exp.locate(["stages", stageName, "kind"]);
  let url: URL | undefined = catalog[kind];
  if (!url) {
    if (!/^(\.\.?\/|\/)|\.(ts|js|mts|mjs)$/.test(kind)) {
      throw new ConfigError(
        `unknown stage kind '${kind}'${didYouMean(kind, Object.keys(catalog))}; ` +
          `known kinds: ${Object.keys(catalog).sort().join(", ") || "(none)"}`,
        at(),
      );
    }
    const file = exp.sourceOf(["stages", stageName, "kind"]).file;
    url = toFileUrl(resolvePath(dirname(resolvePath(file)), kind));
  }
  const modulePath = fromFileUrl(url);
  let def = defCache.get(modulePath);
  if (!def) {
    try {
      await Deno.stat(modulePath);
    } catch {
      throw new ConfigError(`stage module '${kind}' not found (looked at ${modulePath})`, at());
    }
    let mod: { default?: Stage<unknown> };
    try {
      mod = await import(url.href);
    } catch (e) {
      throw new ConfigError(`stage module '${kind}' failed to load: ${(e as Error).message}`, at());
    }
    const d = mod.default;
    if (!d || typeof d.run !== "function" || !d.params || typeof d.inputs !== "object") {
      throw new ConfigError(
        `stage module '${kind}' must default-export a Stage (kind, params, inputs, run)`,
        at(),
      );
    }
    def = d;
    defCache.set(modulePath, def);
  }
  return { def, modulePath };
}

/** The top-level param names of a stage kind, when its schema is an object. */
function paramNames(def: Stage<unknown>): string[] | undefined {
  const s = def.params as unknown as { shape?: Record<string, unknown> };
  return s instanceof z.ZodObject && s.shape ? Object.keys(s.shape) : undefined;
}

/**
 * With `resolver`, the code of modules named by params is scanned (a computed import, a
 * missing file) before `refineParams` imports them, so such errors point at their line.
 */
export async function resolveExperiment(
  exp: MergedExperiment,
  catalog: StageCatalog,
  resolver?: ProjectResolver,
): Promise<ResolvedExperiment> {
  const names = Object.keys(exp.stages);
  if (names.length === 0) {
    throw new ConfigError("the experiment has no stages", exp.locate(["stages"]));
  }
  const loaded = new Map<string, { def: Stage<unknown>; modulePath: string }>();
  for (const name of names) {
    loaded.set(name, await loadDefinition(exp.stages[name].kind, exp, name, catalog));
  }

  // defaults: 'all' and per-kind sections must each be usable somewhere.
  const kindsUsed = new Set(names.map((n) => exp.stages[n].kind));
  for (const [section, values] of Object.entries(exp.defaults)) {
    if (section !== "all" && !kindsUsed.has(section)) {
      throw exp.error(
        ["defaults", section],
        `defaults for kind '${section}', which no stage uses${
          didYouMean(section, [...kindsUsed, "all"])
        }`,
        { key: true },
      );
    }
    if (section === "all") {
      for (const p of Object.keys(values)) {
        const anyone = names.some((n) => paramNames(loaded.get(n)!.def)?.includes(p) ?? true);
        if (!anyone) {
          const all = new Set(names.flatMap((n) => paramNames(loaded.get(n)!.def) ?? []));
          throw exp.error(
            ["defaults", "all", p],
            `default param '${p}' is not a param of any stage${didYouMean(p, all)}`,
            { key: true },
          );
        }
      }
    }
  }

  // Inputs first (so that the cycle check can name real edges), then order the YAML stages.
  for (const name of names) checkInputs(exp, name, loaded.get(name)!.def);
  const yamlOrder = topoOrder(exp, names);

  // Expand matrices and fan out downstream: one instance per combination of the upstream
  // instances (agreeing on shared axes) and of the stage's own matrix.
  const instancesOf = new Map<string, ResolvedStage[]>();
  const stages = new Map<string, ResolvedStage>();
  const paramErrors: ConfigError[] = [];
  for (const name of yamlOrder) {
    const entry = exp.stages[name];
    const { def, modulePath } = loaded.get(name)!;
    const { axes, exclude } = splitExclude(exp, name, entry.matrix);
    const own = expandMatrix(exp, name, axes, paramNames(def));
    const excluded = exclude.map(() => 0);
    const axesSeen = new Set<string>();
    let combos: { labels: Labels; inputs: Record<string, string> }[] = [{ labels: {}, inputs: {} }];
    for (const [inName, upstream] of Object.entries(entry.inputs)) {
      const next: typeof combos = [];
      for (const c of combos) {
        for (const up of instancesOf.get(upstream)!) {
          const labels = mergeLabels(c.labels, up.labels);
          if (labels) next.push({ labels, inputs: { ...c.inputs, [inName]: up.name } });
        }
      }
      combos = next;
    }
    const list: ResolvedStage[] = [];
    for (const c of combos) {
      for (const m of own) {
        const labels = mergeLabels(c.labels, m.labels);
        if (!labels) continue;
        for (const k of Object.keys(labels)) axesSeen.add(k);
        let drop = false;
        exclude.forEach((e, i) => {
          if (excludes(e, labels)) (excluded[i]++, drop = true);
        });
        if (drop) continue;
        const instance = instanceName(name, labels);
        let r: ResolvedStage;
        try {
          r = await resolveInstance(
            exp,
            name,
            instance,
            def,
            modulePath,
            m.params,
            m.seed,
            resolver,
          );
        } catch (e) {
          // Bad params of one stage must not hide those of the next: collect, report together.
          if (!(e instanceof ConfigError)) throw e;
          paramErrors.push(e);
          // A stand-in with its labels, so that downstream stages are expanded (and checked)
          // too; the experiment is refused below, before anything could use it.
          list.push({ name: instance, labels } as ResolvedStage);
          continue;
        }
        r.inputs = c.inputs;
        r.labels = labels;
        list.push(r);
        stages.set(instance, r);
      }
    }
    checkExclude(exp, name, exclude, excluded, axesSeen);
    instancesOf.set(name, list);
  }
  if (paramErrors.length) throw ConfigError.many(paramErrors);
  const order = yamlOrder.flatMap((n) => instancesOf.get(n)!.map((s) => s.name));
  return { exp, stages: order.map((n) => stages.get(n)!), byName: stages, instancesOf };
}

function checkInputs(exp: MergedExperiment, name: string, def: Stage<unknown>) {
  const entry = exp.stages[name];
  for (const [inName, upstream] of Object.entries(entry.inputs)) {
    if (!(inName in def.inputs)) {
      const spec = Object.keys(def.inputs);
      throw exp.error(
        ["stages", name, "inputs", inName],
        `stage kind '${def.kind}' has no input '${inName}'${didYouMean(inName, spec)}; ` +
          `its inputs: ${spec.join(", ") || "(none)"}`,
        { key: true },
      );
    }
    if (!(upstream in exp.stages)) {
      throw exp.error(
        ["stages", name, "inputs", inName],
        `input '${inName}' refers to stage '${upstream}', which does not exist${
          didYouMean(upstream, Object.keys(exp.stages))
        }`,
      );
    }
  }
  for (const [inName, spec] of Object.entries(def.inputs)) {
    if (!spec.optional && !(inName in entry.inputs)) {
      throw exp.error(
        ["stages", name, "kind"],
        `stage '${name}' (kind '${def.kind}') needs input '${inName}' (${spec.description}): ` +
          `add 'inputs: { ${inName}: <stage name> }'`,
      );
    }
  }
}

/** Params (defaults, then the stage's own, then matrix values), externals and facets. */
async function resolveInstance(
  exp: MergedExperiment,
  name: string,
  instance: string,
  def: Stage<unknown>,
  modulePath: string,
  matrixParams: Record<string, unknown>,
  matrixSeed: number | undefined,
  resolver: ProjectResolver | undefined,
): Promise<ResolvedStage> {
  const entry = exp.stages[name];
  const known = paramNames(def);
  const fromAll = Object.fromEntries(
    Object.entries(exp.defaults.all ?? {}).filter(([k]) => known?.includes(k) ?? false),
  );
  const fromKind = exp.defaults[entry.kind] ?? {};
  if (known) {
    for (
      const [where, obj] of [
        [["defaults", entry.kind], fromKind],
        [["stages", name, "params"], entry.params],
      ] as const
    ) {
      for (const k of Object.keys(obj)) {
        if (!known.includes(k)) {
          throw exp.error(
            [...where, k],
            `unknown param '${k}' for kind '${def.kind}'${didYouMean(k, known)}; ` +
              `its params: ${known.join(", ")}`,
            { key: true },
          );
        }
      }
    }
  }
  const raw = deepMerge(deepMerge(deepMerge(fromAll, fromKind), entry.params), matrixParams);
  /** Where the value of top-level param `param` was set (the most specific place wins). */
  const prefixOf = (param: string): PathSeg[] =>
    Object.hasOwn(matrixParams, param)
      ? ["stages", name, "matrix"]
      : Object.hasOwn(entry.params, param)
      ? ["stages", name, "params"]
      : Object.hasOwn(fromKind, param)
      ? ["defaults", entry.kind]
      : Object.hasOwn(fromAll, param)
      ? ["defaults", "all"]
      : ["stages", name, "params"];
  /** The node of param `param`'s value (for a matrix axis, the value of this instance). */
  const paramPath = (param: string): PathSeg[] => {
    const prefix = prefixOf(param);
    const i = prefix[2] === "matrix" ? entry.matrix?.[param]?.indexOf(matrixParams[param]) : -1;
    return i !== undefined && i >= 0 ? [...prefix, param, i] : [...prefix, param];
  };
  // Each issue at the node that set its param (the stage, its matrix, or a defaults section).
  const schemaError = (error: z.ZodError) =>
    ConfigError.many(error.issues.map((issue) =>
      zodToConfigError(
        { issues: [issue] } as z.ZodError,
        exp,
        `stages.${instance}.params`,
        prefixOf(String(issue.path[0] ?? "")),
        () => [],
        raw,
      )
    ));
  const parsed = def.params.safeParse(raw);
  if (!parsed.success) throw schemaError(parsed.error);
  let params = parsed.data as Record<string, unknown>;

  // Modules named by params: resolved like `kind:` paths, against the file that set them.
  const modules: Record<string, { path: string }> = {};
  let named: Record<string, string>;
  try {
    named = def.modules?.(params) ?? {};
  } catch (e) {
    throw exp.error(["stages", name, "params"], `stage '${instance}': ${messageOf(e)}`);
  }
  for (const [param, spec] of Object.entries(named)) {
    if (spec === undefined || spec === null) continue; // an optional param left unset
    const at = paramPath(param);
    if (typeof spec !== "string") {
      throw exp.error(at, `stage '${instance}': param '${param}' must be a path to a module`);
    }
    const file = exp.sourceOf(at).file;
    const path = spec.startsWith("file:")
      ? fromFileUrl(spec)
      : resolvePath(dirname(resolvePath(file)), spec);
    const isFile = await Deno.stat(path).then((st) => st.isFile, () => false);
    if (!isFile) {
      throw exp.error(
        at,
        `stage '${instance}': module '${spec}' (param '${param}') not found (looked at ${path})`,
      );
    }
    await resolver?.fingerprint(path);
    modules[param] = { path };
  }
  if (def.refineParams) {
    const paths = Object.fromEntries(Object.entries(modules).map(([k, m]) => [k, m.path]));
    try {
      const setBy = Object.fromEntries(
        Object.keys(raw).map((k) => {
          const at = prefixOf(k);
          return [k, at[0] === "defaults" ? "defaults" : at[2] === "matrix" ? "matrix" : "params"];
        }),
      ) as Record<string, ParamSource>;
      params = (await def.refineParams(params, paths, setBy)) as Record<string, unknown>;
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      if (isZodError(e)) throw schemaError(e);
      const first = Object.keys(modules)[0];
      throw exp.error(
        first ? paramPath(first) : ["stages", name, "params"],
        `stage '${instance}': ${messageOf(e)}`,
      );
    }
  }

  const base = dirname(resolvePath(exp.file));
  const externals: Record<string, string> = {};
  for (const [ename, spec] of Object.entries(def.externals?.(params) ?? {})) {
    const { path, hint } = typeof spec === "string" ? { path: spec, hint: undefined } : spec;
    const abs = resolvePath(base, path);
    try {
      await Deno.stat(abs);
    } catch {
      throw exp.error(
        ["stages", name, "params"],
        `stage '${instance}': ${ename} '${abs}' does not exist${hint ? `; ${hint}` : ""}`,
      );
    }
    externals[ename] = abs;
  }
  const facets = (await def.facets?.(params)) ?? {};
  return {
    name: instance,
    base: name,
    kind: entry.kind,
    modulePath,
    def,
    params,
    inputs: {},
    labels: {},
    seed: matrixSeed ?? entry.seed ?? exp.seed,
    externals,
    facets,
    resources: entry.resources,
    modules,
  };
}

/** A zod error, also from another copy of zod (a plugin's). */
function isZodError(e: unknown): e is z.ZodError {
  return e instanceof z.ZodError ||
    (e !== null && typeof e === "object" && (e as { name?: unknown }).name === "ZodError" &&
      Array.isArray((e as { issues?: unknown }).issues));
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Depth-first topological order of the YAML stages; a cycle is reported with its path. */
function topoOrder(exp: MergedExperiment, names: string[]): string[] {
  const state = new Map<string, "visiting" | "done">();
  const order: string[] = [];
  const visit = (name: string, path: string[]) => {
    const s = state.get(name);
    if (s === "done") return;
    if (s === "visiting") {
      const cycle = [...path.slice(path.indexOf(name)), name];
      throw exp.error(
        ["stages", name, "inputs"],
        `the stages form a cycle: ${cycle.join(" -> ")}`,
      );
    }
    state.set(name, "visiting");
    for (const up of Object.values(exp.stages[name].inputs)) visit(up, [...path, name]);
    state.set(name, "done");
    order.push(name);
  };
  for (const name of names) visit(name, []);
  return order;
}

function deepMerge(
  a: Record<string, unknown>,
  b: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const x = out[k];
    out[k] = isPlain(x) && isPlain(v) ? deepMerge(x, v) : v;
  }
  return out;
}
