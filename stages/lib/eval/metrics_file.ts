/**
 * The `metrics.json` every evaluation stage writes (format `kme-metrics/1`): the stage, the
 * protocol it followed (in words a reader can check), its metrics, then any stage-specific
 * extras, in that key order, pretty-printed. One writer, so the format has one definition.
 */
import { join } from "node:path";

export const METRICS_FILE = "metrics.json";
export const METRICS_FORMAT = "kme-metrics/1";

export async function writeMetricsFile(
  outDir: string,
  stage: string,
  protocol: unknown,
  metrics: unknown,
  extra: Record<string, unknown> = {},
): Promise<void> {
  const doc = { format: METRICS_FORMAT, stage, protocol, metrics, ...extra };
  await Deno.writeTextFile(join(outDir, METRICS_FILE), JSON.stringify(doc, null, 2) + "\n");
}
