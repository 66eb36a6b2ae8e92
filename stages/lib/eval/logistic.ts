/**
 * Linear probe: multinomial logistic regression on frozen features, full batch, f64,
 * deterministic (fixed operation order, seeded split, zero initialisation).
 *
 * Objective (scikit-learn's LogisticRegression(C, multinomial, lbfgs, fit_intercept=True)):
 *   f(W, b) = (1/n) sum_i [ log sum_k exp(z_ik) - z_{i, y_i} ] + ||W||^2 / (2 C n),
 *   z_i = W x_i + b,   W in R^{K x p} (one row per class, no reference class), b not penalised.
 * sklearn minimises n * f (sum of losses + ||W||^2 / (2C)): the same minimiser.
 * Solver: L-BFGS (lbfgs.ts).
 */
import { Rng } from "../random.ts";
import type { Protocol } from "./protocol.ts";
import { lbfgs, type LbfgsOptions, type LbfgsResult, type ObjectiveFn } from "./lbfgs.ts";

// ---- multinomial logistic regression ------------------------------------------------------

export type Features = Float32Array | Float64Array;

export interface Dataset {
  /** [n, p] row-major. */
  X: Features;
  /** Labels, any non-negative integers. */
  y: Int32Array;
}

export interface LogisticModel {
  /** Original label of each model class (ascending). */
  classes: Int32Array;
  p: number;
  /** [K, p] (in standardised units when `standardize` is set). */
  W: Float64Array;
  b: Float64Array;
  /** Feature standardisation applied before W (mean, scale), if any. */
  standardize?: { mean: Float64Array; scale: Float64Array };
  C: number;
  objective: number;
  optimizer: Omit<LbfgsResult, "x">;
}

export interface FitOptions extends LbfgsOptions {
  /** z-score features with the training mean / std (ddof 0; std 0 -> 1). Default false. */
  standardize?: boolean;
  /** Warm start: [W, b] flattened, in model class order (e.g. a previous fit's). */
  init?: Float64Array;
}

/** Multinomial objective and gradient on params [W (K x p), b (K)]. */
export function multinomialObjective(
  X: Float64Array,
  yIdx: Int32Array,
  K: number,
  p: number,
  C: number,
): ObjectiveFn {
  const n = yIdx.length;
  const z = new Float64Array(K);
  return (theta, grad) => {
    grad.fill(0);
    const bOff = K * p;
    let loss = 0;
    for (let i = 0; i < n; i++) {
      const xo = i * p;
      let mx = -Infinity;
      for (let k = 0; k < K; k++) {
        let s = theta[bOff + k];
        const wo = k * p;
        for (let j = 0; j < p; j++) s += theta[wo + j] * X[xo + j];
        z[k] = s;
        if (s > mx) mx = s;
      }
      let se = 0;
      for (let k = 0; k < K; k++) se += z[k] = Math.exp(z[k] - mx);
      const yi = yIdx[i];
      loss += Math.log(se) - Math.log(z[yi]);
      for (let k = 0; k < K; k++) {
        const r = z[k] / se - (k === yi ? 1 : 0);
        grad[bOff + k] += r;
        const wo = k * p;
        for (let j = 0; j < p; j++) grad[wo + j] += r * X[xo + j];
      }
    }
    let w2 = 0;
    for (let q = 0; q < bOff; q++) w2 += theta[q] * theta[q];
    const lam = 1 / (C * n);
    for (let q = 0; q < bOff; q++) grad[q] = grad[q] / n + lam * theta[q];
    for (let k = 0; k < K; k++) grad[bOff + k] /= n;
    return loss / n + 0.5 * lam * w2;
  };
}

function toF64(X: Features): Float64Array {
  return X instanceof Float64Array ? X : Float64Array.from(X);
}

function standardizer(X: Float64Array, n: number, p: number) {
  const mean = new Float64Array(p), scale = new Float64Array(p);
  for (let i = 0; i < n; i++) for (let j = 0; j < p; j++) mean[j] += X[i * p + j];
  for (let j = 0; j < p; j++) mean[j] /= n;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < p; j++) scale[j] += (X[i * p + j] - mean[j]) ** 2;
  }
  for (let j = 0; j < p; j++) {
    const sd = Math.sqrt(scale[j] / n);
    scale[j] = sd > 0 ? sd : 1;
  }
  return { mean, scale };
}

function applyStandardize(
  X: Float64Array,
  p: number,
  st?: { mean: Float64Array; scale: Float64Array },
) {
  if (!st) return X;
  const out = new Float64Array(X.length);
  for (let q = 0; q < X.length; q++) {
    const j = q % p;
    out[q] = (X[q] - st.mean[j]) / st.scale[j];
  }
  return out;
}

/** Fits the model on (X, y) with inverse regularisation strength C. */
export function fitLogistic(data: Dataset, C: number, opts: FitOptions = {}): LogisticModel {
  if (!(C > 0)) throw new RangeError(`C must be > 0, got ${C}`);
  const n = data.y.length;
  if (n === 0) throw new RangeError("no training samples");
  const p = data.X.length / n;
  if (!Number.isInteger(p)) throw new RangeError(`X has ${data.X.length} values for ${n} labels`);
  const classes = Int32Array.from(new Set(data.y)).sort();
  const index = new Map<number, number>();
  classes.forEach((c, k) => index.set(c, k));
  const K = classes.length;
  const yIdx = data.y.map((v) => index.get(v)!);
  let X = toF64(data.X);
  const st = opts.standardize ? standardizer(X, n, p) : undefined;
  X = applyStandardize(X, p, st);
  const fg = multinomialObjective(X, yIdx, K, p, C);
  const x0 = opts.init && opts.init.length === K * p + K ? opts.init : new Float64Array(K * p + K);
  const res = lbfgs(fg, x0, opts);
  const { x, ...optimizer } = res;
  return {
    classes,
    p,
    W: x.slice(0, K * p),
    b: x.slice(K * p),
    standardize: st,
    C,
    objective: res.f,
    optimizer,
  };
}

/** Predicted labels (argmax; ties -> the lower class index). */
export function predictLogistic(model: LogisticModel, Xin: Features): Int32Array {
  const { p, W, b, classes } = model;
  const K = classes.length;
  const n = Xin.length / p;
  const X = applyStandardize(toF64(Xin), p, model.standardize);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = -Infinity, arg = 0;
    for (let k = 0; k < K; k++) {
      let s = b[k];
      for (let j = 0; j < p; j++) s += W[k * p + j] * X[i * p + j];
      if (s > best) {
        best = s;
        arg = k;
      }
    }
    out[i] = classes[arg];
  }
  return out;
}

export interface ClassificationMetrics {
  /** Percent. */
  accuracy: number;
  /** Mean over the classes present in y of per-class recall, percent. */
  meanPerClassRecall: number;
  n: number;
}

export function classificationMetrics(pred: Int32Array, y: Int32Array): ClassificationMetrics {
  const count = new Map<number, number>(), hit = new Map<number, number>();
  let correct = 0;
  for (let i = 0; i < y.length; i++) {
    count.set(y[i], (count.get(y[i]) ?? 0) + 1);
    if (pred[i] === y[i]) {
      correct++;
      hit.set(y[i], (hit.get(y[i]) ?? 0) + 1);
    }
  }
  let recall = 0;
  for (const [c, m] of count) recall += (hit.get(c) ?? 0) / m;
  return {
    accuracy: y.length ? (100 * correct) / y.length : NaN,
    meanPerClassRecall: count.size ? (100 * recall) / count.size : NaN,
    n: y.length,
  };
}

// ---- the probe protocol: C sweep on a validation split, refit, test ------------------------

export interface LinearProbeOptions extends LbfgsOptions {
  /** C grid (default 10^-6 .. 10^6, one per decade). */
  Cs?: number[];
  /** Fraction of each training class held out for validation (default 0.2). */
  valFraction?: number;
  /** Split seed (default 0). */
  seed?: number;
  standardize?: boolean;
  split?: string;
  features?: string;
  /** Called after each C of the sweep. */
  onProgress?: (done: number, total: number) => void;
}

export interface LinearProbeResult {
  protocol: Protocol;
  chosenC: number;
  sweep: {
    C: number;
    valAccuracy: number;
    objective: number;
    iterations: number;
    converged: boolean;
  }[];
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

function subset(data: Dataset, idx: Int32Array): Dataset {
  const p = data.X.length / data.y.length;
  const X = new Float64Array(idx.length * p);
  const y = new Int32Array(idx.length);
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
export function linearProbe(
  train: Dataset,
  test: Dataset,
  opts: LinearProbeOptions = {},
): LinearProbeResult {
  const Cs = [...(opts.Cs ?? DEFAULT_CS)].sort((a, b) => a - b);
  const valFraction = opts.valFraction ?? 0.2;
  const seed = opts.seed ?? 0;
  const { fit, val } = stratifiedSplit(train.y, valFraction, seed);
  const fitData = subset(train, fit), valData = subset(train, val);
  const sweep: LinearProbeResult["sweep"] = [];
  let init: Float64Array | undefined;
  let best = -1, chosenC = Cs[0];
  Cs.forEach((C, k) => {
    // Warm start from the previous (smaller) C: deterministic, same optimum.
    const model = fitLogistic(fitData, C, { ...opts, init });
    init = Float64Array.from([...model.W, ...model.b]);
    const acc = classificationMetrics(predictLogistic(model, valData.X), valData.y).accuracy;
    sweep.push({
      C,
      valAccuracy: acc,
      objective: model.objective,
      iterations: model.optimizer.iterations,
      converged: model.optimizer.converged,
    });
    if (acc > best) {
      best = acc;
      chosenC = C;
    }
    opts.onProgress?.(k + 1, Cs.length + 1);
  });
  const model = fitLogistic(train, chosenC, opts);
  opts.onProgress?.(Cs.length + 1, Cs.length + 1);
  const testMetrics = classificationMetrics(predictLogistic(model, test.X), test.y);
  const nTrain = train.y.length;
  return {
    protocol: {
      name: "linear-probe",
      version: 1,
      features: opts.features ?? "unspecified",
      split: opts.split ?? "unspecified",
      model: "multinomial logistic regression (softmax over K classes, full W in R^{K x p}, " +
        "intercept not penalised)",
      objective: "mean cross-entropy + ||W||^2 / (2 C n) (scikit-learn's LogisticRegression " +
        "objective up to the factor n)",
      solver: "L-BFGS (memory 10), strong Wolfe line search (c1=1e-4, c2=0.9), f64, zero init " +
        "(sweep: warm start from the previous C)",
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
