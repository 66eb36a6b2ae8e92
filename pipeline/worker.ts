/**
 * Worker entry point: runs a single stage by key. The local executor starts one per stage
 * that must run, writes the job as the first line of stdin and keeps stdin open; end of stdin
 * means the runner died (even by SIGKILL), so the worker stops too instead of running on
 * orphaned. Cluster jobs pass `--job-file PATH` instead (and are cancelled by the scheduler).
 * Events go to stdout as JSON lines. Exit codes: 0 ok, 1 stage failed, 2 bad input,
 * 130 interrupted.
 */
import { executeJob } from "./execute.ts";
import { InterruptedError, isBadInputOrSetup, isDiskFull } from "./errors.ts";
import type { Job, WorkerEvent } from "./job.ts";
import { openStore } from "./store.ts";

const enc = new TextEncoder();
const emit = (e: WorkerEvent) => Deno.stdout.writeSync(enc.encode(JSON.stringify(e) + "\n"));

const abort = new AbortController();
const stopSoon = (why: string) => {
  if (!abort.signal.aborted) abort.abort(new InterruptedError(why));
  // A stage gets a grace period to checkpoint; then the worker goes regardless.
  setTimeout(() => Deno.exit(130), 30_000);
};
for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(sig, () => stopSoon(sig));

/** The job: from `--job-file PATH` (cluster jobs), else the first line of stdin. */
async function readJob(): Promise<Job> {
  const i = Deno.args.indexOf("--job-file");
  if (i >= 0) return JSON.parse(await Deno.readTextFile(Deno.args[i + 1]));
  const reader = Deno.stdin.readable.getReader();
  let buffered = "";
  const dec = new TextDecoder();
  while (!buffered.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) Deno.exit(130);
    buffered += dec.decode(value, { stream: true });
  }
  (async () => {
    while (!(await reader.read()).done) { /* the runner never writes more */ }
    stopSoon("the runner exited");
  })();
  return JSON.parse(buffered.slice(0, buffered.indexOf("\n")));
}
const job = await readJob();
const layout = openStore(job.store).layout;

try {
  const r = await executeJob(job, emit, abort.signal);
  emit({ t: "done", ...r });
  Deno.exit(0);
} catch (e) {
  const err = e as Error;
  const interrupted = e instanceof InterruptedError || abort.signal.aborted;
  const full = isDiskFull(e);
  const inputError = full || isBadInputOrSetup(e);
  const exit = interrupted ? 130 : inputError ? 2 : 1;
  if (full) {
    // The stage names no path; the store is where it writes (staging, scratch).
    err.message = `no space left on the device of the store ${layout.root} (${err.message}); ` +
      "free some space or pass --store on another disk, then rerun: finished stages are kept";
  }
  const detail = interrupted || inputError ? err.message : (err?.stack ?? String(e));
  const logPath = layout.scratchLogPath(job.key);
  try {
    await Deno.writeTextFile(logPath, `${detail}\n`, { append: true });
  } catch { /* scratch may not exist if we failed before creating it */ }
  emit({ t: "error", exit, message: interrupted ? "interrupted" : err.message, logPath });
  Deno.exit(exit);
}
