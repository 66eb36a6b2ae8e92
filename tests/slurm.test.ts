/**
 * The Slurm executor against a real one-node cluster on 127.0.0.1 (munged, slurmctld, slurmd
 * started by the test): results identical to the local executor, scancel mid-stage then
 * resume from the checkpoint, and a clear error when Slurm is absent.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readTree, sandbox, spawnKme } from "./helpers/cli.ts";
import { type Cluster, slurmMissing, startCluster } from "./helpers/slurm.ts";

const missing = await slurmMissing();
if (missing) console.log(`slurm tests skipped: ${missing}`);

const SWEEP = `
name: sweep
stages:
  src: {kind: $STAGES/text.ts, params: {text: data}}
  chain:
    kind: $STAGES/counter.ts
    inputs: {src: src}
    params: {steps: 6, step_ms: 30}
    matrix: {seed: [0, 1]}
    resources: {cpus: 1, mem: 500M, time: "00:10:00"}
  tail: {kind: $STAGES/text.ts, inputs: {a: src}, params: {text: "!"}}
`;

async function outputs(store: string, experiment: string) {
  const dir = join(store, "runs", experiment);
  const ids = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  const rec = JSON.parse(await Deno.readTextFile(join(dir, ids.at(-1)!)));
  const out: Record<string, Map<string, Uint8Array>> = {};
  for (const [name, s] of Object.entries(rec.stages) as [string, { key: string }][]) {
    out[name] = await readTree(join(store, "entries", s.key, "out"));
  }
  return { rec, out };
}

let cluster: Cluster | undefined;
const withCluster = async () => (cluster ??= await startCluster());

Deno.test({
  name: `a sweep through Slurm gives the local executor's results${
    missing ? ` (skipped: ${missing})` : ""
  }`,
  ignore: !!missing,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const c = await withCluster();
    await using local = await sandbox();
    const lf = await local.write("sweep.yaml", SWEEP);
    assert.equal((await local.run("run", lf, "--jobs", "2")).code, 0);

    await using sb = await sandbox();
    const f = await sb.write("sweep.yaml", SWEEP);
    const r = await sb.runEnv(c.env, "run", f, "--executor", "slurm", "--jobs", "2");
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /submitted as Slurm job \d+/);
    const [a, b] = [await outputs(local.store, "sweep"), await outputs(sb.store, "sweep")];
    assert.deepEqual(b.out, a.out);
    assert.deepEqual(
      Object.values(b.rec.stages).map((s) => (s as { key: string }).key),
      Object.values(a.rec.stages).map((s) => (s as { key: string }).key),
    );
    for (const s of Object.values(b.rec.stages) as { host: string }[]) assert.ok(s.host);
    const again = await sb.runEnv(c.env, "run", f, "--executor", "slurm");
    assert.doesNotMatch(again.stdout, /submitted/);
  },
});

Deno.test({
  name: `a stage cancelled with scancel resumes from its checkpoint${missing ? " (skipped)" : ""}`,
  ignore: !!missing,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const c = await withCluster();
    const EXP = `
name: long
stages:
  chain: {kind: $STAGES/counter.ts, params: {steps: 30, step_ms: 100, trace: $DIR/rounds}}
`;
    await using ref = await sandbox();
    const rf = await ref.write("long.yaml", EXP.replace("$DIR/rounds", "$DIR/r"));
    assert.equal((await ref.run("run", rf)).code, 0);

    await using sb = await sandbox();
    const f = await sb.write("long.yaml", EXP);
    const child = spawnKme(["run", f, "--store", sb.store, "--executor", "slurm"], sb.dir, c.env);
    for (let i = 0; i < 300 && (await sb.trace("rounds")).length < 5; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const q = await new Deno.Command("squeue", {
      args: ["-h", "-o", "%i %j"],
      env: c.env,
      stdout: "piped",
    }).output();
    const jobId = new TextDecoder().decode(q.stdout).split("\n").find((l) =>
      l.includes("kme-chain")
    )
      ?.split(" ")[0];
    assert.ok(jobId, "the stage's job is in the queue");
    await new Deno.Command("scancel", { args: [jobId], env: c.env }).output();
    const [status] = await Promise.all([
      child.status,
      child.stdout.cancel(),
      child.stderr.cancel(),
    ]);
    assert.notEqual(status.code, 0);
    const before = (await sb.trace("rounds")).length;
    assert.ok(before < 30, `cancelled mid-stage (${before} rounds)`);
    assert.equal([...Deno.readDirSync(join(sb.store, "entries"))].length, 0, "nothing published");

    const r = await sb.runEnv(c.env, "run", f, "--executor", "slurm");
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /resuming at step \d+/);
    assert.ok((await sb.trace("rounds")).length <= 31, "resumed, not restarted");
    const [a, b] = [await outputs(ref.store, "long"), await outputs(sb.store, "long")];
    assert.deepEqual(b.out, a.out);
    assert.equal([...Deno.readDirSync(join(sb.store, "entries"))].length, 1);
  },
});

Deno.test({
  name: `Ctrl-C on the runner cancels its Slurm jobs${missing ? " (skipped)" : ""}`,
  ignore: !!missing,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const c = await withCluster();
    await using sb = await sandbox();
    const f = await sb.write(
      "int.yaml",
      `name: int\nstages:\n  chain: {kind: $STAGES/counter.ts, params: {steps: 50, step_ms: 100, trace: $DIR/rounds}}\n`,
    );
    const child = spawnKme(["run", f, "--store", sb.store, "--executor", "slurm"], sb.dir, c.env);
    for (let i = 0; i < 300 && (await sb.trace("rounds")).length < 3; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    child.kill("SIGINT");
    const [status] = await Promise.all([
      child.status,
      child.stdout.cancel(),
      child.stderr.cancel(),
    ]);
    assert.equal(status.code, 130);
    const q = await new Deno.Command("squeue", {
      args: ["-h", "-o", "%j"],
      env: c.env,
      stdout: "piped",
    })
      .output();
    assert.doesNotMatch(new TextDecoder().decode(q.stdout), /kme-chain/);
    const n = (await sb.trace("rounds")).length;
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await sb.trace("rounds")).length, n, "the job no longer runs");
  },
});

Deno.test({
  name: "cluster teardown",
  ignore: !!missing,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await cluster?.[Symbol.asyncDispose]();
  },
});

Deno.test("--executor slurm without Slurm fails at once with a clear message", async () => {
  await using sb = await sandbox();
  const f = await sb.write("x.yaml", `stages:\n  a: {kind: $STAGES/text.ts}\n`);
  const r = await sb.runEnv({ PATH: "/nonexistent" }, "run", f, "--executor", "slurm");
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--executor slurm needs Slurm's 'sbatch' on PATH/);
  await assert.rejects(Deno.stat(join(sb.store, "entries")), Deno.errors.NotFound);
});
