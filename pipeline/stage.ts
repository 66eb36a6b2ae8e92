/**
 * The stage contract: the only part of the engine a stage sees.
 *
 * A stage module default-exports a `Stage` (built with `defineStage`). That module must stay
 * light (zod and types only): the runner imports it to validate params and compute cache keys
 * even when the stage is a cache hit. Heavy code (TensorFlow.js, sharp) belongs in a module
 * that `run` imports dynamically, e.g. `run: async (ctx) => (await import("./run.ts")).run(ctx)`.
 * Dynamic imports with a literal specifier are part of the stage's code fingerprint.
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
  /** Writes a line to the console and to the entry's log. */
  log(message: string): void;
  progress: Progress;
  /** Aborted on SIGINT/SIGTERM: checkpoint to `scratch` and throw `signal.reason`. */
  signal: AbortSignal;
  seed: number;
  /** The environment facets that went into the cache key (e.g. the resolved backend). */
  facets: Record<string, string>;
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
  run(ctx: StageContext<P>): Promise<StageResult | void>;
  /**
   * Optional, for `diff`: compares outputs of this stage from two sides (A and B, paired by
   * seed), e.g. with a paired bootstrap over queries. Returns, per metric name, the estimated
   * difference B - A and its 95% interval. Keep it light: it runs in the CLI process.
   */
  compare?(pairs: { a: InputHandle; b: InputHandle }[]): Promise<Record<string, Interval>>;
}

/** An estimated difference with its 95% interval. */
export interface Interval {
  delta: number;
  lo: number;
  hi: number;
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
 * (exit code 2) instead of as a crash. Name the file in the message.
 */
export class StageInputError extends Error {
  constructor(message: string, readonly file?: string) {
    super(message);
    this.name = "StageInputError";
  }
}
