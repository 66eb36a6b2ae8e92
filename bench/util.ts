/** Shared bench helpers: medians, timing subprocesses, peers that may be missing. */

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Wall seconds of one run of a command; throws with its stderr if it fails. */
export async function timeCommand(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Promise<number> {
  const t0 = performance.now();
  const out = await new Deno.Command(cmd, { args, ...opts, stdout: "piped", stderr: "piped" })
    .output();
  const dt = (performance.now() - t0) / 1000;
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return dt;
}

/** Whether an executable is on PATH. */
export async function which(cmd: string): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("sh", { args: ["-c", `command -v ${cmd}`], stdout: "piped" })
      .output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
  } catch {
    return undefined;
  }
}

export interface Figure {
  name: string;
  value: number | null;
  unit: string;
  /** The peer's figure on the same work, measured in the same run. */
  peer?: { name: string; value: number | null; note?: string };
  /** The goal, as text ("<= 0.2 s"), and whether it is met. */
  target?: string;
  met?: boolean;
  note?: string;
}
