"""The linear probe as a scikit-learn user writes it, on the features bench/probe_standalone.ts
wrote (same rows, same seeded fit/val split): LogisticRegression(C, max_iter=1000) with its
defaults (lbfgs, multinomial, tol 1e-4) for each C of the 13-decade grid on the fit rows,
validation accuracy, the best C (ties -> smaller) refit on all training rows, test accuracy.
Prints one JSON line. Usage: probe_sklearn.py FILE [--threads T]"""
import json, os, sys, time

threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "2"
for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[v] = threads
import numpy as np  # noqa: E402
import sklearn  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

with open(sys.argv[1], "rb") as f:
    n, p, K, nt, nf, nv = np.frombuffer(f.read(24), dtype="<i4")
    X = np.frombuffer(f.read(4 * n * p), dtype="<f4").reshape(n, p)
    y = np.frombuffer(f.read(4 * n), dtype="<i4")
    Xt = np.frombuffer(f.read(4 * nt * p), dtype="<f4").reshape(nt, p)
    yt = np.frombuffer(f.read(4 * nt), dtype="<i4")
    fit = np.frombuffer(f.read(4 * nf), dtype="<i4")
    val = np.frombuffer(f.read(4 * nv), dtype="<i4")

t0 = time.perf_counter()
best, chosen, iters = -1.0, None, 0
for C in [10.0 ** (k - 6) for k in range(13)]:
    m = LogisticRegression(C=C, max_iter=1000).fit(X[fit], y[fit])
    iters += int(m.n_iter_[0])
    acc = 100.0 * float((m.predict(X[val]) == y[val]).mean())
    if acc > best:
        best, chosen = acc, C
m = LogisticRegression(C=chosen, max_iter=1000).fit(X, y)
iters += int(m.n_iter_[0])
acc = 100.0 * float((m.predict(Xt) == yt).mean())
print(json.dumps({
    "seconds": round(time.perf_counter() - t0, 2), "accuracy": acc, "chosenC": chosen,
    "iterations": iters, "sklearn": sklearn.__version__, "threads": int(threads),
}))
