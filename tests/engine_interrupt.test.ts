/** Done-when 2, 3 and 4 of the engine: SIGKILL, SIGINT, concurrent runs, verify. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readTree, sandbox, spawnKme } from "./helpers/cli.ts";

const EXP = `
name: chain
seed: 7
stages:
  src: {kind: $STAGES/text.ts, params: {text: seed-text}}
  chain:
    kind: $STAGES/counter.ts
    inputs: {src: src}
    params: {steps: 40, step_ms: 40, trace: $DIR/rounds}
  tail: {kind: $STAGES/text.ts, inputs: {a: src}, params: {text: "!", sleep_ms: 100}}
`;

/** Entries' out/ folders by stage name, from the latest run record. */
async function outputs(store: string) {
  const dir = join(store, "runs", "chain");
  const ids = [];
  for await (const e of Deno.readDir(dir)) ids.push(e.name);
  const rec = JSON.parse(await Deno.readTextFile(join(dir, ids.sort().at(-1)!)));
  const out: Record<string, Map<string, Uint8Array>> = {};
  for (const [name, s] of Object.entries(rec.stages) as [string, { key: string }][]) {
    out[name] = await readTree(join(store, "entries", s.key, "out"));
  }
  return out;
}

/** Every folder in entries/ must be a complete entry: manifest present, files as listed. */
async function assertNoPartialEntry(store: string) {
  const entries: Deno.DirEntry[] = [];
  try {
    for await (const e of Deno.readDir(join(store, "entries"))) entries.push(e);
  } catch {
    return; // killed before the store was laid out
  }
  for (const e of entries) {
    const m = JSON.parse(await Deno.readTextFile(join(store, "entries", e.name, "manifest.json")));
    const tree = await readTree(join(store, "entries", e.name, "out"));
    assert.deepEqual([...tree.keys()].sort(), m.files.map((f: { path: string }) => f.path).sort());
  }
}

async function waitForExit(child: Deno.ChildProcess) {
  await child.stdout.cancel().catch(() => {});
  await child.stderr.cancel().catch(() => {});
  return await child.status;
}

Deno.test("runs killed with SIGKILL at several points resume to byte-identical outputs", async () => {
  await using ref = await sandbox();
  const refFile = await ref.write("exp.yaml", EXP);
  const clean = await ref.run("run", refFile);
  assert.equal(clean.code, 0, clean.stderr);
  const expected = await outputs(ref.store);

  await using sb = await sandbox();
  const f = await sb.write("exp.yaml", EXP);
  const kills = [150, 500, 900, 1300, 1700, 2100];
  for (const ms of kills) {
    const child = spawnKme(["run", f, "--store", sb.store], sb.dir);
    await new Promise((r) => setTimeout(r, ms));
    try {
      child.kill("SIGKILL");
    } catch { /* it finished first: the next spawn finds everything cached */ }
    await waitForExit(child);
    await assertNoPartialEntry(sb.store);
  }
  const final = await sb.run("run", f);
  assert.equal(final.code, 0, final.stderr);
  assert.deepEqual(await outputs(sb.store), expected);
  await assertNoPartialEntry(sb.store);
  // Resumed from checkpoints: at most one round redone per kill, never a restart from zero.
  const rounds = (await sb.trace("rounds")).map(Number);
  assert.ok(rounds.length <= 40 + kills.length, `executed ${rounds.length} rounds`);
  assert.equal(rounds.at(-1), 40);
  assert.ok(
    await Deno.stat(join(sb.store, "scratch")).then(async () => {
      for await (const _ of Deno.readDir(join(sb.store, "scratch"))) return false;
      return true;
    }),
    "scratch is removed once the entry is published",
  );
});

Deno.test("SIGINT stops the running stage, keeps its checkpoint and exits 130", async () => {
  await using sb = await sandbox();
  const f = await sb.write("exp.yaml", EXP);
  const child = spawnKme(["run", f, "--store", sb.store], sb.dir);
  // Wait until the chain has made progress, then interrupt.
  for (let i = 0; i < 100 && (await sb.trace("rounds")).length < 3; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill("SIGINT");
  const [status, stderr] = await Promise.all([
    child.status,
    new Response(child.stderr).text(),
    child.stdout.cancel(),
  ]);
  assert.equal(status.code, 130, stderr);
  assert.match(stderr, /rerun the same command to resume/);
  const done = (await sb.trace("rounds")).length;
  assert.ok(done >= 3 && done < 40, `rounds before interrupt: ${done}`);
  // status says the stage will resume, not that its entry went missing.
  const st = await sb.run("status", f);
  assert.match(st.stdout, /chain\s+run\s+unfinished: an earlier attempt stopped; it resumes from/);
  assert.doesNotMatch(st.stdout, /gc, verify/);
  // The stage's log names the signal the user sent (the runner forwards it as it came).
  const log = await sb.run("log", f, "chain");
  assert.match(log.stdout, /SIGINT/);
  assert.doesNotMatch(log.stdout, /SIGTERM/);
  const r = await sb.run("run", f);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /chain \| resuming at step \d+/);
  assert.ok((await sb.trace("rounds")).length <= 41);
});

Deno.test("two concurrent runs both succeed and each stage executes once", async () => {
  await using sb = await sandbox();
  const f = await sb.write(
    "exp.yaml",
    EXP.replace('{text: "!", sleep_ms: 100}', '{text: "!", sleep_ms: 100, trace: $DIR/tail}'),
  );
  const a = spawnKme(["run", f, "--store", sb.store], sb.dir);
  const b = spawnKme(["run", f, "--store", sb.store], sb.dir);
  const [ra, rb] = await Promise.all([a.output(), b.output()]);
  const dec = new TextDecoder();
  assert.equal(ra.code, 0, dec.decode(ra.stderr));
  assert.equal(rb.code, 0, dec.decode(rb.stderr));
  const rounds = (await sb.trace("rounds")).map(Number);
  assert.deepEqual(rounds, Array.from({ length: 40 }, (_, i) => i + 1));
  assert.equal((await sb.trace("tail")).length, 1);
  const both = dec.decode(ra.stdout) + dec.decode(rb.stdout);
  assert.match(both, /waiting for pid \d+/);
});

Deno.test("verify detects a flipped byte, quarantines the entry, and it reruns", async () => {
  await using sb = await sandbox();
  const f = await sb.write(
    "exp.yaml",
    EXP.replace("steps: 40, step_ms: 40", "steps: 3, step_ms: 1"),
  );
  assert.equal((await sb.run("run", f)).code, 0);
  const ok = await sb.run("verify");
  assert.equal(ok.code, 0, ok.stdout);
  assert.match(ok.stdout, /verified 3 entries: all intact/);

  const before = await outputs(sb.store);
  const rec = JSON.parse(
    await Deno.readTextFile(
      join(
        sb.store,
        "runs",
        "chain",
        [...Deno.readDirSync(join(sb.store, "runs", "chain"))][0].name,
      ),
    ),
  );
  const file = join(sb.store, "entries", rec.stages.chain.key, "out", "chain.txt");
  await Deno.chmod(file, 0o644);
  const bytes = await Deno.readFile(file);
  bytes[0] ^= 1;
  await Deno.writeFile(file, bytes);

  const bad = await sb.run("verify");
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, /damaged [0-9a-f]{12}: chain\.txt: content changed/);
  const st = await sb.run("status", f);
  assert.match(st.stdout, /chain\s+run\s+its entry is missing from the store/);
  const r = await sb.run("run", f);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /✓ chain/);
  assert.deepEqual(await outputs(sb.store), before);
});
