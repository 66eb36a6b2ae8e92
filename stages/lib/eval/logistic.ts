/**
 * Linear probe: multinomial logistic regression on frozen features, full batch, f64,
 * deterministic (fixed operation order, seeded split, zero initialisation).
 *
 * Objective (scikit-learn's LogisticRegression(C, multinomial, lbfgs, fit_intercept=True)):
 *   f(W, b) = (1/n) sum_i [ log sum_k exp(z_ik) - z_{i, y_i} ] + ||W||^2 / (2 C n),
 *   z_i = W x_i + b,   W in R^{K x p} (one row per class, no reference class), b not penalised.
 * sklearn minimises n * f (sum of losses + ||W||^2 / (2C)): the same minimiser.
 * Solver: L-BFGS (lbfgs.ts), stopped by scikit-learn's rules or tighter ones (`Stopping`).
 * The dense products go through logistic_products.ts (JS loops or OpenBLAS dgemm).
 */
import { lbfgs, type LbfgsOptions, type LbfgsResult, type ObjectiveFn } from "./lbfgs.ts";
import { jsProducts, type Products } from "./logistic_products.ts";

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
  /** Stopping rules (default "sklearn"); explicit LbfgsOptions override them. */
  stopping?: Stopping;
  /** Dense products (default JS loops). */
  products?: Products;
  /** z-score features with the training mean / std (ddof 0; std 0 -> 1). Default false. */
  standardize?: boolean;
  /** Warm start: [W, b] flattened, in model class order (e.g. a previous fit's). */
  init?: Float64Array;
}

/**
 * When a fit stops.
 * - "sklearn": scikit-learn 1.2's LogisticRegression(solver="lbfgs") through scipy's L-BFGS-B:
 *   max |gradient of the summed objective| <= tol (1e-4), or a relative decrease of at most
 *   factr * eps = 1e7 * 2^-52 (scipy's default ftol), at most max_iter (1000) iterations, 20
 *   line-search evaluations. sklearn minimises n * f, so its tolerances apply here as tol / n
 *   and a floor of 1/n in the relative test.
 * - "tight": what this project used before (max |gradient of f| <= 1e-7, ftol 64 eps, 50
 *   line-search evaluations, up to 10,000 iterations): a minimum several digits closer, for
 *   comparing optimisers, at 10-30x the time.
 */
export type Stopping = "sklearn" | "tight";

export function stoppingOptions(stopping: Stopping, n: number): LbfgsOptions {
  return stopping === "sklearn"
    ? {
      gradTol: 1e-4 / n,
      fTol: 1e7 * 2 ** -52,
      fFloor: 1 / n,
      maxLineSearch: 20,
      maxIterations: 1000,
    }
    : { gradTol: 1e-7, fTol: 64 * 2 ** -52, fFloor: 1, maxLineSearch: 50, maxIterations: 10000 };
}

/** Multinomial objective and gradient on params [W (K x p), b (K)]. */
export function multinomialObjective(
  X: Float64Array,
  yIdx: Int32Array,
  K: number,
  p: number,
  C: number,
  products: Products = jsProducts,
): ObjectiveFn {
  const n = yIdx.length;
  const bOff = K * p;
  // Z holds the logits, then (in place) the residuals softmax - onehot.
  const Z = new Float64Array(n * K), G = new Float64Array(K * p);
  const lam = 1 / (C * n);
  return (theta, grad) => {
    products.logits(X, theta.subarray(0, bOff), n, p, K, Z);
    let loss = 0;
    for (let k = 0; k < K; k++) grad[bOff + k] = 0;
    for (let i = 0; i < n; i++) {
      const zo = i * K;
      let mx = -Infinity;
      for (let k = 0; k < K; k++) {
        const s = (Z[zo + k] += theta[bOff + k]);
        if (s > mx) mx = s;
      }
      let se = 0;
      for (let k = 0; k < K; k++) se += Z[zo + k] = Math.exp(Z[zo + k] - mx);
      const yi = yIdx[i];
      loss += Math.log(se) - Math.log(Z[zo + yi]);
      for (let k = 0; k < K; k++) {
        const r = Z[zo + k] / se - (k === yi ? 1 : 0);
        Z[zo + k] = r;
        grad[bOff + k] += r;
      }
    }
    products.gradW(Z, X, n, K, p, G);
    let w2 = 0;
    for (let q = 0; q < bOff; q++) {
      w2 += theta[q] * theta[q];
      grad[q] = G[q] / n + lam * theta[q];
    }
    for (let k = 0; k < K; k++) grad[bOff + k] /= n;
    return loss / n + 0.5 * lam * w2;
  };
}

/** The options that are set (an explicit `undefined` must not erase a stopping rule). */
function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export function toF64(X: Features): Float64Array {
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
  const fg = multinomialObjective(X, yIdx, K, p, C, opts.products);
  const x0 = opts.init && opts.init.length === K * p + K ? opts.init : new Float64Array(K * p + K);
  const { stopping, products: _, init: __, standardize: ___, ...explicit } = opts;
  const res = lbfgs(fg, x0, {
    ...stoppingOptions(stopping ?? "sklearn", n),
    ...definedOnly(explicit),
  });
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
export function predictLogistic(
  model: LogisticModel,
  Xin: Features,
  products: Products = jsProducts,
): Int32Array {
  const { p, W, b, classes } = model;
  const K = classes.length;
  const n = Xin.length / p;
  const X = applyStandardize(toF64(Xin), p, model.standardize);
  const Z = new Float64Array(n * K);
  products.logits(X, W, n, p, K, Z);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = -Infinity, arg = 0;
    for (let k = 0; k < K; k++) {
      const s = Z[i * K + k] + b[k];
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
