/**
 * Reading experiment files: YAML -> structural validation -> `extends:` merging, keeping for
 * every value the file it came from so later errors still point at file:line:col.
 */
import { dirname, relative, resolve } from "./paths.ts";
import { z } from "zod";
import { ConfigError, type SourcePos } from "./errors.ts";
import { didYouMean } from "./suggest.ts";
import { type PathSeg, YamlSource } from "./yaml_source.ts";

export const NAME_RE = /^[A-Za-z][A-Za-z0-9_.-]*$/;

const resourcesSchema = z.strictObject({
  cpus: z.int().min(1).optional(),
  mem: z.string().regex(/^\d+[KMGT]?$/, "like 4G or 16000M").optional(),
  gpus: z.int().min(0).optional(),
  time: z.string().optional().describe("Slurm time limit, e.g. 02:00:00 or 1-00:00:00"),
  partition: z.string().optional(),
  sbatch: z.array(z.string()).optional().describe("further sbatch options, verbatim"),
}).describe("What a stage needs from a cluster executor (not part of the cache key)");

const stageEntrySchema = z.strictObject({
  kind: z.string().min(1).optional().describe(
    "Built-in stage kind (e.g. 'pretrain') or a path to a module that default-exports a Stage",
  ),
  description: z.string().nullish(),
  params: z.record(z.string(), z.unknown()).nullish().describe("Parameters of the stage kind"),
  inputs: z.record(z.string(), z.string()).nullish().describe(
    "Named inputs of the kind, each bound to the name of an upstream stage",
  ),
  seed: z.int().min(0).nullish().describe("Overrides the experiment's seed for this stage"),
  resources: resourcesSchema.nullish(),
  matrix: z.record(z.string(), z.array(z.unknown()).min(1).nullable()).nullish().describe(
    "Sweep: param path (or 'seed') -> values; one instance per combination, downstream fans " +
      "out. 'exclude': a list of partial combinations to drop, e.g. [{ seed: 3, embed_dim: 4 }]",
  ),
});

/** The shape of one experiment file, before merging. */
export const experimentFileSchema = z.strictObject({
  name: z.string().regex(NAME_RE, "letters, digits, '_', '-' or '.', starting with a letter")
    .optional().describe("Experiment name (default: the file name); run records go under it"),
  description: z.string().optional(),
  extends: z.union([z.string(), z.array(z.string())]).optional().describe(
    "Experiment file(s) this one builds on, relative to this file; later files override",
  ),
  seed: z.int().min(0).optional().describe("Seed of every stage unless a stage sets its own"),
  resources: resourcesSchema.optional(),
  defaults: z.record(z.string(), z.record(z.string(), z.unknown())).optional().describe(
    "Param defaults: 'all' applies to every stage that has the param, '<kind>' to that kind",
  ),
  stages: z.record(
    z.string().regex(NAME_RE, "letters, digits, '_', '-' or '.', starting with a letter"),
    stageEntrySchema.nullable(),
  ).optional().describe("The stages, by name; null removes a stage inherited via extends"),
});

export type ExperimentFile = z.infer<typeof experimentFileSchema>;
type StageEntry = z.infer<typeof stageEntrySchema>;

export interface MergedStage {
  kind: string;
  description?: string;
  params: Record<string, unknown>;
  inputs: Record<string, string>;
  seed?: number;
  matrix?: Record<string, unknown[]>;
  resources: Resources;
}

export type Resources = z.infer<typeof resourcesSchema>;

/** An experiment after `extends:` merging; `locate` maps any value path back to its file. */
export class MergedExperiment {
  constructor(
    readonly file: string,
    readonly name: string,
    readonly description: string | undefined,
    readonly seed: number,
    readonly defaults: Record<string, Record<string, unknown>>,
    readonly stages: Record<string, MergedStage>,
    /** Every file read, the experiment's own first. */
    readonly sources: YamlSource[],
    private readonly origins: Map<string, YamlSource>,
  ) {}

  /** Names of this experiment and of every file it extends, nearest first. */
  get lineage(): string[] {
    return this.sources.map((s, i) =>
      i === 0 ? this.name : ((s.value as ExperimentFile)?.name ?? defaultName(s.file))
    );
  }

  /** The file that last set `path` (or its nearest parent). */
  sourceOf(path: PathSeg[]): YamlSource {
    for (let i = path.length; i >= 0; i--) {
      const s = this.origins.get(pathKey(path.slice(0, i)));
      if (s) return s;
    }
    return this.sources[0];
  }

  locate(path: PathSeg[], opts: { key?: boolean } = {}): SourcePos {
    return this.sourceOf(path).locate(path, opts);
  }

  error(path: PathSeg[], message: string, opts: { key?: boolean } = {}): ConfigError {
    return new ConfigError(message, this.locate(path, opts));
  }
}

const pathKey = (p: PathSeg[]) => JSON.stringify(p);

/**
 * Loads an experiment file and everything it extends, then the command line's overrides
 * (`-S path=value`, in order), each merged like one more derived file: the result, and the
 * cache keys, are those of a derived experiment that sets the same values. Throws ConfigError.
 */
export async function loadExperiment(
  file: string,
  overrides: string[] = [],
): Promise<MergedExperiment> {
  const abs = resolve(file);
  const origins = new Map<string, YamlSource>();
  const sources: YamlSource[] = [];
  let merged = await loadRec(abs, [], origins, sources, file);
  for (const flag of overrides) {
    const { source, path } = YamlSource.override(file, flag);
    let layer: unknown = source.value;
    for (let i = path.length - 1; i >= 0; i--) layer = { [path[i]]: layer };
    // Checked as a file would be (unknown keys, types), at the flag.
    const parsed = experimentFileSchema.safeParse(layer);
    if (!parsed.success) throw zodToConfigError(parsed.error, source, "", [], undefined, layer);
    if (path[0] === "extends") {
      throw new ConfigError("-S cannot change 'extends'", source.locate([]));
    }
    merged = mergeInto(merged, layer, [], source, origins) as ExperimentFile;
  }
  const own = sources.find((s) => s.file === file)!;
  const ownValue = own.value as ExperimentFile;
  const name = ownValue.name ?? defaultName(abs);
  if (!NAME_RE.test(name)) {
    throw new ConfigError(
      `experiment name '${name}' (from the file name) is not valid: set 'name:'`,
      own.locate([]),
    );
  }
  const stages: Record<string, MergedStage> = {};
  for (const [sname, entry] of Object.entries(merged.stages ?? {})) {
    if (entry === null || entry === undefined) continue;
    if (!entry.kind) {
      // Most often a misspelt stage name in -S or a derived file: a new stage without a kind.
      const others = Object.keys(merged.stages ?? {}).filter((n) => n !== sname);
      throw new ConfigError(
        `stage '${sname}' has no 'kind' (here or in a file it extends)` +
          didYouMean(sname, others),
        (origins.get(pathKey(["stages", sname])) ?? own).locate(["stages", sname]),
      );
    }
    stages[sname] = {
      kind: entry.kind,
      description: entry.description ?? undefined,
      params: (entry.params ?? {}) as Record<string, unknown>,
      inputs: entry.inputs ?? {},
      seed: entry.seed ?? undefined,
      matrix: entry.matrix
        ? Object.fromEntries(
          Object.entries(entry.matrix).filter((e): e is [string, unknown[]] => e[1] !== null),
        )
        : undefined,
      resources: { ...(merged.resources ?? {}), ...(entry.resources ?? {}) },
    };
  }
  return new MergedExperiment(
    file,
    name,
    merged.description,
    merged.seed ?? 0,
    (merged.defaults ?? {}) as Record<string, Record<string, unknown>>,
    stages,
    [own, ...sources.filter((s) => s !== own)],
    origins,
  );
}

function defaultName(abs: string): string {
  return abs.split(/[\\/]/).pop()!.replace(/\.ya?ml$/i, "");
}

async function loadRec(
  abs: string,
  chain: string[],
  origins: Map<string, YamlSource>,
  sources: YamlSource[],
  displayName: string,
): Promise<ExperimentFile> {
  const src = await YamlSource.read(displayName);
  sources.push(src);
  const value = src.value ?? {};
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new ConfigError("an experiment file must be a mapping (name:, stages:, ...)", {
      file: displayName,
      line: 1,
      col: 1,
    });
  }
  const parsed = experimentFileSchema.safeParse(value);
  if (!parsed.success) throw zodToConfigError(parsed.error, src, "", [], undefined, value);
  const data = parsed.data;

  let base: ExperimentFile = {};
  const parents = data.extends === undefined
    ? []
    : Array.isArray(data.extends)
    ? data.extends
    : [data.extends];
  for (let i = 0; i < parents.length; i++) {
    const rel = parents[i];
    const parentAbs = resolve(dirname(abs), rel);
    const at = src.locate(Array.isArray(data.extends) ? ["extends", i] : ["extends"]);
    if (parentAbs === abs || chain.includes(parentAbs)) {
      const cycle = [...chain, abs, parentAbs].map((p) => p.split(/[\\/]/).pop()).join(" -> ");
      throw new ConfigError(`'extends' forms a cycle: ${cycle}`, at);
    }
    try {
      await Deno.stat(parentAbs);
    } catch {
      throw new ConfigError(`extended file '${rel}' does not exist (looked at ${parentAbs})`, at);
    }
    const parentDisplay = relative(Deno.cwd(), parentAbs) || parentAbs;
    const parent = await loadRec(parentAbs, [...chain, abs], origins, sources, parentDisplay);
    base = mergeInto(base, parent, [], undefined, origins) as ExperimentFile;
  }
  const own = { ...data };
  delete own.extends;
  return mergeInto(base, own, [], src, origins) as ExperimentFile;
}

/**
 * Deep merge of plain mappings: `over` wins, arrays and scalars replace, null deletes (so a
 * derived file can drop an inherited stage, matrix or param, which then takes its default).
 * Records `src` as the origin of every path `over` sets.
 */
function mergeInto(
  base: unknown,
  over: unknown,
  path: PathSeg[],
  src: YamlSource | undefined,
  origins: Map<string, YamlSource>,
): unknown {
  if (src) origins.set(pathKey(path), src);
  if (!isPlain(over) || !isPlain(base)) {
    if (!isPlain(over)) return over;
    // Nothing below to remove: `null` there (`-S stages.x.params.lr=null` where only defaults
    // set lr) removes nothing, so the value comes from defaults or the kind, as a null would
    // leave it where there was something to remove.
    const clean = withoutNulls(over);
    if (src) recordAll(clean, path, src, origins);
    return clean;
  }
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === null) {
      delete out[k];
      if (src) origins.set(pathKey([...path, k]), src);
    } else out[k] = mergeInto(base[k], v, [...path, k], src, origins);
  }
  return out;
}

function withoutNulls(v: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(v).filter(([, x]) => x !== null).map((
      [k, x],
    ) => [k, isPlain(x) ? withoutNulls(x) : x]),
  );
}

function recordAll(
  v: Record<string, unknown>,
  path: PathSeg[],
  src: YamlSource,
  origins: Map<string, YamlSource>,
) {
  for (const [k, x] of Object.entries(v)) {
    origins.set(pathKey([...path, k]), src);
    if (isPlain(x)) recordAll(x, [...path, k], src, origins);
  }
}

function isPlain(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Turns the first zod issue into a ConfigError at the offending node. */
export function zodToConfigError(
  error: z.ZodError,
  where: { locate(path: PathSeg[], opts?: { key?: boolean }): SourcePos },
  label: string,
  prefix: PathSeg[] = [],
  knownKeys?: (path: PathSeg[]) => string[],
  input?: unknown,
): ConfigError {
  // Every issue (up to MAX_ISSUES), each at its own place: fixing one at a time is slow.
  const errors = error.issues.slice(0, MAX_ISSUES).map((issue) => {
    const path = [...prefix, ...(issue.path as PathSeg[])];
    const shown = label + (issue.path.length ? (label ? "." : "") + issue.path.join(".") : "");
    if (issue.code === "unrecognized_keys") {
      const key = issue.keys[0];
      const known = knownKeys?.(path) ?? keysOf(issue);
      return new ConfigError(
        `unknown key '${key}'${shown ? ` in ${shown}` : ""}${didYouMean(key, known)}`,
        where.locate([...path, key], { key: true }),
      );
    }
    const value = valueAt(input, issue.path as PathSeg[]);
    const missing = issue.code === "invalid_type" && value === undefined &&
      /received undefined/.test(issue.message);
    const msg = missing
      ? `${shown} is required (${describeIssue(issue, value)})`
      : `${shown ? shown + ": " : ""}${describeIssue(issue, value)}`;
    return new ConfigError(msg, where.locate(path, { key: missing }));
  });
  return ConfigError.many(errors);
}

const MAX_ISSUES = 10;

function valueAt(input: unknown, path: PathSeg[]): unknown {
  let v = input;
  for (const k of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<string | number, unknown>)[k];
  }
  return v;
}

const KINDS: Record<string, string> = {
  int: "an integer",
  number: "a number",
  string: "a string",
  boolean: "true or false",
  array: "a list",
  object: "a mapping",
  record: "a mapping",
};

/** A YAML value as a user wrote it. */
function showValue(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (typeof v === "string") return `'${v}'`;
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (typeof v === "object") return "a mapping";
  return String(v);
}

/**
 * A zod issue in the words of a YAML file: "expected an integer, got 1.5" rather than zod's
 * "expected int, received number"; bounds with the value that broke them.
 */
export function describeIssue(issue: z.core.$ZodIssue, value: unknown): string {
  const got = value === undefined ? "" : `, got ${showValue(value)}`;
  // A schema's own message says more than any rewording: keep it.
  if (!/^(Invalid input|Too small|Too big|Invalid option)\b/.test(issue.message)) {
    return issue.message;
  }
  const bound = (i: { inclusive?: boolean; origin?: string }, op: string, n: unknown) => {
    const o = i.origin;
    if (o === "array" || o === "set") return `needs ${op} ${n} items${got}`;
    if (o === "string") return `needs ${op} ${n} characters${got}`;
    return `must be ${op}${i.inclusive === false ? "" : "="} ${n}${got}`;
  };
  switch (issue.code) {
    case "invalid_type": {
      const want = KINDS[issue.expected] ?? issue.expected;
      return `expected ${want}${got}`;
    }
    case "too_small":
      return bound(issue, ">", issue.minimum);
    case "too_big":
      return bound(issue, "<", issue.maximum);
    case "invalid_value": {
      const opts = issue.values.map((v) => (typeof v === "string" ? `'${v}'` : String(v)));
      const hint = typeof value === "string"
        ? didYouMean(value, issue.values.filter((v) => typeof v === "string") as string[])
        : "";
      return `expected one of ${opts.join(", ")}${got}${hint}`;
    }
    default:
      return issue.message.replace(/^Invalid input: /, "");
  }
}

function keysOf(issue: { path: PropertyKey[] }): string[] {
  return issue.path.length === 0
    ? Object.keys(experimentFileSchema.shape)
    : Object.keys(stageEntrySchema.shape);
}

export type { StageEntry };
