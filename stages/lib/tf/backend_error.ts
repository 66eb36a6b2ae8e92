/** The error of a backend that cannot be used here: bad setup, so exit 2 with its message. */
export class BackendUnavailableError extends Error {
  /** A setting or an installation to change, not a bug: pipeline/worker.ts exits 2, no stack. */
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = "BackendUnavailableError";
  }
}
