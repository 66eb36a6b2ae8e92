/**
 * Typed error for bad or missing data files. Stage code throws it; the engine maps it to exit
 * code 2 ("the data is wrong", as opposed to a bug). The message always starts with the file.
 */
import { StageInputError } from "../../../pipeline/stage.ts";

export class DataError extends StageInputError {
  /** Path of the offending file or folder. */
  declare readonly file: string;

  constructor(file: string, detail: string, options?: ErrorOptions) {
    super(`${file}: ${detail}`, file);
    if (options?.cause) this.cause = options.cause;
    this.name = "DataError";
  }
}

/** True for a Deno/Node "file not found" error. */
export function isNotFound(err: unknown): boolean {
  return err instanceof Deno.errors.NotFound ||
    (typeof err === "object" && err !== null && (err as { code?: unknown }).code === "ENOENT");
}
