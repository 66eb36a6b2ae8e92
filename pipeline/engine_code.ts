/**
 * The engine's own code, which computes plans, keys and records: pipeline/, cli/ and the
 * registry of stage kinds. A stage's key covers the stage's code (fingerprint.ts), not this;
 * the plan cache and the no-op memo, which stand in for running it, must not outlive a change
 * to it (a `git pull` that changes how keys are made). Watched by stat: cheap, and a touch only
 * costs one plan.
 */
import { join } from "./paths.ts";

export function engineCodeFiles(root: string): string[] {
  const files = [join(root, "stages", "registry.ts")];
  for (const dir of ["pipeline", "cli"]) {
    try {
      for (const e of Deno.readDirSync(join(root, dir))) {
        if (e.isFile && e.name.endsWith(".ts")) files.push(join(root, dir, e.name));
      }
    } catch { /* not a checkout of this project: nothing to watch */ }
  }
  return files.sort();
}

/** size:mtime:ctime:inode of what is at `path` (following links), "-" when nothing is. */
export function statSignature(path: string): string {
  try {
    const st = Deno.statSync(path);
    return `${st.size}:${st.mtime?.getTime()}:${st.ctime?.getTime()}:${st.ino}`;
  } catch {
    return "-";
  }
}
