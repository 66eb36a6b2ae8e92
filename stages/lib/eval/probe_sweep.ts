/**
 * The C sweep of the linear probe: one fit per C on the fit split, scored on the validation
 * split, spread over Web Workers (probe_worker.ts).
 *
 * Every fit starts from zero, so a C's result does not depend on which worker ran it, in what
 * order, or how many workers there were: the sweep is the same bits with 1 worker or 16.
 * (Warm-starting each C from the previous one, as before, tied every fit to the order.) The
 * features travel once, in SharedArrayBuffers.
 */
import type { Dataset } from "./logistic.ts";
import { classificationMetrics, fitLogistic, predictLogistic, type Stopping } from "./logistic.ts";
import { productsFor } from "./logistic_products.ts";

export interface SweepFitOptions {
  stopping: Stopping;
  maxIterations: number;
  standardize: boolean;
  engine: "js" | "blas";
}

export interface SweepPoint {
  C: number;
  valAccuracy: number;
  objective: number;
  iterations: number;
  converged: boolean;
}

/** One C: fit on `fit`, accuracy on `val`. The function workers and the main thread share. */
export function sweepPoint(fit: Dataset, val: Dataset, C: number, o: SweepFitOptions): SweepPoint {
  const products = productsFor(o.engine);
  const model = fitLogistic(fit, C, {
    stopping: o.stopping,
    maxIterations: o.maxIterations,
    standardize: o.standardize,
    products,
  });
  return {
    C,
    valAccuracy: classificationMetrics(predictLogistic(model, val.X, products), val.y).accuracy,
    objective: model.objective,
    iterations: model.optimizer.iterations,
    converged: model.optimizer.converged,
  };
}

/** Features and labels, ideally in SharedArrayBuffers (else each worker gets a copy). */
export type SharedDataset = { X: Float64Array; y: Int32Array };

/**
 * Fits every C (results in the order of `Cs`). `workers` <= 1 runs in this thread; otherwise
 * min(workers, Cs.length) workers take Cs from a queue. `onDone` counts finished Cs.
 */
export async function sweep(
  fit: SharedDataset,
  val: SharedDataset,
  Cs: number[],
  o: SweepFitOptions,
  workers: number,
  onDone?: (done: number) => void,
): Promise<SweepPoint[]> {
  const out: SweepPoint[] = new Array(Cs.length);
  let done = 0;
  if (workers <= 1 || Cs.length === 1) {
    Cs.forEach((C, k) => {
      out[k] = sweepPoint(fit, val, C, o);
      onDone?.(++done);
    });
    return out;
  }
  const data = { fit, val };
  let next = 0;
  const pool = Array.from(
    { length: Math.min(workers, Cs.length) },
    () => new Worker(new URL("./probe_worker.ts", import.meta.url), { type: "module" }),
  );
  try {
    await Promise.all(pool.map((w) =>
      new Promise<void>((resolve, reject) => {
        const give = () => {
          if (next >= Cs.length) return resolve();
          const k = next++;
          w.postMessage({ type: "fit", k, C: Cs[k] });
        };
        w.onmessage = (e: MessageEvent) => {
          const m = e.data;
          if (m.type === "error") return reject(rebuild(m));
          out[m.k] = m.point;
          onDone?.(++done);
          give();
        };
        w.onerror = (e) => {
          e.preventDefault();
          reject(new Error(`linear-probe worker: ${e.message}`));
        };
        w.postMessage({ type: "init", data, options: o });
        give();
      })
    ));
  } finally {
    for (const w of pool) w.terminate();
  }
  return out;
}

/** A worker's error as the main thread's, keeping a bad-setup exit code (OpenBLAS missing). */
function rebuild(m: { name: string; message: string; exitCode?: number }): Error {
  const e = new Error(m.message) as Error & { exitCode?: number };
  e.name = m.name;
  if (m.exitCode !== undefined) e.exitCode = m.exitCode;
  return e;
}
