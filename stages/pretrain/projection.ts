/**
 * The projected time of a training, from the rate of the steps run so far: printed once the
 * second logging window closes (the first holds the start-up and, on webgpu, shader
 * compilation), so a researcher sees early whether a run fits the night. (The GPU check kit,
 * bench/gpu/, projects coco.yaml's training from C1's rate with the same arithmetic.)
 */
export interface Projection {
  /** Seconds for all `steps` at `samplesPerSec`. */
  totalS: number;
  /** Seconds still to go from `doneSteps`. */
  remainingS: number;
}

export function project(
  steps: number,
  doneSteps: number,
  batch: number,
  samplesPerSec: number,
): Projection {
  const perStep = batch / Math.max(samplesPerSec, 1e-9);
  return { totalS: steps * perStep, remainingS: Math.max(0, steps - doneSteps) * perStep };
}

/** 5400 -> "1h 30m", 95 -> "1m 35s", 7.2 -> "7.2s". */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${s.toFixed(1)}s`;
  if (s < 3600) {
    const r = Math.round(s); // 119.7 s is "2m 0s", not "1m 60s"
    return `${Math.floor(r / 60)}m ${r % 60}s`;
  }
  const m = Math.round(s / 60);
  const h = Math.floor(m / 60);
  return h >= 48 ? `${(s / 86400).toFixed(1)} days` : `${h}h ${m % 60}m`;
}
