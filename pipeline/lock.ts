/**
 * Per-key locks. A lock is an exclusive flock on `locks/<key>.lock`: the kernel releases it
 * when the holder dies, even by SIGKILL, so there is no stale-lock guessing on one host. The
 * file also records who holds it, for the "waiting for ..." message.
 */
import { hostname } from "node:os";

export interface LockOwner {
  host: string;
  pid: number;
  stage: string;
  since: string;
}

export class KeyLock {
  private constructor(private file: Deno.FsFile) {}

  /**
   * Acquires the lock, waiting as long as it takes. `onWait` is called once, with the current
   * owner, if the lock is busy.
   */
  static async acquire(
    path: string,
    stage: string,
    onWait: (owner: LockOwner | undefined) => void,
    signal?: AbortSignal,
  ): Promise<KeyLock> {
    const file = await Deno.open(path, { read: true, write: true, create: true });
    try {
      if (!(await file.tryLock(true))) {
        onWait(await readOwner(path));
        while (!(await file.tryLock(true))) {
          signal?.throwIfAborted();
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      const owner: LockOwner = {
        host: hostname(),
        pid: Deno.pid,
        stage,
        since: new Date().toISOString(),
      };
      await file.truncate(0);
      await file.seek(0, Deno.SeekMode.Start);
      await file.write(new TextEncoder().encode(JSON.stringify(owner)));
      return new KeyLock(file);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  release(): void {
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
