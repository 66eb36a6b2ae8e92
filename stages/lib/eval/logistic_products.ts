/**
 * The two dense products of the multinomial objective (logistic.ts), which are nearly all of
 * its cost at scale: the logits Z = X W^T (n x K) and the weight gradient G = R^T X (K x p).
 *
 * - "js": plain f64 loops in a fixed order: the same bits on every machine, and the fallback.
 * - "blas": OpenBLAS `cblas_dgemm` on one thread (the sweep runs fits in parallel instead).
 *   Deterministic for a given OpenBLAS build and corename; equal to "js" up to f64 rounding,
 *   which can move an iterate and so the last digits of a fit.
 */
import { loadOpenBlas } from "./openblas.ts";

export interface Products {
  readonly name: "js" | "blas";
  /** For the protocol: which code computed the products. */
  readonly description: string;
  /** Z[n x K] = X[n x p] W[K x p]^T. */
  logits(X: Float64Array, W: Float64Array, n: number, p: number, K: number, Z: Float64Array): void;
  /** G[K x p] = R[n x K]^T X[n x p]. */
  gradW(R: Float64Array, X: Float64Array, n: number, K: number, p: number, G: Float64Array): void;
}

export const jsProducts: Products = {
  name: "js",
  description: "f64 loops in JavaScript",
  logits(X, W, n, p, K, Z) {
    for (let i = 0; i < n; i++) {
      const xo = i * p;
      for (let k = 0; k < K; k++) {
        const wo = k * p;
        let s = 0;
        for (let j = 0; j < p; j++) s += W[wo + j] * X[xo + j];
        Z[i * K + k] = s;
      }
    }
  },
  gradW(R, X, n, K, p, G) {
    G.fill(0);
    for (let i = 0; i < n; i++) {
      const xo = i * p;
      for (let k = 0; k < K; k++) {
        const r = R[i * K + k], go = k * p;
        for (let j = 0; j < p; j++) G[go + j] += r * X[xo + j];
      }
    }
  },
};

const WAY_OUT = "set the linear-probe param `engine: js` (or KME_OPENBLAS=none)";

/** OpenBLAS's dgemm; throws OpenBlasUnavailableError (exit 2) when it cannot be loaded. */
export function blasProducts(): Products {
  const blas = loadOpenBlas(WAY_OUT);
  return {
    name: "blas",
    description: `OpenBLAS dgemm, one thread (${blas.config}, corename ${blas.corename})`,
    logits(X, W, n, p, K, Z) {
      blas.dgemm(false, true, n, K, p, X, p, W, p, Z, K);
    },
    gradW(R, X, n, K, p, G) {
      blas.dgemm(true, false, K, p, n, R, K, X, p, G, p);
    },
  };
}

export function productsFor(engine: "js" | "blas"): Products {
  return engine === "blas" ? blasProducts() : jsProducts;
}
