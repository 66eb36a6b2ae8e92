/**
 * Typed errors of the engine, and the one contract for what a stage throws. Each maps to an exit
 * code in the CLI:
 * - 2, bad input or bad setup: `ConfigError` (the experiment file), `UsageError` (the command
 *   line, the store), and from a stage `StageInputError` (pipeline/stage.ts) or any error whose
 *   `exitCode` is 2 (see `isBadInputOrSetup`): the message is shown, no stack trace;
 * - 130, interrupted: `InterruptedError`;
 * - 1, everything else: a bug or a failure; the stage's stack trace goes to its log.
 */
import { StageInputError } from "./stage.ts";

/** A position in a user's file; line and column are 1-based. */
export interface SourcePos {
  file: string;
  line: number;
  col: number;
}

/** Bad experiment input: reported as `file:line:col: message`, exit code 2, nothing written. */
export class ConfigError extends Error {
  /** Further errors found in the same pass (the message is the first's). */
  also: ConfigError[] = [];

  constructor(message: string, readonly pos?: SourcePos) {
    super(message);
    this.name = "ConfigError";
  }

  /** One error for several: the first, with the others (duplicates dropped) in `also`. */
  static many(errors: ConfigError[]): ConfigError {
    const seen = new Set<string>();
    const all = errors.flatMap((e) => [e, ...e.also]).filter((e) => {
      const k = e.headline();
      return seen.has(k) ? false : (seen.add(k), true);
    });
    const [first, ...rest] = all;
    first.also = rest;
    return first;
  }

  /** `file:line:col: error: message`. */
  headline(): string {
    const where = this.pos ? `${this.pos.file}:${this.pos.line}:${this.pos.col}: ` : "";
    return `${where}error: ${this.message}`;
  }

  /** Every error, each with its source line and a caret under the column. */
  override toString(): string {
    const all = [this, ...this.also];
    const text = all.map((e) => e.headline() + excerpt(e.pos)).join("\n");
    return all.length > 1 ? `${text}\n${all.length} errors` : text;
  }
}

/** The line at `pos`, with a caret under its column; empty when the file cannot be read. */
function excerpt(pos: SourcePos | undefined): string {
  if (!pos || pos.line < 1) return "";
  let line: string | undefined;
  try {
    line = Deno.readTextFileSync(pos.file).split(/\r?\n/)[pos.line - 1];
  } catch {
    return ""; // a -S flag, or a file gone meanwhile
  }
  if (line === undefined || line.length > 300) return "";
  const n = String(pos.line);
  const gutter = " ".repeat(n.length);
  const lead = line.slice(0, Math.max(0, pos.col - 1)).replace(/[^\t]/g, " ");
  return `\n ${n} | ${line}\n ${gutter} | ${lead}^`;
}

/** The run was interrupted by SIGINT/SIGTERM: exit code 130. */
export class InterruptedError extends Error {
  constructor(message = "interrupted") {
    super(message);
    this.name = "InterruptedError";
  }
}

/** A usage or environment problem (unknown run id, missing store...): exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * Store metadata (a run record, a manifest) that cannot be read: the message names the file,
 * what is wrong and what to do. Bad input like any other (exit 2), never a stack trace.
 */
export class StoreDamageError extends UsageError {
  constructor(readonly path: string, why: string, advice: string) {
    super(`${path}: ${why}; ${advice}`);
    this.name = "StoreDamageError";
  }
}

/**
 * Whether an error a stage threw is bad input or bad setup (exit 2, its message, no stack):
 * a `StageInputError`, or any error carrying `exitCode: 2`. The latter is how library code
 * that must not import the engine (stages/lib: the TF.js backends, the OpenBLAS loader)
 * signals a setting or an installation to change.
 */
export function isBadInputOrSetup(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  return e instanceof StageInputError || (e as { exitCode?: unknown }).exitCode === 2;
}

/** No space left (or over quota) on a device: the machine's state, not a bug (exit 2). */
export function isDiskFull(e: unknown): boolean {
  const code = (e as { code?: string })?.code;
  if (code === "ENOSPC" || code === "EDQUOT") return true;
  return /\(os error (28|122)\)/.test(String((e as Error)?.message));
}
