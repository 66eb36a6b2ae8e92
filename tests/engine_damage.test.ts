/**
 * Damaged store metadata and unasked-for signals (issue 17): each case failed before its fix.
 * Readers name the damaged file and exit 2 (or skip it with a warning where other records can
 * serve); `run` moves a damaged entry to quarantine and recomputes it; `verify` reports and
 * repairs; `gc` waits for a run in progress; a worker killed by SIGKILL is a failure that says so.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { kme, lastRecord, sandbox, spawnKme, TEST_STAGES } from "./helpers/cli.ts";

const EXP = `
name: dmg
stages:
  a: {kind: $STAGES/text.ts, params: {text: A, trace: $DIR/trace}}
  b: {kind: $STAGES/text.ts, inputs: {a: a}, params: {text: B}}
`;

const noStack = (s: string) => assert.doesNotMatch(s, /\n\s+at /, `a stack trace:\n${s}`);

async function entryOf(store: string, stage: string): Promise<string> {
  const rec = await lastRecord(store, "dmg");
  return join(store, "entries", rec.stages[stage].key);
}

Deno.test("a truncated or empty-object manifest: run recomputes once, verify repairs, no crash", async () => {
  for (const damage of ['{"format": "kme-entry/1", "key": "ab', "{}"]) {
    await using sb = await sandbox();
    const f = await sb.write("exp.yaml", EXP);
    assert.equal((await sb.run("run", f)).code, 0);
    const entry = await entryOf(sb.store, "a");
    await Deno.chmod(join(entry, "manifest.json"), 0o644);
    await Deno.writeTextFile(join(entry, "manifest.json"), damage);
    // status and verify name the damage; verify moves the entry to quarantine.
    const st = await sb.run("status", f);
    assert.equal(st.code, 0, st.stderr);
    noStack(st.stderr);
    const v = await sb.run("verify");
    assert.equal(v.code, 1);
    assert.match(
      v.stdout,
      /damaged [0-9a-f]{12}: manifest\.json (is not valid JSON|has format undefined)/,
    );
    noStack(v.stderr);
    // Damage it again in place (no verify this time): run recomputes it and warns in the log.
    const again = await sb.run("run", f);
    assert.equal(again.code, 0, again.stderr);
    noStack(again.stderr);
    const entry2 = await entryOf(sb.store, "a");
    await Deno.chmod(join(entry2, "manifest.json"), 0o644);
    await Deno.writeTextFile(join(entry2, "manifest.json"), damage);
    const r = await sb.run("run", f);
    assert.equal(r.code, 0, r.stderr);
    noStack(r.stderr);
    assert.match(r.stdout, /damaged.*moved to .*quarantine/);
    // And the next rerun is a clean no-op: the damage does not fail every rerun.
    const clean = await sb.run("run", f);
    assert.equal(clean.code, 0, clean.stderr);
    assert.match(clean.stdout, /everything cached|cached/);
    assert.deepEqual(await sb.trace("trace"), ["A", "A", "A"]);
  }
});

Deno.test("a garbage run record: status, diff, report, verify EXP skip or name it; gc refuses", async () => {
  await using sb = await sandbox();
  const f = await sb.write("exp.yaml", EXP);
  assert.equal((await sb.run("run", f, "--no-report")).code, 0);
  const entryA = await entryOf(sb.store, "a");
  const bad = join(sb.store, "runs", "dmg", "29991231T000000.000Z-bad000.json");
  await Deno.writeTextFile(bad, '{"format": "kme-run/1", "stages": {');
  for (const args of [["status", f], ["verify", f], ["report", f]]) {
    const r = await sb.run(...args);
    noStack(r.stderr);
    assert.ok(r.code === 0 || r.code === 1, `${args[0]}: exit ${r.code}: ${r.stderr}`);
    assert.match(r.stderr, /29991231T000000\.000Z-bad000\.json: damaged run record .*skipped/);
  }
  // Named explicitly, or needed whole (gc cannot tell which entries it protects): exit 2.
  for (const args of [["diff", "29991231T000000", f], ["gc", "--keep", "1"]]) {
    const r = await sb.run(...args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
    noStack(r.stderr);
    assert.match(r.stderr, /bad000\.json: damaged run record .*move it out of runs\//);
  }
  // Nothing was deleted by the refused gc.
  assert.ok((await Deno.stat(join(entryA, "manifest.json"))).isFile);
});

Deno.test("a symbolic link in entries/ is reported by verify and moved, never followed", async () => {
  await using sb = await sandbox();
  const f = await sb.write("exp.yaml", EXP);
  assert.equal((await sb.run("run", f, "--no-report")).code, 0);
  const target = join(sb.dir, "elsewhere");
  await Deno.mkdir(target);
  await Deno.writeTextFile(join(target, "precious.txt"), "user data");
  await Deno.symlink(target, join(sb.store, "entries", "f".repeat(64)));
  const v = await sb.run("verify");
  assert.equal(v.code, 1);
  assert.match(v.stdout, /damaged ffffffffffff: entries\/f+ is a symbolic link/);
  assert.equal(await Deno.readTextFile(join(target, "precious.txt")), "user data");
  await Deno.symlink(target, join(sb.store, "entries", "e".repeat(64)));
  const gc = await sb.run("gc", "--keep", "1");
  assert.equal(gc.code, 0, gc.stderr);
  assert.match(gc.stdout, /removing eeeeeeeeeeee/);
  assert.equal(await Deno.readTextFile(join(target, "precious.txt")), "user data");
});

Deno.test("gc waits for a run in progress: nothing it published or reads is deleted", async () => {
  await using sb = await sandbox();
  // An old run of another experiment, whose entries are unreferenced once --keep 1 sees a newer one.
  const f = await sb.write(
    "exp.yaml",
    `
name: dmg
stages:
  a: {kind: $STAGES/text.ts, params: {text: A}}
  slow: {kind: $STAGES/text.ts, inputs: {a: a}, params: {text: S, sleep_ms: 3000, trace: $DIR/started}}
`,
  );
  const run = spawnKme(["run", f, "--store", sb.store, "--no-report"], sb.dir);
  // Wait until the slow stage runs: entry a is published, no record refers to it yet.
  for (let i = 0; i < 200 && (await sb.trace("started")).length === 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal((await sb.trace("started")).length, 1, "the slow stage never started");
  const gc = await sb.run("gc", "--keep", "1");
  assert.equal(gc.code, 0, gc.stderr);
  assert.match(gc.stderr, /gc: waiting for the runs using this store to finish/);
  const st = await run.output();
  assert.equal(st.code, 0, new TextDecoder().decode(st.stderr));
  // The run succeeded and its entries survived the gc that ran beside it.
  const rec = await lastRecord(sb.store, "dmg");
  for (const s of ["a", "slow"]) {
    assert.ok(
      (await Deno.stat(join(sb.store, "entries", rec.stages[s].key, "manifest.json"))).isFile,
    );
  }
});

Deno.test("a worker killed by SIGKILL (not by the user) fails and names the signal", async () => {
  await using sb = await sandbox();
  const f = await sb.write(
    "exp.yaml",
    `name: k\nstages:\n  k: {kind: ${TEST_STAGES}/kill_self.ts}\n`,
  );
  const r = await sb.run("run", f);
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    /k: failed: worker killed by signal SIGKILL \(often the out-of-memory killer/,
  );
  assert.doesNotMatch(r.stdout + r.stderr, /interrupted/);
});

Deno.test("a read-only store: run exits 2 naming the path, no stack trace, nothing written", async () => {
  await using sb = await sandbox();
  const f = await sb.write("exp.yaml", EXP);
  assert.equal((await sb.run("run", f, "--no-report")).code, 0);
  await sb.write("exp.yaml", EXP.replace("text: B", "text: C"));
  // Root writes through mode bits: make the folders immutable instead (chattr, ext4).
  const dirs = ["", "entries", "staging", "scratch", "locks", "runs", "runs/dmg", "plans", "memo"]
    .map((d) => join(sb.store, d));
  const lock = async (on: boolean) => {
    if (Deno.uid() === 0) {
      const out = await new Deno.Command("chattr", { args: [on ? "+i" : "-i", ...dirs] }).output();
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
    } else for (const d of dirs) await Deno.chmod(d, on ? 0o555 : 0o755);
  };
  const before = await treeNames(sb.store);
  await lock(true);
  try {
    const r = await sb.run("run", f, "--no-report");
    assert.equal(r.code, 2, r.stdout + r.stderr);
    noStack(r.stderr);
    assert.match(
      r.stderr,
      /error: cannot write: .*(Permission denied|Operation not permitted).*\/store/,
    );
  } finally {
    await lock(false);
  }
  assert.deepEqual(await treeNames(sb.store), before);
});

async function treeNames(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    out.push(prefix + e.name);
    if (e.isDirectory) out.push(...await treeNames(join(dir, e.name), `${prefix}${e.name}/`));
  }
  return out.sort();
}

Deno.test("--store naming a file, below one, or where nothing can be made: exit 2, no stack trace", async () => {
  await using sb = await sandbox();
  const f = await sb.write("exp.yaml", EXP);
  const file = await sb.write("not-a-folder", "x");
  for (const store of [file, join(file, "below")]) {
    const r = await kme(["run", f, "--no-report", "--store", store], sb.dir);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    noStack(r.stderr);
    assert.match(r.stderr, /error: (cannot write: )?.*not-a-folder/);
  }
  // A folder that cannot be created at all (procfs refuses it), and a name too long.
  for (const store of ["/proc/kme-store", join(sb.dir, "n".repeat(300))]) {
    const r = await kme(["run", f, "--no-report", "--store", store], sb.dir);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    noStack(r.stderr);
    assert.match(r.stderr, /error: cannot write: /);
  }
});

Deno.test("a full disk: the stage fails with exit 2 naming the store, no partial entry or temp file", async (t) => {
  await using sb = await sandbox();
  const mnt = await smallDisk(sb.dir, "300k");
  if (!mnt) return;
  try {
    const f = await sb.write(
      "full.yaml",
      `name: full
stages:
  a: {kind: $STAGES/text.ts, params: {text: A}}
  big: {kind: ${
        join(TEST_STAGES, "..", "..", "stages", "prepare", "synthetic", "stage.ts")
      }, params: {counts: {train: 200, val: 10, test: 20}}}
`,
    );
    const store = join(mnt, "store");
    const r = await kme(["run", f, "--store", store, "--no-report"], sb.dir);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    noStack(r.stderr);
    assert.match(r.stderr, new RegExp(`no space left on the device of the store ${store}`));
    assert.deepEqual([...Deno.readDirSync(join(store, "staging"))], [], "staging cleaned");
    for (const e of Deno.readDirSync(join(store, "entries"))) {
      assert.ok((await Deno.stat(join(store, "entries", e.name, "manifest.json"))).isFile);
    }
    await t.step("the run record names the failure", async () => {
      const rec = await lastRecord(store, "full");
      assert.equal(rec.status, "failed");
      assert.equal(rec.stages.a.outcome, "ran");
    });
  } finally {
    await new Deno.Command("umount", { args: [mnt] }).output();
  }
});

Deno.test("a disk that fills while the run record is written leaves no record and no temp file", async () => {
  await using sb = await sandbox();
  const mnt = await smallDisk(sb.dir, "64k");
  if (!mnt) return;
  try {
    const { openStore } = await import("../pipeline/store.ts");
    const { writeRecord } = await import("../pipeline/records.ts");
    const store = openStore(join(mnt, "store"));
    await store.ensureLayout();
    // Fill the device, then write a record bigger than what is left.
    await Deno.writeFile(join(mnt, "filler"), new Uint8Array(60 * 1024)).catch(() => {});
    const rec = {
      format: "kme-run/1",
      id: "20990101T000000.000Z-aaaaaa",
      experiment: { name: "full", file: "x.yaml", sha256: {} },
      status: "ok",
      started: "",
      finished: "",
      seconds: 0,
      argv: [],
      seed: 0,
      env: { pad: "x".repeat(100_000) },
      stages: {},
    } as const;
    await assert.rejects(writeRecord(store, rec as never), /No space left on device/);
    const left = [...Deno.readDirSync(join(mnt, "store", "runs", "full"))].map((e) => e.name);
    assert.deepEqual(left, [], "no record and no .tmp behind");
  } finally {
    await new Deno.Command("umount", { args: [mnt] }).output();
  }
});

/** A tmpfs of `size` mounted under `dir` (unmount it when done), or undefined where not allowed. */
async function smallDisk(dir: string, size: string): Promise<string | undefined> {
  const mnt = join(dir, `disk-${size}`);
  await Deno.mkdir(mnt);
  const mount = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", mnt],
    stderr: "piped",
  }).output().catch(() => undefined);
  if (mount?.success) return mnt;
  console.log("skipped: cannot mount a small tmpfs here (needs root)");
  return undefined;
}
