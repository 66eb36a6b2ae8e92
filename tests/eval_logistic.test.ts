import assert from "node:assert/strict";
import {
  classificationMetrics,
  fitLogistic,
  linearProbe,
  multinomialObjective,
  predictLogistic,
  stratifiedSplit,
} from "../stages/lib/eval/logistic.ts";
import { lbfgs } from "../stages/lib/eval/lbfgs.ts";

interface Fit {
  C: number;
  coef: number[][];
  intercept: number[];
  objective: number;
  gradientMaxAbs: number;
  testPredictions: number[];
  testAccuracy: number;
}
interface Reference {
  versions: Record<string, string>;
  X_train: number[][];
  y_train: number[];
  X_test: number[][];
  y_test: number[];
  fits: Fit[];
}

const ref: Reference = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/eval/logistic_reference.json", import.meta.url)),
);
const train = { X: Float64Array.from(ref.X_train.flat()), y: Int32Array.from(ref.y_train) };
const test = { X: Float64Array.from(ref.X_test.flat()), y: Int32Array.from(ref.y_test) };

Deno.test("lbfgs: minimises the Rosenbrock function", () => {
  const fg = (x: Float64Array, g: Float64Array) => {
    const [a, b] = x;
    g[0] = -2 * (1 - a) - 400 * a * (b - a * a);
    g[1] = 200 * (b - a * a);
    return (1 - a) ** 2 + 100 * (b - a * a) ** 2;
  };
  const r = lbfgs(fg, Float64Array.from([-1.2, 1]), { gradTol: 1e-10 });
  assert.ok(r.converged, r.reason);
  assert.ok(Math.abs(r.x[0] - 1) < 1e-6 && Math.abs(r.x[1] - 1) < 1e-6, `${r.x}`);
});

Deno.test("multinomial objective: gradient matches finite differences", () => {
  const X = Float64Array.from({ length: 12 }, (_, k) => Math.sin(k * 1.7));
  const y = Int32Array.from([0, 2, 1, 2]);
  const fg = multinomialObjective(X, y, 3, 3, 0.7);
  const th = Float64Array.from({ length: 12 }, (_, k) => Math.cos(k) * 0.3);
  const g = new Float64Array(12);
  fg(th, g);
  const h = 1e-6, tmp = new Float64Array(12);
  for (let q = 0; q < 12; q++) {
    const tp = th.slice(), tm = th.slice();
    tp[q] += h;
    tm[q] -= h;
    const num = (fg(tp, tmp) - fg(tm, tmp)) / (2 * h);
    assert.ok(Math.abs(num - g[q]) < 1e-7, `coordinate ${q}: ${num} vs ${g[q]}`);
  }
});

for (const fit of ref.fits) {
  Deno.test(`logistic vs scikit-learn ${ref.versions.sklearn} at C=${fit.C}`, () => {
    const model = fitLogistic(train, fit.C);
    assert.ok(model.optimizer.converged, model.optimizer.reason);
    const pred = predictLogistic(model, test.X);
    const acc = classificationMetrics(pred, test.y).accuracy;
    assert.ok(
      Math.abs(acc - fit.testAccuracy) <= 0.5,
      `test accuracy ${acc} vs sklearn ${fit.testAccuracy}`,
    );
    // The objective is sklearn's: ours evaluated at sklearn's solution gives its value.
    const K = fit.coef.length, p = fit.coef[0].length;
    const fg = multinomialObjective(train.X, train.y, K, p, fit.C);
    const theta = Float64Array.from([...fit.coef.flat(), ...fit.intercept]);
    const atSklearn = fg(theta, new Float64Array(theta.length));
    assert.ok(Math.abs(atSklearn - fit.objective) < 1e-10, `${atSklearn} vs ${fit.objective}`);
    // Our minimum is at least as low (sklearn stops at |grad| ~ 1e-5) and within 1e-6.
    assert.ok(model.objective <= fit.objective + 1e-12, `${model.objective} > ${fit.objective}`);
    assert.ok(fit.objective - model.objective < 1e-6, `${model.objective} vs ${fit.objective}`);
    // Coefficients close (relative to their size; the remaining gap is sklearn's early stop
    // along flat directions); intercepts compared up to the softmax's common shift.
    let maxW = 0, maxRef = 0;
    for (let k = 0; k < K; k++) {
      for (let j = 0; j < p; j++) {
        maxW = Math.max(maxW, Math.abs(model.W[k * p + j] - fit.coef[k][j]));
        maxRef = Math.max(maxRef, Math.abs(fit.coef[k][j]));
      }
    }
    assert.ok(maxW <= 5e-3 * maxRef, `max |dW| ${maxW} (max |W| ${maxRef})`);
    const centre = (v: ArrayLike<number>) => {
      const m = Array.from(v).reduce((s, x) => s + x, 0) / v.length;
      return Array.from(v, (x) => x - m);
    };
    const bOurs = centre(model.b), bRef = centre(fit.intercept);
    const bScale = Math.max(1, ...bRef.map(Math.abs));
    for (let k = 0; k < K; k++) {
      assert.ok(
        Math.abs(bOurs[k] - bRef[k]) <= 3e-2 * bScale,
        `b[${k}]: ${bOurs[k]} vs ${bRef[k]}`,
      );
    }
    // Predictions agree on (nearly) every test sample.
    let disagree = 0;
    for (let i = 0; i < pred.length; i++) if (pred[i] !== fit.testPredictions[i]) disagree++;
    assert.ok(disagree <= 1, `${disagree} predictions differ`);
  });
}

Deno.test("logistic: deterministic, and standardisation is an option that changes the fit", () => {
  const a = fitLogistic(train, 0.1);
  const b = fitLogistic(train, 0.1);
  assert.deepEqual(a.W, b.W);
  assert.deepEqual(a.b, b.b);
  const s = fitLogistic(train, 0.1, { standardize: true });
  assert.ok(s.standardize);
  assert.notDeepEqual(s.W, a.W);
  const acc = classificationMetrics(predictLogistic(s, test.X), test.y).accuracy;
  assert.ok(acc > 70, `standardised accuracy ${acc}`);
});

Deno.test("stratifiedSplit: seeded, stratified, disjoint and complete", () => {
  const y = Int32Array.from({ length: 103 }, (_, i) => i % 4);
  const s1 = stratifiedSplit(y, 0.2, 5), s2 = stratifiedSplit(y, 0.2, 5);
  assert.deepEqual(s1, s2);
  assert.notDeepEqual(stratifiedSplit(y, 0.2, 6).val, s1.val);
  const all = [...s1.fit, ...s1.val].sort((a, b) => a - b);
  assert.deepEqual(all, Array.from({ length: 103 }, (_, i) => i));
  for (let c = 0; c < 4; c++) {
    const nVal = [...s1.val].filter((i) => y[i] === c).length;
    const n = [...y].filter((v) => v === c).length;
    assert.equal(nVal, Math.round(0.2 * n));
  }
});

Deno.test("linearProbe: sweep picks by validation accuracy (ties -> smaller C), refits, reports", () => {
  const Cs = [0.001, 0.01, 0.1, 1];
  const r = linearProbe(train, test, { Cs, seed: 1, split: "fixture" });
  assert.equal(r.sweep.length, 4);
  const best = Math.max(...r.sweep.map((s) => s.valAccuracy));
  const firstBest = r.sweep.find((s) => s.valAccuracy === best)!;
  assert.equal(r.chosenC, firstBest.C);
  // The refit is on all 600 training samples: equals a direct fit at the chosen C.
  const direct = fitLogistic(train, r.chosenC);
  assert.deepEqual(r.model.W, direct.W);
  const acc = classificationMetrics(predictLogistic(direct, test.X), test.y);
  assert.deepEqual(r.test, acc);
  assert.equal(r.protocol.name, "linear-probe");
  assert.deepEqual((r.protocol.counts as { train: number }).train, 600);
  // Deterministic end to end.
  assert.deepEqual(linearProbe(train, test, { Cs, seed: 1 }).sweep, r.sweep);
});

Deno.test("classificationMetrics: accuracy and mean per-class recall", () => {
  const y = Int32Array.from([0, 0, 0, 1, 2, 2]);
  const pred = Int32Array.from([0, 0, 1, 1, 0, 2]);
  const m = classificationMetrics(pred, y);
  assert.equal(m.accuracy, (100 * 4) / 6);
  assert.ok(Math.abs(m.meanPerClassRecall - (100 * (2 / 3 + 1 + 1 / 2)) / 3) < 1e-12);
});
