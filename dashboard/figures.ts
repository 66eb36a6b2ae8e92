/**
 * The dashboard's figures, drawn as the report draws them (report/curve_figures.ts, vega to
 * SVG on the server): a run's training curves, one attempt's curves while it trains, and the
 * intervals of a comparison.
 */
import type { TopLevelSpec } from "vega-lite";
import type { RunRecord } from "../pipeline/records.ts";
import type { Store } from "../pipeline/store.ts";
import { curveFigures } from "../report/curve_figures.ts";
import { curveSeries, type RenderedFigure, renderFigures } from "../report/figures.ts";
import { BASE_CONFIG, similarityColours, similarityScale } from "../report/figure_style.ts";
import { loadRun, type TrainPoint } from "../report/load.ts";
import type { Comparison } from "./data.ts";

/** The curves of every stage of a run that published a training log. */
export async function runCurves(store: Store, rec: RunRecord): Promise<RenderedFigure[]> {
  const run = await loadRun(store, rec);
  const withLog = run.instances.filter((i) => i.trainLog?.length);
  const scale = similarityScale(similarityColours(run.instances), withLog);
  return await renderFigures(curveFigures(curveSeries(withLog), scale, false));
}

/** The curves of one attempt. */
export async function attemptCurves(
  stage: string,
  similarity: string | undefined,
  points: TrainPoint[],
) {
  const scale = similarityScale(similarityColours([{ similarity }]), [{ similarity }]);
  const base = stage.replace(/\[.*$/, "");
  return await renderFigures(curveFigures(
    [{ run: "", base, group: "", label: stage, similarity, points }],
    scale,
    false,
    "attempt",
  ));
}

/** B − A with its seed-level interval, one panel per metric (each on its own x scale). */
export async function comparisonPlot(cmp: Comparison): Promise<string> {
  const rows = cmp.rows.filter((r) => r.seedCi && typeof r.delta === "number").map((r) => ({
    metric: r.name,
    delta: r.delta!,
    lo: r.seedCi!.lo,
    hi: r.seedCi!.hi,
    excludes0: r.significant ? "interval excludes 0" : "interval includes 0",
  }));
  if (!rows.length) {
    return `<p class="muted">No metric has a seed-level interval (it needs two or more seeds ` +
      "on each side, paired by seed).</p>";
  }
  const spec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    data: { values: rows },
    facet: {
      row: {
        field: "metric",
        type: "nominal",
        title: null,
        sort: null, // the table's (natural) order: R@1, R@5, R@10
        header: { labelAngle: 0, labelAlign: "left", labelLimit: 320 },
      },
    },
    spec: {
      width: 420,
      height: 14,
      layer: [
        { mark: { type: "rule", color: "#999" }, encoding: { x: { datum: 0 } } },
        {
          mark: { type: "rule", strokeWidth: 2 },
          encoding: {
            // Zero always in view: what matters is where the interval lies against it.
            x: { field: "lo", type: "quantitative", title: null, scale: { zero: true } },
            x2: { field: "hi" },
            color: { field: "excludes0", type: "nominal", title: null },
          },
        },
        {
          mark: { type: "point", filled: true, size: 40 },
          encoding: {
            x: { field: "delta", type: "quantitative" },
            color: { field: "excludes0", type: "nominal", title: null },
          },
        },
      ],
    },
    resolve: { scale: { x: "independent" } },
    config: BASE_CONFIG,
  } as unknown as TopLevelSpec;
  const [fig] = await renderFigures([{ id: "comparison", title: "", caption: "", spec }]);
  return `<figure id="fig-comparison">${fig.svg}</figure>`;
}
