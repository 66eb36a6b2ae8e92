/// <reference lib="deno.worker" />
/**
 * Web Worker side of the probe's C sweep (probe_sweep.ts): "init" brings the shared features
 * and the fit options, then each "fit" is one C, answered with its sweep point.
 */
import type { Dataset } from "./logistic.ts";
import { type SweepFitOptions, sweepPoint } from "./probe_sweep.ts";

let data: { fit: Dataset; val: Dataset } | undefined;
let options: SweepFitOptions | undefined;

self.onmessage = (e: MessageEvent) => {
  const m = e.data;
  try {
    if (m.type === "init") {
      data = m.data;
      options = m.options;
      return;
    }
    if (!data || !options) throw new Error("probe worker not initialised");
    self.postMessage({ type: "done", k: m.k, point: sweepPoint(data.fit, data.val, m.C, options) });
  } catch (err) {
    const x = err as Error & { exitCode?: number };
    self.postMessage({
      type: "error",
      name: x?.name ?? "Error",
      message: x?.message ?? String(err),
      exitCode: x?.exitCode,
    });
  }
};
