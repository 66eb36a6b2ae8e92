/**
 * Executors start a worker that runs one stage by key. The runner only sees lines of output
 * (JSON events on "out", anything on "err") and an exit status.
 */
import { fromFileUrl } from "./paths.ts";
import type { Job } from "./job.ts";

export const WORKER = fromFileUrl(new URL("./worker.ts", import.meta.url));

export interface ExecStatus {
  code: number;
  signal?: string | null;
  /** Where it ran (a Slurm node), when the executor knows. */
  node?: string;
  detail?: string;
}

export interface Execution {
  done: Promise<ExecStatus>;
  /**
   * Ask the stage to stop cleanly (it checkpoints), with the signal the runner itself got
   * (default SIGTERM), so that the stage's log names what the user sent.
   */
  terminate(signal?: "SIGINT" | "SIGTERM"): void;
  /** Stop it now. */
  kill(): void;
}

export interface Executor {
  readonly name: string;
  start(job: Job, onLine: (line: string, stream: "out" | "err") => void | Promise<void>): Execution;
}

/** The Deno command line that runs the worker. */
export function workerArgs(configPath: string, extra: string[] = []): string[] {
  return ["run", "--allow-all", "--quiet", `--config=${configPath}`, WORKER, ...extra];
}

/** Workers as child processes of the runner. */
export class LocalExecutor implements Executor {
  readonly name = "local";
  constructor(private configPath: string) {}

  start(job: Job, onLine: (line: string, stream: "out" | "err") => void | Promise<void>) {
    const child = new Deno.Command(Deno.execPath(), {
      args: workerArgs(this.configPath),
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    writer.write(new TextEncoder().encode(JSON.stringify(job) + "\n"));
    // stdin stays open: its end tells the worker that this runner died.
    const pumps = Promise.all([
      forEachLine(child.stdout, (l) => onLine(l, "out")),
      forEachLine(child.stderr, (l) => onLine(l, "err")),
    ]);
    const done = (async () => {
      const st = await child.status;
      await pumps;
      writer.close().catch(() => {});
      return { code: st.code, signal: st.signal };
    })();
    const send = (sig: Deno.Signal) => {
      try {
        child.kill(sig);
      } catch { /* already gone */ }
    };
    return {
      done,
      terminate: (sig: Deno.Signal = "SIGTERM") => send(sig),
      kill: () => send("SIGKILL"),
    };
  }
}

export async function forEachLine(
  stream: ReadableStream<Uint8Array>,
  fn: (line: string) => void | Promise<void>,
): Promise<void> {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      await fn(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  }
  if (buf) await fn(buf);
}
