/**
 * Per-key locks that hold across processes and across hosts sharing a store.
 *
 * Two layers:
 * 1. an exclusive flock on `locks/<key>.lock`: on one host the kernel releases it when the
 *    holder dies, even by SIGKILL, so local waiting needs no guessing;
 * 2. an owner file `locks/<key>.owner`, created with O_EXCL and holding host, pid and a token,
 *    whose mtime the holder refreshes (heartbeat). Hosts whose shared filesystem does not
 *    carry flocks between them still exclude each other through it. An owner file is stale
 *    when its pid is gone (same host) or its heartbeat is older than `ttlMs` (another host);
 *    a stale one is broken under a second O_EXCL file (`.break`), so that two waiters cannot
 *    both take over.
 * A holder that misses heartbeats (a frozen host) can at worst have its work done twice: the
 * store's publish keeps the first entry, so a duplicate never corrupts anything.
 */
import { hostname } from "node:os";

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
        host: hostname(),
        pid: Deno.pid,
        stage,
        since: new Date().toISOString(),
        token: crypto.randomUUID(),
      };
      while (true) {
        try {
          await Deno.writeTextFile(ownerPath, JSON.stringify(me), { createNew: true });
          break;
        } catch (e) {
          if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
        }
        const owner = await readOwner(ownerPath);
        if (owner && (await isStale(ownerPath, owner, ttl))) {
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

async function readOwner(path: string): Promise<LockOwner | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch {
    return undefined;
  }
}

async function isStale(path: string, owner: LockOwner, ttlMs: number): Promise<boolean> {
  if (owner.host === hostname()) return !pidAlive(owner.pid);
  try {
    const mtime = (await Deno.stat(path)).mtime?.getTime() ?? 0;
    return Date.now() - mtime > ttlMs;
  } catch {
    return false;
  }
}

function pidAlive(pid: number): boolean {
  if (pid === Deno.pid) return true;
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    // No /proc (not Linux): assume alive; only the heartbeat can then declare it stale.
    try {
      Deno.statSync("/proc/self");
      return false;
    } catch {
      return true;
    }
  }
}

/** Removes a stale owner file, unless someone else is already breaking it or took over. */
async function breakStale(path: string, stale: LockOwner, ttlMs: number): Promise<void> {
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
    const now = await readOwner(path);
    if (now?.token === stale.token) await Deno.remove(path).catch(() => {});
  } finally {
    await Deno.remove(breaker).catch(() => {});
  }
}
