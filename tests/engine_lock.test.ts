/** Locks: waiting, stale owners of dead processes and of silent hosts, no double takeover. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { KeyLock } from "../pipeline/lock.ts";

async function tmp() {
  return await Deno.makeTempDir({ prefix: "kme-lock-" });
}

Deno.test("a second acquirer in the same process waits until release", async () => {
  const dir = await tmp();
  const path = join(dir, "k.lock");
  const a = await KeyLock.acquire(path, "a", () => {});
  let waited = false;
  const order: string[] = [];
  const b = KeyLock.acquire(
    path,
    "b",
    (o) => {
      waited = true;
      assert.equal(o?.stage, "a");
    },
    undefined,
    { pollMs: 20 },
  ).then((l) => {
    order.push("b");
    return l;
  });
  await new Promise((r) => setTimeout(r, 100));
  order.push("release a");
  a.release();
  (await b).release();
  assert.ok(waited);
  assert.deepEqual(order, ["release a", "b"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an owner file left by a dead process on this host is broken", async () => {
  const dir = await tmp();
  const path = join(dir, "k.lock");
  // A process that exits at once: its pid is then gone.
  const child = new Deno.Command("true").spawn();
  const pid = child.pid;
  await child.status;
  await Deno.writeTextFile(
    join(dir, "k.owner"),
    JSON.stringify({ host: Deno.hostname(), pid, stage: "x", since: "", token: "dead" }),
  );
  const l = await KeyLock.acquire(path, "me", () => {}, undefined, { pollMs: 10 });
  const owner = JSON.parse(await Deno.readTextFile(join(dir, "k.owner")));
  assert.equal(owner.pid, Deno.pid);
  l.release();
  await assert.rejects(Deno.stat(join(dir, "k.owner")), Deno.errors.NotFound);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("another host's owner is respected while its heartbeat is fresh, broken after the TTL", async () => {
  const dir = await tmp();
  const path = join(dir, "k.lock");
  const ownerPath = join(dir, "k.owner");
  await Deno.writeTextFile(
    ownerPath,
    JSON.stringify({ host: "node-elsewhere", pid: 1, stage: "x", since: "", token: "remote" }),
  );
  let waitedFor = "";
  const ac = new AbortController();
  const pending = KeyLock.acquire(path, "me", (o) => (waitedFor = o?.host ?? ""), ac.signal, {
    ttlMs: 400,
    pollMs: 20,
  });
  // Keep the remote heartbeat fresh for a while: the lock must not be taken.
  for (let i = 0; i < 8; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const now = new Date();
    await Deno.utime(ownerPath, now, now);
  }
  const early = await Promise.race([pending.then(() => "taken"), Promise.resolve("waiting")]);
  assert.equal(early, "waiting");
  assert.equal(waitedFor, "node-elsewhere");
  // The remote host goes silent: after the TTL the lock is taken over.
  const l = await pending;
  assert.equal(JSON.parse(await Deno.readTextFile(ownerPath)).pid, Deno.pid);
  l.release();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("concurrent waiters on a stale owner: exactly one holds the lock at a time", async () => {
  const dir = await tmp();
  const path = join(dir, "k.lock");
  await Deno.writeTextFile(
    join(dir, "k.owner"),
    JSON.stringify({ host: "gone-host", pid: 1, stage: "x", since: "", token: "t" }),
  );
  await Deno.utime(join(dir, "k.owner"), new Date(0), new Date(0));
  let inside = 0, maxInside = 0;
  const worker = async (name: string) => {
    const l = await KeyLock.acquire(path, name, () => {}, undefined, { ttlMs: 50, pollMs: 5 });
    inside++;
    maxInside = Math.max(maxInside, inside);
    await new Promise((r) => setTimeout(r, 30));
    inside--;
    l.release();
  };
  await Promise.all(["a", "b", "c", "d"].map(worker));
  assert.equal(maxInside, 1);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an owner file of a live, unrelated pid on this host is broken: the flock decides", async () => {
  // pid reuse: the recorded pid is alive (a sleeping child) but does not hold the flock.
  const dir = await tmp();
  const path = join(dir, "k.lock");
  const child = new Deno.Command("sleep", { args: ["30"] }).spawn();
  try {
    await Deno.writeTextFile(
      join(dir, "k.owner"),
      JSON.stringify({ host: Deno.hostname(), pid: child.pid, stage: "x", since: "", token: "t" }),
    );
    const l = await KeyLock.acquire(path, "me", () => {}, undefined, { pollMs: 10 });
    assert.equal(JSON.parse(await Deno.readTextFile(join(dir, "k.owner"))).pid, Deno.pid);
    l.release();
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an empty or garbage owner file blocks only until its heartbeat is older than the TTL", async () => {
  for (const junk of ["", '{"host": ', "null", "[1, 2]"]) {
    const dir = await tmp();
    const path = join(dir, "k.lock");
    const ownerPath = join(dir, "k.owner");
    await Deno.writeTextFile(ownerPath, junk);
    let waited = false;
    const l = await KeyLock.acquire(path, "me", () => (waited = true), undefined, {
      ttlMs: 150,
      pollMs: 10,
    });
    assert.ok(waited, `${JSON.stringify(junk)}: taken at once, though another host may own it`);
    assert.equal(JSON.parse(await Deno.readTextFile(ownerPath)).pid, Deno.pid);
    l.release();
    // No temporary owner files are left behind.
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["k.lock"]);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the owner file appears whole: a reader never sees it empty", async () => {
  const dir = await tmp();
  const path = join(dir, "k.lock");
  const ownerPath = join(dir, "k.owner");
  let seenEmpty = 0;
  let reads = 0;
  let stop = false;
  const watcher = (async () => {
    while (!stop) {
      try {
        const text = Deno.readTextFileSync(ownerPath);
        reads++;
        if (text.length === 0) seenEmpty++;
      } catch { /* not there */ }
      await new Promise((r) => setTimeout(r, 0));
    }
  })();
  for (let i = 0; i < 200; i++) {
    (await KeyLock.acquire(path, "me", () => {}, undefined, { pollMs: 1 })).release();
  }
  stop = true;
  await watcher;
  assert.equal(seenEmpty, 0, `${seenEmpty} of ${reads} reads saw an empty owner file`);
  await Deno.remove(dir, { recursive: true });
});
