/**
 * `kme log`: a stage's log by experiment file or run id, an instance of a sweep by name, clear
 * errors for an ambiguous or unknown stage, and `--follow` tailing an attempt in progress until
 * its entry is published, or until it is seen to have stopped.
 */
import assert from "node:assert/strict";
import { kme, lastRecord, sandbox, spawnKme } from "./helpers/cli.ts";

const EXP = `
name: logs
stages:
  a: {kind: $STAGES/text.ts, params: {text: A}}
  b: {kind: $STAGES/text.ts, inputs: {a: a}, matrix: {text: [x, y]}}
`;

Deno.test("log: by experiment or run id, one instance by name, errors that say what to name", async () => {
  await using sb = await sandbox();
  const f = await sb.write("e.yaml", EXP);
  assert.equal((await sb.run("run", f, "--no-report")).code, 0);
  const a = await sb.run("log", f, "a");
  assert.equal(a.code, 0, a.stderr);
  assert.match(a.stdout, /writing 'A'/);
  const id = (await lastRecord(sb.store, "logs")).id;
  assert.equal((await sb.run("log", id, "a")).stdout, a.stdout);
  const x = await sb.run("log", f, "b[text=x]");
  assert.match(x.stdout, /writing 'x'/);
  const path = await sb.run("log", f, "b[text=y]", "--path");
  assert.match(path.stdout.trim(), new RegExp(`^${sb.store}/entries/[0-9a-f]{64}/log.txt$`));
  const both = await sb.run("log", f, "b");
  assert.equal(both.code, 2);
  assert.match(both.stderr, /'b' has 2 instances; name one: b\[text=x\], b\[text=y\]/);
  // A run named as diff names it: the experiment (its latest run), NAME:-1, the id's suffix.
  assert.equal((await sb.run("log", "logs", "a")).stdout, a.stdout);
  assert.equal((await sb.run("log", "logs:-1", "a")).stdout, a.stdout);
  assert.equal((await sb.run("log", `logs:${id.slice(-6)}`, "a")).stdout, a.stdout);
  // A forced rerun in progress: the log is the new attempt's, not the published entry's.
  const key = (await lastRecord(sb.store, "logs")).stages.a.key!;
  await Deno.mkdir(`${sb.store}/scratch/${key}`, { recursive: true });
  await Deno.writeTextFile(`${sb.store}/scratch/${key}/log.txt`, "--- the new attempt\n");
  assert.equal((await sb.run("log", f, "a")).stdout, "--- the new attempt\n");
  await Deno.remove(`${sb.store}/scratch/${key}`, { recursive: true });
  const typo = await sb.run("log", id, "bb");
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /no stage 'bb' \(did you mean 'b'\?\)/);
});

Deno.test("log --follow: tails a stage in progress until its entry is published", async () => {
  await using sb = await sandbox();
  const f = await sb.write(
    "e.yaml",
    "name: slow\nstages:\n  s: {kind: $STAGES/text.ts, params: {text: S, sleep_ms: 4000}}\n",
  );
  const run = spawnKme(["run", f, "--no-report", "--store", sb.store], sb.dir);
  try {
    // Wait until the attempt has a log (the worker started); bounded, not timed.
    let started = false;
    for (let i = 0; i < 200 && !started; i++) {
      started = (await sb.run("log", f, "s", "--path")).code === 0;
      if (!started) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(started, "the stage never started");
    // status says it runs now, in another process, rather than that it stopped.
    const st = await sb.run("status", f);
    assert.match(st.stdout, /s\s+run\s+running now in another process \(pid \d+ on /);
    const js = JSON.parse((await sb.run("status", f, "--json")).stdout);
    assert.equal(js.stages[0].state, "run");
    assert.match(js.stages[0].reasons[0], /^running now/);
    const tail = await kme(["log", f, "s", "--follow", "--store", sb.store], sb.dir);
    assert.equal(tail.code, 0, tail.stderr);
    assert.match(tail.stdout, /writing 'S'[\s\S]*done in/);
    assert.equal((await run.status).code, 0);
  } finally {
    try {
      run.kill();
    } catch { /* ended */ }
  }
});

Deno.test("log --follow: an attempt that stopped is shown whole, and the command ends", async () => {
  await using sb = await sandbox();
  const f = await sb.write(
    "e.yaml",
    "name: stopped\nstages:\n  s: {kind: $STAGES/text.ts, params: {text: S, fail: true}}\n",
  );
  assert.equal((await sb.run("run", f, "--no-report")).code, 1); // fails: its scratch stays
  const child = spawnKme(["log", f, "s", "--follow", "--store", sb.store], sb.dir);
  // Bounded, not timed: a follow that never ends is killed after 60 s and fails the test.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<"hung">((r) => timer = setTimeout(() => r("hung"), 60_000));
  const out = child.output();
  const first = await Promise.race([out, hung]);
  clearTimeout(timer);
  if (first === "hung") {
    child.kill("SIGKILL");
    await out;
    assert.fail("log --follow of a stopped attempt did not end");
  }
  const dec = new TextDecoder();
  assert.equal(first.code, 0, dec.decode(first.stderr));
  assert.match(dec.decode(first.stdout), /writing 'S'/);
  assert.match(dec.decode(first.stderr), /s is not running now: its attempt stopped/);
});
