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

/** The 1-minute load average now (Deno.loadavg). */
export const loadNow = (): number => +Deno.loadavg()[0].toFixed(2);

/** Above this 1-minute load a comparison is flagged: the machine has 2 cores. */
export const LOAD_FLAG = 1.5;

/**
 * Ours and a peer, alternating (A B A B ...) `pairs` times, so both see the same load; the
 * ratio quoted is the median of the per-pair ratios (`ratio(ours, theirs)`, > 1 = ours better).
 */
export async function pairedComparison<A, B>(
  pairs: number,
  ours: () => Promise<A>,
  theirs: () => Promise<B>,
  ratio: (a: A, b: B) => number,
) {
  const before = loadNow();
  const done: [A, B][] = [];
  for (let i = 0; i < pairs; i++) done.push([await ours(), await theirs()]);
  const after = loadNow();
  const ratios = done.map(([a, b]) => ratio(a, b));
  const flagged = Math.max(before, after) > LOAD_FLAG;
  return {
    pairs: done,
    ratios,
    ratio: median(ratios),
    load: { before, after, flagged },
    loadNote: `load ${before} before, ${after} after${
      flagged ? ` (FLAGGED: above ${LOAD_FLAG})` : ""
    }`,
    median: (pick: (pair: [A, B]) => number) => median(done.map(pick)),
  };
}
