/**
 * The stage contract: the only part of the engine a stage sees.
 *
 * A stage module default-exports a `Stage` (built with `defineStage`). That module must stay
 * light (zod and types only): the runner imports it to validate params and compute cache keys
 * even when the stage is a cache hit. Heavy code (TensorFlow.js, sharp) belongs in a module
 * that `run` imports dynamically, e.g. `run: async (ctx) => (await import("./run.ts")).run(ctx)`.
 * Dynamic imports with a literal specifier are part of the stage's code fingerprint; one with
 * a computed specifier is refused (its code would be missing from the key), except for a
 * module named by the params (`modules`), imported on a line marked
 * `// fingerprint: module named by params`.
 */
import type { z } from "zod";

/** One named upstream output a stage consumes. */
export interface InputSpec {
  description: string;
  /** When true the experiment may omit it. */
  optional?: boolean;
}

/** A file of a published entry, as listed in its manifest. */
export interface FileRecord {
  path: string;
  size: number;
  sha256: string;
}

/** What a stage sees of an upstream entry. `dir` is read-only. */
export interface InputHandle {
  dir: string;
  key: string;
  /** Content digest of the entry's outputs (over `files`). */
  digest: string;
  files: FileRecord[];
  metrics: Record<string, Metric>;
}

export type Metric = number | number[];

/** Progress of a long loop; the runner renders it (a bar on a TTY, plain lines otherwise). */
export interface Progress {
  start(total: number, label?: string): void;
  /** `value` is the absolute position; `info` is shown beside the bar (loss, samples/s...). */
  update(value: number, info?: Record<string, string | number>): void;
  stop(): void;
}

export interface StageContext<P> {
  /** Validated params with defaults applied. */
  params: P;
  inputs: Record<string, InputHandle>;
  /** Absolute folder of the experiment file: relative paths in params resolve against it. */
  experimentDir: string;
  /** Absolute path of external files/folders declared by `externals`, by name. */
  externals: Record<string, string>;
  /** Empty staging directory: everything written here is published atomically on success. */
  outDir: string;
  /** Per-key directory that survives interruption and failure; removed after publish. */
  scratch: string;
  /**
   * Says what a rerun of this stage would resume from, e.g. "checkpoint at step 120": `status`
   * and `run --dry-run` show it for a stage that stopped. Call it after each checkpoint. The
   * engine provides it; a harness that runs a stage by hand may leave it out.
   */
  resumePoint?(description: string): Promise<void>;
  /** Writes a line to the console and to the entry's log. */
  log(message: string): void;
  progress: Progress;
  /** Aborted on SIGINT/SIGTERM: checkpoint to `scratch` and throw `signal.reason`. */
  signal: AbortSignal;
  seed: number;
  /** The environment facets that went into the cache key (e.g. the resolved backend). */
  facets: Record<string, string>;
  /**
   * The modules named by params (see `Stage.modules`), by param: absolute `path`, and
   * `digest`, the hash of that module's code fingerprint (its files and npm packages). Record
   * the digest in the outputs: a downstream stage that loads the module by a recorded path
   * then gets a new key when the module changes, through the outputs' content digest.
   * `{}` for a stage without such modules.
   */
  modules: Record<string, ModuleHandle>;
}

/** Where a param's value came from in the experiment file (see `Stage.refineParams`). */
export type ParamSource = "params" | "matrix" | "defaults";

/** A code module named by a stage's params, as resolved by the engine. */
export interface ModuleHandle {
  path: string;
  digest: string;
}

/** An external input; `hint` is shown when the path does not exist (e.g. an install command). */
export interface ExternalSpec {
  path: string;
  hint?: string;
}

export interface StageResult {
  metrics?: Record<string, Metric>;
  /** Free-form facts recorded in the manifest (backend version, thread count...). */
  info?: Record<string, unknown>;
}

export interface Stage<P = unknown> {
  kind: string;
  description: string;
  params: z.ZodType<P>;
  inputs: Record<string, InputSpec>;
  /**
   * External files or folders the stage reads, by name. They are hashed by content (with a
   * stat memo) into the cache key. Paths are resolved against the experiment file's folder.
   */
  externals?(params: P): Record<string, string | ExternalSpec>;
  /**
   * Environment facts that change results (e.g. which tfjs backend `auto` resolves to).
   * Must be cheap: it runs on every invocation, cache hit or not.
   */
  facets?(params: P): Record<string, string> | Promise<Record<string, string>>;
  /**
   * Code modules the stage loads by a path given in its params (plugins), keyed by the name
   * of the param that holds the path, so that errors can point at it. The engine resolves
   * each against the folder of the experiment file that set the param, refuses one that does
   * not exist, and adds its code (and everything it imports) to the stage's code fingerprint:
   * without this, editing a plugin would not rerun the stage. Return only values that are
   * paths (not, say, the name of a built-in).
   */
  modules?(params: P): Record<string, string>;
  /**
   * A second validation step, after the schema, given the absolute paths of `modules` by
   * param. It may import those modules (keep them light: it runs on every invocation whose
   * plan is not cached) and returns the final params, e.g. with a plugin's own defaults
   * filled in, so that they are part of the cache key. A thrown `ZodError` (issue paths
   * relative to the params) is reported at the offending key like a schema error; any other
   * error at the module's param. `setBy` says where each given param was set: on the stage
   * itself (`params:`), by its `matrix:`, or by `defaults:` (which reach every instance, so a
   * value there may be meant for other instances only).
   */
  refineParams?(
    params: P,
    modules: Record<string, string>,
    setBy?: Record<string, ParamSource>,
  ): Promise<P>;
  run(ctx: StageContext<P>): Promise<StageResult | void>;
  /**
   * Optional, for `diff` and the report: the per-query paired results of this stage's outputs
   * on two sides (A and B), one entry per seed pair (pairs matched by seed, in the order given),
   * so that the difference B - A can be resampled over queries. Returns, per metric name, the
   * per-unit differences of each pair; the statistics (query bootstrap, seeds x queries
   * bootstrap) are done by the caller, in one module (`stages/lib/stats/intervals.ts`). Omit a
   * metric whose files are missing on any pair. Keep it light: it runs in the CLI process.
   */
  compare?(pairs: { a: InputHandle; b: InputHandle }[]): Promise<Record<string, PairedQueries>>;
}

/**
 * One metric's per-query paired results over seed pairs. A unit is what is resampled: a query,
 * or a cluster of queries that move together (e.g. the captions of one image). The metric's
 * difference on a set of units is sum(diff) / sum(size), in the metric's own scale.
 */
export interface PairedQueries {
  /** One per seed pair, in the order of the pairs given to `compare`. */
  pairs: { diff: Float64Array; size: Float64Array }[];
  /** True when every pair has the same units (the same test queries): drawn once for all. */
  shared: boolean;
}

/** Identity helper that keeps `P` inferred from the zod schema. */
export function defineStage<S extends z.ZodType>(
  stage: Stage<z.output<S>> & { params: S },
): Stage<z.output<S>> {
  return stage;
}

/**
 * Throw this (or a subclass) when the stage's *input* is bad: a missing or corrupt data file,
 * a dataset that does not fit the params. The runner reports it like a config error
 * (exit code 2) instead of as a crash. Name the file in the message. Library code that cannot
 * import the engine signals bad setup (a missing package, a limit of the machine) with any
 * error whose `exitCode` is 2; everything else a stage throws is exit 1 with its stack in the
 * stage's log (pipeline/errors.ts).
 */
export class StageInputError extends Error {
  constructor(message: string, readonly file?: string) {
    super(message);
    this.name = "StageInputError";
  }
}

/** ` (did you mean 'x'?)` for an unknown name, or "" (for stages' own name checks). */
export { didYouMean } from "./suggest.ts";
