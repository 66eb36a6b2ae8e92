/**
 * Per-key locks that hold across processes and across hosts sharing a store.
 *
 * Two layers:
 * 1. an exclusive flock on `locks/<key>.lock`: on one host the kernel releases it when the
 *    holder dies, even by SIGKILL, so local waiting needs no guessing;
 * 2. an owner file `locks/<key>.owner` holding host, pid and a token, whose mtime the holder
 *    refreshes (heartbeat). Hosts whose shared filesystem does not carry flocks between them
 *    still exclude each other through it. It is written whole to a temporary file and then
 *    hard-linked into place (link fails if the name exists: an atomic O_EXCL create that can
 *    never leave an empty owner behind, even under SIGKILL). Whoever holds the flock judges an
 *    owner file stale when it names this host (the flock is ours, so its writer no longer
 *    holds the lock, whatever its pid now is: pids get reused), when it cannot be read
 *    (damaged; written by something else) and its heartbeat is older than `ttlMs`, or when its
 *    heartbeat is older than `ttlMs` (another host). A stale one is broken under a second
 *    O_EXCL file (`.break`), so that two waiters cannot both take over.
 * A holder that misses heartbeats (a frozen host) can at worst have its work done twice: the
 * store's publish keeps the first entry, so a duplicate never corrupts anything.
 */

export interface LockOwner {
  host: string;
  pid: number;
  stage: string;
  since: string;
  token: string;
}

export interface LockOptions {
  ttlMs?: number;
  heartbeatMs?: number;
  pollMs?: number;
}

export class KeyLock {
  #timer: ReturnType<typeof setInterval> | undefined;

  private constructor(
    private file: Deno.FsFile,
    private ownerPath: string,
    private token: string,
  ) {}

  /**
   * Acquires the lock, waiting as long as it takes. `onWait` is called once, with the current
   * owner, if the lock is busy.
   */
  static async acquire(
    path: string,
    stage: string,
    onWait: (owner: LockOwner | undefined) => void,
    signal?: AbortSignal,
    opts: LockOptions = {},
  ): Promise<KeyLock> {
    const ttl = opts.ttlMs ?? 60_000, beat = opts.heartbeatMs ?? 10_000;
    const poll = opts.pollMs ?? 200;
    const ownerPath = path.replace(/\.lock$/, "") + ".owner";
    let told = false;
    const wait = async (owner: LockOwner | undefined) => {
      if (!told) onWait(owner);
      told = true;
      signal?.throwIfAborted();
      await new Promise((r) => setTimeout(r, poll));
    };
    const file = await Deno.open(path, { read: true, write: true, create: true });
    try {
      while (!(await file.tryLock(true))) await wait(await readOwner(ownerPath));
      const me: LockOwner = {
        host: Deno.hostname(),
        pid: Deno.pid,
        stage,
        since: new Date().toISOString(),
        token: crypto.randomUUID(),
      };
      while (true) {
        if (await createOwner(ownerPath, me)) break;
        const owner = await readOwner(ownerPath);
        if (await isStale(ownerPath, owner, ttl)) {
          await breakStale(ownerPath, owner, ttl);
        } else await wait(owner);
      }
      const lock = new KeyLock(file, ownerPath, me.token);
      lock.#timer = setInterval(() => {
        const now = new Date();
        Deno.utime(ownerPath, now, now).catch(() => {});
      }, beat);
      return lock;
    } catch (e) {
      file.close();
      throw e;
    }
  }

  release(): void {
    clearInterval(this.#timer);
    try {
      const owner = JSON.parse(Deno.readTextFileSync(this.ownerPath)) as LockOwner;
      if (owner.token === this.token) Deno.removeSync(this.ownerPath);
    } catch { /* already gone (broken as stale): nothing to remove */ }
    try {
      this.file.unlockSync();
    } finally {
      this.file.close();
    }
  }
}

/**
 * Creates the owner file with its whole content in one step: false when one exists. The
 * temporary file has a unique name, so writers never meet there; it is removed on every path.
 */
async function createOwner(path: string, me: LockOwner): Promise<boolean> {
  const tmp = `${path}.${me.token}.tmp`;
  try {
    await Deno.writeTextFile(tmp, JSON.stringify(me));
    await Deno.link(tmp, path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) return false;
    throw e;
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
}

/**
 * The owner of a key's lock when it is alive: its heartbeat (the owner file's mtime, refreshed
 * every 10 s) is under 30 s old and, on this host, its pid still exists. For `status` and the
 * dashboard, which must not take the lock to find out.
 */
export async function liveOwner(
  ownerPath: string,
): Promise<(LockOwner & { heartbeatAge: number }) | undefined> {
  const owner = await readOwner(ownerPath);
  if (!owner) return undefined;
  try {
    const age = (Date.now() - ((await Deno.stat(ownerPath)).mtime?.getTime() ?? 0)) / 1000;
    if (age > 30) return undefined;
    if (owner.host === Deno.hostname()) await Deno.stat(`/proc/${owner.pid}`);
    return { ...owner, heartbeatAge: age };
  } catch {
    return undefined; // gone since, or its process is
  }
}

/** The owner, or undefined when the file is gone, empty or not an owner record. */
export async function readOwner(path: string): Promise<LockOwner | undefined> {
  try {
    const o = JSON.parse(await Deno.readTextFile(path));
    return typeof o?.host === "string" && typeof o?.token === "string" ? o : undefined;
  } catch {
    return undefined;
  }
}

/** Called only while holding the flock (see the module comment). */
async function isStale(
  path: string,
  owner: LockOwner | undefined,
  ttlMs: number,
): Promise<boolean> {
  if (owner?.host === Deno.hostname()) return true;
  try {
    const mtime = (await Deno.stat(path)).mtime?.getTime() ?? 0;
    return Date.now() - mtime > ttlMs;
  } catch {
    return false; // gone already: the next create succeeds
  }
}

/** Removes a stale owner file, unless someone else is already breaking it or took over. */
async function breakStale(
  path: string,
  stale: LockOwner | undefined,
  ttlMs: number,
): Promise<void> {
  const breaker = `${path}.break`;
  try {
    await Deno.writeTextFile(breaker, String(Deno.pid), { createNew: true });
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    // A breaker that died mid-break leaves its file: expire it like an owner.
    const st = await Deno.stat(breaker).catch(() => undefined);
    if (st && Date.now() - (st.mtime?.getTime() ?? 0) > ttlMs) {
      await Deno.remove(breaker).catch(() => {});
    }
    return;
  }
  try {
    // Still the file judged stale (a damaged one has no token: compare what can be read).
    const now = await readOwner(path);
    if (now?.token === stale?.token) await Deno.remove(path).catch(() => {});
  } finally {
    await Deno.remove(breaker).catch(() => {});
  }
}
