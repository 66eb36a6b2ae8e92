/**
 * L-BFGS (two-loop recursion, memory 10 by default) with a line search satisfying the strong
 * Wolfe conditions (c1 = 1e-4, c2 = 0.9; Nocedal & Wright, Numerical Optimization, Algorithms 7.4,
 * 3.5 and 3.6), in f64 with a fixed operation order: the same minimiser, bit for bit, on every
 * run. A general minimiser of a smooth objective; the linear probe (logistic.ts) is its user.
 */

/** Writes the gradient at x into g and returns f(x). */
export type ObjectiveFn = (x: Float64Array, g: Float64Array) => number;

export interface LbfgsOptions {
  /** Correction pairs kept (default 10). */
  memory?: number;
  /** Default 10000. */
  maxIterations?: number;
  /** Stop when max_i |g_i| <= gradTol (default 1e-7). */
  gradTol?: number;
  /** Stop when (f_prev - f) <= fTol * max(|f_prev|, |f|, fFloor) (default 64 * 2^-52). */
  fTol?: number;
  /** The floor of that relative test (default 1, as scipy's L-BFGS-B). */
  fFloor?: number;
  /** Line search evaluations per iteration (default 50). */
  maxLineSearch?: number;
}

export interface LbfgsResult {
  x: Float64Array;
  f: number;
  gradMaxAbs: number;
  iterations: number;
  evaluations: number;
  converged: boolean;
  reason: "gradient" | "function-decrease" | "max-iterations" | "line-search";
}

const dot = (a: Float64Array, b: Float64Array) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};
const maxAbs = (a: Float64Array) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
};

/** Minimiser of the cubic through (a, fa, da) and (b, fb, db), or NaN. */
function cubicMin(a: number, fa: number, da: number, b: number, fb: number, db: number): number {
  const d1 = da + db - (3 * (fa - fb)) / (a - b);
  const disc = d1 * d1 - da * db;
  if (!(disc >= 0)) return NaN;
  const d2 = Math.sign(b - a) * Math.sqrt(disc);
  return b - ((b - a) * (db + d2 - d1)) / (db - da + 2 * d2);
}

export function lbfgs(fg: ObjectiveFn, x0: Float64Array, opts: LbfgsOptions = {}): LbfgsResult {
  const m = opts.memory ?? 10;
  const maxIter = opts.maxIterations ?? 10000;
  const gradTol = opts.gradTol ?? 1e-7;
  const fTol = opts.fTol ?? 64 * 2 ** -52;
  const fFloor = opts.fFloor ?? 1;
  const maxLS = opts.maxLineSearch ?? 50;
  const c1 = 1e-4, c2 = 0.9;
  const n = x0.length;
  const x = Float64Array.from(x0);
  const g = new Float64Array(n);
  let f = fg(x, g);
  let evaluations = 1;
  const S: Float64Array[] = [], Y: Float64Array[] = [], rho: number[] = [];
  const d = new Float64Array(n), xt = new Float64Array(n), gt = new Float64Array(n);
  const alphaBuf = new Float64Array(m);
  let iterations = 0;
  let reason: LbfgsResult["reason"] = "max-iterations";
  if (!Number.isFinite(f)) throw new Error(`objective is not finite at the start: ${f}`);

  while (true) {
    if (maxAbs(g) <= gradTol) {
      reason = "gradient";
      break;
    }
    if (iterations >= maxIter) break;
    // Two-loop recursion: d = -H g.
    for (let i = 0; i < n; i++) d[i] = -g[i];
    const k = S.length;
    for (let j = k - 1; j >= 0; j--) {
      alphaBuf[j] = rho[j] * dot(S[j], d);
      const y = Y[j], a = alphaBuf[j];
      for (let i = 0; i < n; i++) d[i] -= a * y[i];
    }
    if (k > 0) {
      const gamma = dot(S[k - 1], Y[k - 1]) / dot(Y[k - 1], Y[k - 1]);
      for (let i = 0; i < n; i++) d[i] *= gamma;
    }
    for (let j = 0; j < k; j++) {
      const b = rho[j] * dot(Y[j], d);
      const s = S[j], a = alphaBuf[j] - b;
      for (let i = 0; i < n; i++) d[i] += a * s[i];
    }
    let dphi0 = dot(g, d);
    if (!(dphi0 < 0)) {
      // Not a descent direction (numerical trouble): restart from steepest descent.
      S.length = Y.length = rho.length = 0;
      for (let i = 0; i < n; i++) d[i] = -g[i];
      dphi0 = dot(g, d);
    }
    const a0 = k === 0 ? Math.min(1, 1 / Math.sqrt(dot(g, g))) : 1;

    // Strong Wolfe line search.
    const phi0 = f;
    let lastF = NaN; // f at xt (the last evaluation)
    const evalAt = (a: number): [number, number] => {
      for (let i = 0; i < n; i++) xt[i] = x[i] + a * d[i];
      lastF = fg(xt, gt);
      evaluations++;
      return [lastF, dot(gt, d)];
    };
    let aPrev = 0, fPrev = phi0, dPrev = dphi0;
    let a = a0;
    let accepted = false;
    let lsEvals = 0;
    const zoom = (lo: number, flo: number, dlo: number, hi: number, fhi: number, dhi: number) => {
      while (lsEvals < maxLS) {
        let at = cubicMin(lo, flo, dlo, hi, fhi, dhi);
        const lo2 = Math.min(lo, hi), hi2 = Math.max(lo, hi), w = hi2 - lo2;
        if (!(at > lo2 + 0.1 * w && at < hi2 - 0.1 * w)) at = (lo + hi) / 2;
        const [ft, dt] = evalAt(at);
        lsEvals++;
        if (ft > phi0 + c1 * at * dphi0 || ft >= flo) {
          hi = at;
          fhi = ft;
          dhi = dt;
        } else {
          if (Math.abs(dt) <= -c2 * dphi0) {
            a = at;
            return true;
          }
          if (dt * (hi - lo) >= 0) {
            hi = lo;
            fhi = flo;
            dhi = dlo;
          }
          lo = at;
          flo = ft;
          dlo = dt;
        }
        if (Math.abs(hi - lo) <= 1e-16 * Math.max(1, Math.abs(lo))) break;
      }
      // Fall back to the best point with sufficient decrease, if any.
      if (flo < phi0 && lo > 0) {
        evalAt(lo);
        a = lo;
        return true;
      }
      return false;
    };
    while (lsEvals < maxLS) {
      const [ft, dt] = evalAt(a);
      lsEvals++;
      if (!Number.isFinite(ft)) {
        a = (aPrev + a) / 2; // step into a non-finite region: shrink
        continue;
      }
      if (ft > phi0 + c1 * a * dphi0 || (lsEvals > 1 && ft >= fPrev)) {
        accepted = zoom(aPrev, fPrev, dPrev, a, ft, dt);
        break;
      }
      if (Math.abs(dt) <= -c2 * dphi0) {
        accepted = true;
        break;
      }
      if (dt >= 0) {
        accepted = zoom(a, ft, dt, aPrev, fPrev, dPrev);
        break;
      }
      aPrev = a;
      fPrev = ft;
      dPrev = dt;
      a *= 2;
    }
    if (!accepted) {
      reason = "line-search";
      break;
    }
    // xt/gt hold the accepted point (the last evaluation).
    const s = new Float64Array(n), y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      s[i] = xt[i] - x[i];
      y[i] = gt[i] - g[i];
    }
    const fOld = f;
    x.set(xt);
    g.set(gt);
    f = lastF;
    iterations++;
    const sy = dot(s, y);
    if (sy > 1e-10 * Math.sqrt(dot(s, s) * dot(y, y))) {
      if (S.length === m) {
        S.shift();
        Y.shift();
        rho.shift();
      }
      S.push(s);
      Y.push(y);
      rho.push(1 / sy);
    }
    if (fOld - f <= fTol * Math.max(Math.abs(fOld), Math.abs(f), fFloor)) {
      reason = "function-decrease";
      break;
    }
  }
  const gm = maxAbs(g);
  return {
    x,
    f,
    gradMaxAbs: gm,
    iterations,
    evaluations,
    converged: reason === "gradient" || reason === "function-decrease",
    reason,
  };
}
