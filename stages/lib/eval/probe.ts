/**
 * The linear-probe protocol: a seeded stratified validation split of train, a C sweep on it
 * (probe_sweep.ts, in parallel), a refit on all of train with the best C, test metrics.
 * The model and its fit are logistic.ts.
 */
import { Rng } from "../random.ts";
import type { Protocol } from "./protocol.ts";
import {
  type ClassificationMetrics,
  classificationMetrics,
  type Dataset,
  fitLogistic,
  type LogisticModel,
  predictLogistic,
  type Stopping,
  stoppingOptions,
} from "./logistic.ts";
import { productsFor } from "./logistic_products.ts";
import { sweep as sweepC, type SweepPoint } from "./probe_sweep.ts";

export interface LinearProbeOptions {
  /** C grid (default 10^-6 .. 10^6, one per decade). */
  Cs?: number[];
  /** Fraction of each training class held out for validation (default 0.2). */
  valFraction?: number;
  /** Split seed (default 0). */
  seed?: number;
  standardize?: boolean;
  /** Stopping rules of every fit (default "sklearn"). */
  stopping?: Stopping;
  /** Iteration cap per fit (default: the stopping rule's, 1000 for "sklearn"). */
  maxIterations?: number;
  /** Dense products: "js" (default) or "blas" (OpenBLAS dgemm). */
  engine?: "js" | "blas";
  /** Workers for the C sweep (default: one per core, at most one per C; 1 = this thread). */
  workers?: number;
  split?: string;
  features?: string;
  /** Called after each C of the sweep. */
  onProgress?: (done: number, total: number) => void;
}

export interface LinearProbeResult {
  protocol: Protocol;
  chosenC: number;
  sweep: SweepPoint[];
  test: ClassificationMetrics;
  model: LogisticModel;
}

/** Stratified split: per class (ascending label), a seeded shuffle, the first round(f*n) to val. */
export function stratifiedSplit(y: Int32Array, valFraction: number, seed: number) {
  const rng = new Rng(seed);
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < y.length; i++) {
    if (!byClass.has(y[i])) byClass.set(y[i], []);
    byClass.get(y[i])!.push(i);
  }
  const fit: number[] = [], val: number[] = [];
  for (const c of [...byClass.keys()].sort((a, b) => a - b)) {
    const idx = rng.shuffle(byClass.get(c)!);
    const nVal = idx.length >= 2
      ? Math.min(idx.length - 1, Math.round(valFraction * idx.length))
      : 0;
    val.push(...idx.slice(0, nVal));
    fit.push(...idx.slice(nVal));
  }
  fit.sort((a, b) => a - b);
  val.sort((a, b) => a - b);
  return { fit: Int32Array.from(fit), val: Int32Array.from(val) };
}

/** Rows `idx` of `data`, in shared memory (the sweep's workers read them without copies). */
function subset(data: Dataset, idx: Int32Array): { X: Float64Array; y: Int32Array } {
  const p = data.X.length / data.y.length;
  const X = new Float64Array(new SharedArrayBuffer(idx.length * p * 8));
  const y = new Int32Array(new SharedArrayBuffer(idx.length * 4));
  for (let r = 0; r < idx.length; r++) {
    for (let j = 0; j < p; j++) X[r * p + j] = data.X[idx[r] * p + j];
    y[r] = data.y[idx[r]];
  }
  return { X, y };
}

export const DEFAULT_CS = Array.from({ length: 13 }, (_, k) => 10 ** (k - 6));

/**
 * Sweeps C on a seeded stratified validation split of `train`, picks the best validation
 * accuracy (ties -> the smaller C), refits on all of `train` (= fit + val) with it and
 * reports test accuracy and mean per-class recall.
 */
export async function linearProbe(
  train: Dataset,
  test: Dataset,
  opts: LinearProbeOptions = {},
): Promise<LinearProbeResult> {
  const Cs = [...(opts.Cs ?? DEFAULT_CS)].sort((a, b) => a - b);
  const valFraction = opts.valFraction ?? 0.2;
  const seed = opts.seed ?? 0;
  const { fit, val } = stratifiedSplit(train.y, valFraction, seed);
  const fitData = subset(train, fit), valData = subset(train, val);
  const stopping = opts.stopping ?? "sklearn";
  const fitOptions = {
    stopping,
    maxIterations: opts.maxIterations ?? stoppingOptions(stopping, 1).maxIterations!,
    standardize: opts.standardize ?? false,
    engine: opts.engine ?? "js",
  };
  const workers = opts.workers ?? navigator.hardwareConcurrency;
  const total = Cs.length + 1;
  const sweep = await sweepC(fitData, valData, Cs, fitOptions, workers, (d) => {
    opts.onProgress?.(d, total);
  });
  // Best validation accuracy; ties -> the smaller C (Cs ascend).
  let best = -1, chosenC = Cs[0];
  for (const s of sweep) {
    if (s.valAccuracy > best) {
      best = s.valAccuracy;
      chosenC = s.C;
    }
  }
  const products = productsFor(fitOptions.engine);
  const model = fitLogistic(train, chosenC, { ...fitOptions, products });
  opts.onProgress?.(total, total);
  const testMetrics = classificationMetrics(predictLogistic(model, test.X, products), test.y);
  const nTrain = train.y.length;
  return {
    protocol: {
      name: "linear-probe",
      version: 2,
      features: opts.features ?? "unspecified",
      split: opts.split ?? "unspecified",
      model: "multinomial logistic regression (softmax over K classes, full W in R^{K x p}, " +
        "intercept not penalised)",
      objective: "mean cross-entropy + ||W||^2 / (2 C n) (scikit-learn's LogisticRegression " +
        "objective up to the factor n)",
      solver: "L-BFGS (memory 10), strong Wolfe line search (c1=1e-4, c2=0.9), f64, zero init " +
        "for every fit",
      stopping: stopping === "sklearn"
        ? "scikit-learn 1.2 lbfgs: max |grad of the summed objective| <= 1e-4, or relative " +
          "decrease <= 1e7 * eps, 20 line-search evaluations"
        : "tight: max |grad of the mean objective| <= 1e-7, or relative decrease <= 64 * eps, " +
          "50 line-search evaluations",
      maxIterations: fitOptions.maxIterations,
      products: products.description,
      standardize: opts.standardize
        ? "z-score with the mean and population std of the data being fitted"
        : "none (raw features, as scikit-learn)",
      Cs,
      selection: "best validation accuracy; ties -> smaller C; then refit on train+val",
      validation: {
        fraction: valFraction,
        stratified: true,
        seed,
        prng: "xoshiro128** seeded by splitmix32",
      },
      metrics: "test top-1 accuracy and mean per-class recall (classes present in test), percent",
      counts: {
        train: nTrain,
        fit: fit.length,
        val: val.length,
        test: test.y.length,
        classes: model.classes.length,
        dim: model.p,
      },
    },
    chosenC,
    sweep,
    test: testMetrics,
    model,
  };
}
