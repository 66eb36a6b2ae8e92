/**
 * `deno task bench faults` (issue 17): fault injection with figures. Each row is a fault, the
 * trials run and how many were handled (the right exit code, no stack trace, no partial entry,
 * outputs byte-identical to an undisturbed run). Runs the real CLI on experiments of the test
 * stages (tests/stages/, seconds per run) and on mutants of the shipped experiment files.
 * `KME_FUZZ_N` sets the number of fuzzed files (default 1000), `KME_FAULT_KILLS_PER_KIND` the
 * kills per real stage kind (default 12; on a shrunk tiny.yaml).
 */
import { join } from "node:path";
import fc from "fast-check";
import { mutantArbitrary } from "../tests/helpers/mutants.ts";
import { kme, readTree, spawnKme, TEST_STAGES } from "../tests/helpers/cli.ts";
import type { Figure } from "./util.ts";

interface Row {
  fault: string;
  trials: number;
  handled: number;
  failures: string[];
  /** Trials whose kill landed (the killed run did not finish on its own first). */
  landed?: number;
}

const DAG = (dir: string) => `
name: faults
stages:
  a: {kind: ${TEST_STAGES}/text.ts, params: {text: A, sleep_ms: 300}}
  b: {kind: ${TEST_STAGES}/text.ts, inputs: {a: a}, params: {text: B, sleep_ms: 300}}
  c: {kind: ${TEST_STAGES}/text.ts, inputs: {a: a}, params: {text: C, sleep_ms: 300}}
  d: {kind: ${TEST_STAGES}/text.ts, inputs: {a: b, b: c}, params: {text: D, sleep_ms: 300, trace: ${dir}/d}}
`;

const noStack = (s: string) => !/\n\s+at /.test(s);

/** Entries of a store as path -> bytes of every output (what "byte-identical" compares). */
async function outputs(store: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const entries = join(store, "entries");
  for await (const e of Deno.readDir(entries)) {
    const tree = await readTree(join(entries, e.name, "out"));
    for (const [p, b] of tree) out.set(`${e.name}/${p}`, new TextDecoder().decode(b));
  }
  return out;
}

async function partials(store: string): Promise<number> {
  let n = 0;
  for await (const e of Deno.readDir(join(store, "entries"))) {
    try {
      await Deno.stat(join(store, "entries", e.name, "manifest.json"));
    } catch {
      n++;
    }
  }
  return n;
}

/** SIGKILL of the runner's newest child: the worker running now, if any. */
async function killWorkerOf(runner: Deno.ChildProcess): Promise<void> {
  const ps = await new Deno.Command("pgrep", { args: ["-n", "-P", String(runner.pid)] }).output();
  const pid = Number(new TextDecoder().decode(ps.stdout).trim());
  if (pid) Deno.kill(pid, "SIGKILL");
}

async function sandboxDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "kme-faults-" });
}

async function killTrials(
  who: "runner" | "worker",
  trials: number,
  log: (s: string) => void,
): Promise<Row> {
  const row: Row = {
    fault: `SIGKILL of the ${who} at a random moment`,
    trials,
    handled: 0,
    failures: [],
  };
  const ref = await sandboxDir();
  await Deno.writeTextFile(join(ref, "e.yaml"), DAG(ref));
  await kme(["run", join(ref, "e.yaml"), "--store", join(ref, "store"), "--no-report"], ref);
  const want = await outputs(join(ref, "store"));
  const rng = fc.sample(fc.integer({ min: 50, max: 1500 }), { numRuns: trials, seed: 7 });
  for (let t = 0; t < trials; t++) {
    const dir = await sandboxDir();
    const store = join(dir, "store");
    await Deno.writeTextFile(join(dir, "e.yaml"), DAG(ref)); // same params, same keys
    const child = spawnKme(["run", join(dir, "e.yaml"), "--store", store, "--no-report"], dir);
    await new Promise((r) => setTimeout(r, rng[t]));
    if (who === "runner") child.kill("SIGKILL");
    else await killWorkerOf(child);
    const st = await child.output();
    const err = new TextDecoder().decode(st.stderr);
    const r = await kme(["run", join(dir, "e.yaml"), "--store", store, "--no-report"], dir);
    const ok = r.code === 0 && noStack(err) && (await partials(store)) === 0 &&
      JSON.stringify([...(await outputs(store))].sort()) === JSON.stringify([...want].sort());
    if (ok) row.handled++;
    else row.failures.push(`after ${rng[t]} ms: rerun exit ${r.code} ${r.stderr.slice(0, 200)}`);
    await Deno.remove(dir, { recursive: true });
  }
  await Deno.remove(ref, { recursive: true });
  log(`${row.fault}: ${row.handled}/${row.trials}`);
  return row;
}

/**
 * tiny.yaml, shrunk by overrides so that a trial takes seconds: the real stage kinds (prepare,
 * pretrain, embed, retrieval, linear-probe, zero-shot, pmi) on the real code.
 */
const TINY = new URL("../experiments/tiny.yaml", import.meta.url).pathname;
const SHRINK = [
  "-S",
  "stages.data.params.counts={train: 600, val: 64, test: 64}",
  "-S",
  "defaults.pretrain.steps=60",
  "-S",
  "stages.embed_train.params.max_images=300",
];
const KIND_STAGES: [kind: string, stage: string][] = [
  ["prepare/synthetic", "data"],
  ["pretrain", "train[similarity=kme]"],
  ["embed", "embed[similarity=kme]"],
  ["retrieval", "retrieval[similarity=kme]"],
  ["linear-probe", "linear_probe[similarity=kme]"],
  ["zero-shot", "zero_shot[similarity=kme]"],
  ["pmi", "pmi[similarity=kme]"],
];

/** Resolves when a line of the run's stdout says that `stage` started; the rest is drained. */
function started(child: Deno.ChildProcess, stage: string): Promise<boolean> {
  return new Promise((resolve) => {
    let buf = "";
    const dec = new TextDecoder();
    (async () => {
      for await (const chunk of child.stdout) {
        buf += dec.decode(chunk, { stream: true });
        if (buf.includes(`▶ ${stage}: running`)) resolve(true);
      }
      resolve(false);
    })();
  });
}

/**
 * SIGKILL of the runner while a stage of each real kind runs, at a random moment of it: the
 * stage's entry is removed first (so it computes again, resuming from nothing or a
 * checkpoint), the runner is killed, the run is repeated, and the entry must equal the
 * uninterrupted run's byte for byte, with no partial entry anywhere.
 */
export async function kindKillTrials(
  perKind: number,
  log: (s: string) => void,
  who: "runner" | "worker" = "runner",
): Promise<Row[]> {
  const dir = await sandboxDir();
  const store = join(dir, "store");
  const run = (...extra: string[]) =>
    kme(["run", TINY, ...SHRINK, "--store", store, "--no-report", ...extra], dir);
  const rows: Row[] = [];
  try {
    const first = await run();
    if (first.code !== 0) throw new Error(`reference run failed: ${first.stderr.slice(0, 300)}`);
    const rec = JSON.parse(
      await Deno.readTextFile(
        join(store, "runs", "tiny", [...Deno.readDirSync(join(store, "runs", "tiny"))][0].name),
      ),
    );
    for (const [kind, stage] of KIND_STAGES) {
      const row: Row = {
        fault: `SIGKILL of the ${who} while a stage of kind ${kind} runs`,
        trials: perKind,
        handled: 0,
        failures: [],
      };
      const key = rec.stages[stage].key as string;
      const entry = join(store, "entries", key);
      const want = await readTree(join(entry, "out"));
      // Kill moments spread over the stage's own duration (plus the worker's start-up).
      const span = 1000 * (1 + (rec.stages[stage].seconds ?? 1));
      const moments = fc.sample(fc.integer({ min: 0, max: Math.round(span) }), {
        numRuns: perKind,
        seed: 11,
      });
      for (const ms of moments) {
        await Deno.remove(entry, { recursive: true }).catch(() => {});
        const child = spawnKme(
          ["run", TINY, ...SHRINK, "--store", store, "--no-report", stage],
          dir,
        );
        const errText = new Response(child.stderr).text();
        if (await started(child, stage)) {
          await new Promise((r) => setTimeout(r, ms));
          try {
            if (who === "runner") child.kill("SIGKILL");
            else await killWorkerOf(child);
          } catch { /* it finished first */ }
        }
        if (!(await child.status).success) row.landed = (row.landed ?? 0) + 1;
        const again = await run(stage);
        const got = await readTree(join(entry, "out")).catch(() => new Map());
        const same = got.size === want.size &&
          [...want].every(([p, b]) => got.get(p)?.join(",") === b.join(","));
        // A killed worker fails the first run (exit 1, the signal named); the rerun must recover.
        const ok = again.code === 0 && noStack(await errText) && noStack(again.stderr) &&
          (await partials(store)) === 0 && same;
        if (ok) row.handled++;
        else row.failures.push(`${stage} at ${ms} ms: rerun exit ${again.code}, same ${same}`);
      }
      log(`${row.fault}: ${row.handled}/${row.trials} (${row.landed ?? 0} kills landed)`);
      rows.push(row);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return rows;
}

async function concurrentTrial(log: (s: string) => void): Promise<Row> {
  const row: Row = {
    fault: "3 concurrent runs of one experiment, with gc and verify during them",
    trials: 1,
    handled: 0,
    failures: [],
  };
  const dir = await sandboxDir();
  const store = join(dir, "store");
  await Deno.writeTextFile(join(dir, "e.yaml"), DAG(dir));
  const runs = [0, 1, 2].map(() =>
    spawnKme(["run", join(dir, "e.yaml"), "--store", store, "--no-report"], dir)
  );
  await new Promise((r) => setTimeout(r, 500));
  const gc = await kme(["gc", "--keep", "1", "--store", store], dir);
  const verify = await kme(["verify", "--store", store], dir);
  const sts = await Promise.all(runs.map((c) => c.output()));
  const executed = (await Deno.readTextFile(join(dir, "d")).catch(() => "")).split("\n")
    .filter(Boolean).length;
  const ok = sts.every((s) => s.code === 0) && gc.code === 0 && verify.code === 0 &&
    executed === 1 && (await partials(store)) === 0;
  if (ok) row.handled++;
  else {
    row.failures.push(
      `runs ${sts.map((s) => s.code)}, gc ${gc.code}, verify ${verify.code}, d ran ${executed}x`,
    );
  }
  await Deno.remove(dir, { recursive: true });
  log(`${row.fault}: ${row.handled}/${row.trials}`);
  return row;
}

/** Damage one kind of store metadata after a run; the next run and the tools must cope. */
async function damageTrials(log: (s: string) => void): Promise<Row> {
  const row: Row = {
    fault: "damaged manifest / run record / lock owner / output file",
    trials: 0,
    handled: 0,
    failures: [],
  };
  const cases: [string, (store: string, key: string) => Promise<void>][] = [
    ["manifest {}", (s, k) => overwrite(join(s, "entries", k, "manifest.json"), "{}")],
    ["manifest truncated", (s, k) => overwrite(join(s, "entries", k, "manifest.json"), '{"fo')],
    ["manifest deleted", (s, k) => Deno.remove(join(s, "entries", k, "manifest.json"))],
    ["output byte flipped", async (s, k) => {
      const p = join(s, "entries", k, "out", "text.txt");
      await Deno.chmod(p, 0o644);
      await Deno.writeTextFile(p, "X");
    }],
    ["run record garbage", async (s) => {
      await Deno.writeTextFile(join(s, "runs", "faults", "29990101T000000.000Z-zzzzzz.json"), "{");
    }],
    ["empty lock owner", (s, k) => Deno.writeTextFile(join(s, "locks", `${k}.owner`), "")],
    ["entry replaced by a symlink", async (s, k) => {
      await Deno.remove(join(s, "entries", k), { recursive: true });
      await Deno.symlink("/tmp", join(s, "entries", k));
    }],
  ];
  for (const [what, damage] of cases) {
    row.trials++;
    const dir = await sandboxDir();
    const store = join(dir, "store");
    const f = join(dir, "e.yaml");
    await Deno.writeTextFile(f, DAG(dir).replaceAll("sleep_ms: 300", "sleep_ms: 0"));
    await kme(["run", f, "--store", store, "--no-report"], dir);
    const want = await outputs(store);
    const key = [...want.keys()].find((p) => p.endsWith("text.txt"))!.split("/")[0];
    await damage(store, key);
    const tools = [["status", f], ["verify"], ["diff", f, f], ["gc", "--dry-run"]];
    const results = [];
    for (const t of tools) results.push(await kme([...t, "--store", store], dir));
    const rerun = await kme(["run", f, "--store", store, "--no-report"], dir);
    const after = await outputs(store).catch(() => new Map());
    const ok = results.every((r) => [0, 1, 2].includes(r.code) && noStack(r.stderr)) &&
      rerun.code === 0 && noStack(rerun.stderr) &&
      [...want.values()].sort().join() === [...after.values()].sort().join();
    if (ok) row.handled++;
    else {
      row.failures.push(
        `${what}: tools ${results.map((r) => r.code)}, rerun ${rerun.code} ${
          rerun.stderr.slice(0, 160)
        }`,
      );
    }
    await Deno.remove(dir, { recursive: true });
  }
  log(`${row.fault}: ${row.handled}/${row.trials}`);
  return row;
}

async function overwrite(path: string, text: string) {
  await Deno.chmod(path, 0o644).catch(() => {});
  await Deno.writeTextFile(path, text);
}

async function fuzzTrials(n: number, log: (s: string) => void): Promise<Row> {
  const row: Row = {
    fault: "fuzzed experiment files through status / run --dry-run",
    trials: n,
    handled: 0,
    failures: [],
  };
  const root = new URL("..", import.meta.url).pathname;
  const dir = await Deno.makeTempDir({ dir: join(root, "experiments"), prefix: ".fuzz-" });
  const store = join(dir, "store");
  const mutants = fc.sample(mutantArbitrary(), { numRuns: n, seed: 20261130 });
  let codes = { ok: 0, bad: 0 };
  for (const [i, text] of mutants.entries()) {
    const file = join(dir, `m${i}.yaml`);
    await Deno.writeTextFile(file, text);
    const args = i % 2 ? ["status", file] : ["run", file, "--dry-run"];
    const r = await kme([...args, "--store", store], dir);
    const ok = (r.code === 0 || r.code === 2) && noStack(r.stderr);
    if (ok) row.handled++;
    else if (row.failures.length < 5) {
      row.failures.push(`exit ${r.code}: ${r.stderr.slice(0, 300)}`);
    }
    codes = r.code === 0 ? { ...codes, ok: codes.ok + 1 } : { ...codes, bad: codes.bad + 1 };
    if (i % 100 === 99) log(`fuzz: ${i + 1}/${n}, ${row.handled} handled`);
  }
  await Deno.remove(dir, { recursive: true });
  row.fault += ` (${codes.ok} valid, ${codes.bad} rejected)`;
  log(`${row.fault}: ${row.handled}/${row.trials}`);
  return row;
}

export async function benchFaults(log: (s: string) => void): Promise<Figure[]> {
  const rows = [
    await killTrials("runner", 12, log),
    await killTrials("worker", 12, log),
    ...(await kindKillTrials(Number(Deno.env.get("KME_FAULT_KILLS_PER_KIND") ?? 12), log)),
    ...(await kindKillTrials(
      Number(Deno.env.get("KME_FAULT_KILLS_PER_KIND") ?? 12),
      log,
      "worker",
    )),
    await concurrentTrial(log),
    await damageTrials(log),
    await fuzzTrials(Number(Deno.env.get("KME_FUZZ_N") ?? 1000), log),
  ];
  for (const r of rows) for (const f of r.failures) log(`  not handled: ${f}`);
  return rows.map((r) => ({
    name: r.fault,
    value: r.handled,
    unit: `of ${r.trials} handled`,
    target: `${r.trials} of ${r.trials}`,
    met: r.handled === r.trials,
    note: [
      r.landed === undefined
        ? ""
        : `${r.landed} of ${r.trials} kills landed before the stage ended`,
      ...r.failures.slice(0, 2),
    ].filter(Boolean).join("; ") || undefined,
  }));
}
