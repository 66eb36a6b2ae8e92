/**
 * A one-node Slurm cluster on 127.0.0.1 for tests: munged, slurmctld and slurmd started in a
 * temporary directory with their own config and random ports, stopped on dispose. Needs
 * Debian's slurm-wlm and munge (`.ci/run` installs them); `slurmMissing()` says why not.
 */
import { join } from "node:path";

const BINARIES = ["munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol"];

export async function slurmMissing(): Promise<string | undefined> {
  for (const b of BINARIES) {
    const found = await new Deno.Command("sh", { args: ["-c", `command -v ${b}`], stdout: "null" })
      .output().then((o) => o.success).catch(() => false);
    if (!found) return `${b} not installed (apt-get install slurm-wlm munge)`;
  }
  return undefined;
}

export interface Cluster {
  dir: string;
  env: Record<string, string>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startCluster(): Promise<Cluster> {
  const dir = await Deno.makeTempDir({ prefix: "kme-slurm-" });
  for (const d of ["state", "spool"]) await Deno.mkdir(join(dir, d));
  const key = crypto.getRandomValues(new Uint8Array(1024));
  await Deno.writeFile(join(dir, "munge.key"), key, { mode: 0o400 });
  const port = 20000 + Math.floor(Math.random() * 20000);
  const conf = join(dir, "slurm.conf");
  await Deno.writeTextFile(
    conf,
    `ClusterName=kmetest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=${dir}/munge.sock
CredType=cred/munge
StateSaveLocation=${dir}/state
SlurmdSpoolDir=${dir}/spool
SlurmctldPidFile=${dir}/slurmctld.pid
SlurmdPidFile=${dir}/slurmd.pid
SlurmctldPort=${port}
SlurmdPort=${port + 1}
SlurmctldLogFile=${dir}/slurmctld.log
SlurmdLogFile=${dir}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=600
KillWait=10
MpiDefault=none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
`,
  );
  const env = { SLURM_CONF: conf };
  const spawn = (cmd: string, args: string[]) =>
    new Deno.Command(cmd, { args, env, stdin: "null", stdout: "null", stderr: "null" }).spawn();
  const procs = [
    spawn("munged", [
      "-F",
      "-f",
      `--socket=${dir}/munge.sock`,
      `--key-file=${dir}/munge.key`,
      `--log-file=${dir}/munged.log`,
      `--pid-file=${dir}/munged.pid`,
      `--seed-file=${dir}/munged.seed`,
    ]),
  ];
  await waitFor(() => Deno.stat(join(dir, "munge.sock")).then(() => true, () => false), "munged");
  procs.push(spawn("slurmctld", ["-D", "-i"]));
  procs.push(spawn("slurmd", ["-D", "-N", "localhost"]));
  await waitFor(async () => {
    const o = await new Deno.Command("sinfo", {
      args: ["-h", "-o", "%t"],
      env,
      stdout: "piped",
      stderr: "null",
    })
      .output();
    return o.success && /idle|mix|alloc/.test(new TextDecoder().decode(o.stdout));
  }, "slurm node idle");
  return {
    dir,
    env,
    async [Symbol.asyncDispose]() {
      for (const p of procs.reverse()) {
        try {
          p.kill("SIGTERM");
        } catch { /* gone */ }
        await p.status;
      }
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

async function waitFor(check: () => Promise<boolean>, what: string, ms = 30_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}
