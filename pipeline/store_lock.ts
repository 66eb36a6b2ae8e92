/**
 * Who may delete from the store while it is in use: `locks/store.lock`, an flock that every
 * `run` holds *shared* from before its first stage until its run record is written, and that
 * `gc` holds *exclusively*. Without it, gc deletes what a running experiment has just
 * published (no record refers to it yet) and inputs that its stages are reading.
 *
 * flock is per host: runs on other hosts of a shared store (Slurm nodes write entries, but
 * only the submitting `run` holds this lock, on its own host) are covered as long as `gc` runs
 * on the host that runs `kme run`. The README says so.
 */
import { dirname } from "./paths.ts";
import type { StoreLayout } from "./store_layout.ts";

/** A held store lock; release it (or `using` it) when done. */
export interface StoreUse extends Disposable {
  release(): void;
}

function openLock(layout: StoreLayout): Deno.FsFile {
  Deno.mkdirSync(dirname(layout.storeLockPath), { recursive: true });
  return Deno.openSync(layout.storeLockPath, {
    read: true,
    write: true,
    create: true,
  });
}

function held(file: Deno.FsFile): StoreUse {
  let locked = true;
  const release = () => {
    if (!locked) return;
    locked = false;
    try {
      file.unlockSync();
    } finally {
      file.close();
    }
  };
  return { release, [Symbol.dispose]: release };
}

/** Shared use by a run: never waits except while a `gc` is deleting. */
export async function useStore(layout: StoreLayout, onWait?: () => void): Promise<StoreUse> {
  const file = openLock(layout);
  if (!file.tryLockSync(false)) {
    onWait?.();
    await file.lock(false);
  }
  return held(file);
}

/**
 * Exclusive use by `gc`: waits until no run uses the store (calling `onWait` once if it has
 * to), or returns undefined at once when `wait` is false and a run is in progress.
 */
export async function ownStore(
  layout: StoreLayout,
  opts: { wait: boolean; onWait?: () => void },
): Promise<StoreUse | undefined> {
  const file = openLock(layout);
  if (file.tryLockSync(true)) return held(file);
  if (!opts.wait) {
    file.close();
    return undefined;
  }
  opts.onWait?.();
  await file.lock(true);
  return held(file);
}
