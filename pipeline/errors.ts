/** Typed errors of the engine. Each maps to an exit code in the CLI. */

/** A position in a user's file; line and column are 1-based. */
export interface SourcePos {
  file: string;
  line: number;
  col: number;
}

/** Bad experiment input: reported as `file:line:col: message`, exit code 2, nothing written. */
export class ConfigError extends Error {
  constructor(message: string, readonly pos?: SourcePos) {
    super(message);
    this.name = "ConfigError";
  }

  override toString(): string {
    const where = this.pos ? `${this.pos.file}:${this.pos.line}:${this.pos.col}: ` : "";
    return `${where}error: ${this.message}`;
  }
}

/** A stage that ran and failed: exit code 1; published entries and its scratch are kept. */
export class StageFailedError extends Error {
  constructor(
    readonly stage: string,
    readonly logPath: string,
    detail: string,
  ) {
    super(`stage '${stage}' failed: ${detail}\n  log: ${logPath}`);
    this.name = "StageFailedError";
  }
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
