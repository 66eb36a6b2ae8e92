/**
 * The Slurm executor: each stage that must run becomes one `sbatch` job running the worker
 * on that stage's key; the runner follows it (`squeue`, then `scontrol show job`), streams
 * its output file, and cancels it (`scancel`) on interrupt. The store must be on a
 * filesystem the compute nodes share; publishing and locking work across hosts (see
 * store.ts, lock.ts). A job that Slurm kills (time limit, preemption, node failure) leaves
 * the stage's scratch, so the next run resubmits it and it resumes from its checkpoint.
 */
import { join } from "./paths.ts";
import type { StoreLayout } from "./store_layout.ts";
import type { Job } from "./job.ts";
import { type ExecStatus, type Execution, type Executor, workerArgs } from "./executor.ts";

/** Slurm resources of a stage (experiment-level `resources:` merged with the stage's). */
export interface Resources {
  cpus?: number;
  mem?: string;
  gpus?: number;
  time?: string;
  partition?: string;
  /** Further sbatch options, verbatim (e.g. ["--qos=short"]). */
  sbatch?: string[];
}

async function run(
  cmd: string,
  args: string[],
): Promise<{ ok: boolean; out: string; err: string }> {
  try {
    const o = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
    const dec = new TextDecoder();
    return { ok: o.success, out: dec.decode(o.stdout).trim(), err: dec.decode(o.stderr).trim() };
  } catch (e) {
    return {
      ok: false,
      out: "",
      err: e instanceof Deno.errors.NotFound ? `${cmd}: not found` : String(e),
    };
  }
}

/** Why Slurm cannot be used here, or undefined when sbatch, squeue and a controller answer. */
export async function slurmUnavailable(): Promise<string | undefined> {
  for (const cmd of ["sbatch", "squeue", "scancel", "scontrol"]) {
    const r = await run(cmd, ["--version"]);
    if (!r.ok) {
      return `--executor slurm needs Slurm's '${cmd}' on PATH (${r.err || "it failed"}); ` +
        `install Slurm's client tools (Debian: apt-get install slurm-client) or use --executor local`;
    }
  }
  const q = await run("squeue", ["-h", "-o", "%i"]);
  if (!q.ok) return `--executor slurm: squeue cannot reach the Slurm controller: ${q.err}`;
  return undefined;
}

export class SlurmExecutor implements Executor {
  readonly name = "slurm";

  constructor(
    private configPath: string,
    private layout: StoreLayout,
    private resourcesOf: (job: Job) => Resources = () => ({}),
    private pollMs = 500,
  ) {}

  start(
    job: Job,
    onLine: (line: string, stream: "out" | "err") => void | Promise<void>,
  ): Execution {
    const dir = this.layout.jobsDir;
    const id = `${job.key.slice(0, 16)}.${crypto.randomUUID().slice(0, 8)}`;
    const [jobFile, outFile, script] = ["json", "out", "sh"].map((x) => join(dir, `${id}.${x}`));
    let slurmId: string | undefined;
    let cancelled = false;
    const submitted = (async () => {
      await Deno.mkdir(dir, { recursive: true });
      await Deno.writeTextFile(jobFile, JSON.stringify(job));
      const r = this.resourcesOf(job);
      const opts = [
        `--job-name=kme-${job.stage.replace(/[^\w.=,[\]-]/g, "_")}`,
        `--output=${outFile}`,
        `--chdir=${Deno.cwd()}`,
        ...(r.cpus ? [`--cpus-per-task=${r.cpus}`] : []),
        ...(r.mem ? [`--mem=${r.mem}`] : []),
        ...(r.gpus ? [`--gpus=${r.gpus}`] : []),
        ...(r.time ? [`--time=${r.time}`] : []),
        ...(r.partition ? [`--partition=${r.partition}`] : []),
        ...(r.sbatch ?? []),
      ];
      const cmd = [Deno.execPath(), ...workerArgs(this.configPath, ["--job-file", jobFile])]
        .map(shellQuote).join(" ");
      await Deno.writeTextFile(
        script,
        `#!/bin/bash\n${opts.map((o) => `#SBATCH ${o}`).join("\n")}\nexec ${cmd}\n`,
      );
      const s = await run("sbatch", ["--parsable", script]);
      if (!s.ok) throw new Error(`sbatch failed: ${s.err || s.out}`);
      slurmId = s.out.split(";")[0];
      await onLine(`submitted as Slurm job ${slurmId}`, "err");
      return slurmId;
    })();

    const done = (async (): Promise<ExecStatus> => {
      let jid: string;
      try {
        jid = await submitted;
      } catch (e) {
        return { code: 1, detail: (e as Error).message };
      }
      let offset = 0, partial = "", node: string | undefined;
      const drain = async () => {
        let f: Deno.FsFile;
        try {
          f = await Deno.open(outFile, { read: true });
        } catch {
          return; // not started yet
        }
        try {
          await f.seek(offset, Deno.SeekMode.Start);
          const buf = new Uint8Array(1 << 16);
          let text = "";
          while (true) {
            const n = await f.read(buf);
            if (n === null) break;
            offset += n;
            text += new TextDecoder().decode(buf.subarray(0, n), { stream: true });
          }
          partial += text;
          let i;
          while ((i = partial.indexOf("\n")) >= 0) {
            await onLine(partial.slice(0, i), "out");
            partial = partial.slice(i + 1);
          }
        } finally {
          f.close();
        }
      };
      while (true) {
        const q = await run("squeue", ["-h", "-j", jid, "-o", "%T %N"]);
        await drain();
        const line = q.ok ? q.out : "";
        if (!line) break;
        const [, n] = line.split(/\s+/);
        if (n) node = n;
        await new Promise((r) => setTimeout(r, this.pollMs));
      }
      await drain();
      if (partial) await onLine(partial, "out");
      const info = await run("scontrol", ["show", "job", jid]);
      const state = info.out.match(/JobState=(\S+)/)?.[1];
      const exit = info.out.match(/ExitCode=(\d+):(\d+)/);
      node ??= info.out.match(/\bNodeList=(\S+)/)?.[1];
      if (state === "COMPLETED") return { code: 0, node };
      if (state === "CANCELLED" || cancelled) {
        return { code: 130, node, detail: `Slurm job ${jid} was cancelled` };
      }
      if (state === "FAILED" && exit) return { code: Number(exit[1]) || 1, node };
      return {
        code: 1,
        node,
        detail: `Slurm job ${jid} ended in state ${state ?? "unknown"}` +
          " (its scratch is kept: the next run resumes from the last checkpoint)",
      };
    })();

    const cancel = (signal?: string) => {
      cancelled = true;
      submitted.then((jid) => run("scancel", signal ? ["-s", signal, jid] : [jid])).catch(() => {});
    };
    return { done, terminate: () => cancel(), kill: () => cancel("KILL") };
  }
}

function shellQuote(s: string): string {
  return /^[\w./=:@+-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}
