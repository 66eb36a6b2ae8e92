/**
 * Sweep figures: a metric against a swept numeric param (e.g. fidelity against embed_dim in
 * experiments/pmi-rank.yaml), one line per similarity, with a band over seeds. A stage gets
 * them when its instances carry a numeric matrix label (not `seed`) with at least three values;
 * the label with the most values is the x axis, and any other labels (a data stage's world, an
 * lr) split the figure into panels.
 *
 * The band is the 95% t-interval of the mean over seeds (mean +- t_{n-1} sd / sqrt(n)): what
 * `diff` uses for seed-level uncertainty, so the figure and the table agree. A point with one
 * seed has no band.
 */
import type { TopLevelSpec } from "vega-lite";
import { tInterval } from "../stages/lib/stats/intervals.ts";
import type { Figure } from "./figures.ts";
import { BASE_CONFIG, NONE, safeId, similarityScale } from "./figure_style.ts";
import type { Instance } from "./load.ts";
import { byBase, scalarMetrics } from "./stats.ts";

/**
 * The metrics plotted against a sweep, per metric name, with the direction that is better:
 * the fidelity metrics of the pmi stage (docs/evaluation.md), then what should follow them.
 */
export const SWEEP_METRICS: Record<string, "lower" | "higher"> = {
  kl_image_to_text: "lower",
  kl_text_to_image: "lower",
  pearson_weighted: "higher",
  rmse_shifted_weighted: "lower",
  pearson_restricted: "higher",
  pearson: "higher",
  rsum: "higher",
  top1: "higher",
  val_loss: "lower",
};

/** The numeric label with the most distinct values (>= 3) among the instances, if any. */
export function sweepAxis(instances: Instance[]): string | undefined {
  const values = new Map<string, Set<number>>();
  for (const i of instances) {
    for (const [k, v] of Object.entries(i.stage.labels ?? {})) {
      if (k === "seed") continue;
      if (typeof v !== "number") {
        values.set(k, new Set([NaN])); // a non-numeric axis is never the x axis
        continue;
      }
      if (!values.has(k)) values.set(k, new Set());
      values.get(k)!.add(v);
    }
  }
  let best: string | undefined;
  let most = 2;
  for (const [k, vs] of values) {
    if ([...vs].some((v) => Number.isNaN(v))) continue;
    if (vs.size > most) (best = k, most = vs.size);
  }
  return best;
}

export interface SweepPoint {
  x: number;
  similarity: string;
  panel: string;
  mean: number;
  lo: number;
  hi: number;
  n: number;
}

/** Mean and seed band of `metric` per (panel, similarity, x): the rows of one figure. */
export function sweepPoints(instances: Instance[], axis: string, metric: string): SweepPoint[] {
  const groups = new Map<string, { x: number; similarity: string; panel: string; v: number[] }>();
  for (const i of instances) {
    const labels = i.stage.labels ?? {};
    const x = labels[axis];
    const v = scalarMetrics(i).get(metric);
    if (typeof x !== "number" || v === undefined || !Number.isFinite(v)) continue;
    const panel = Object.entries(labels)
      .filter(([k]) => k !== axis && k !== "seed" && k !== "similarity")
      .map(([k, val]) => `${k}=${val}`).join(", ");
    const similarity = i.similarity ?? NONE;
    const key = `${i.run}\u0000${panel}\u0000${similarity}\u0000${x}`;
    const panelName = i.run ? [i.run, panel].filter(Boolean).join(": ") : panel;
    if (!groups.has(key)) groups.set(key, { x, similarity, panel: panelName, v: [] });
    groups.get(key)!.v.push(v);
  }
  return [...groups.values()].map((g) => {
    const n = g.v.length;
    const mean = g.v.reduce((s, a) => s + a, 0) / n;
    const band = n >= 2 ? tInterval(g.v) : { lo: mean, hi: mean };
    return { x: g.x, similarity: g.similarity, panel: g.panel, mean, lo: band.lo, hi: band.hi, n };
  }).sort((a, b) => a.panel.localeCompare(b.panel) || a.x - b.x);
}

export function sweepFigures(all: Instance[], colours: Map<string, string>): Figure[] {
  const figs: Figure[] = [];
  for (const [base, insts] of byBase(all)) {
    const axis = sweepAxis(insts);
    if (!axis) continue;
    const metrics = Object.keys(SWEEP_METRICS).filter((m) =>
      insts.some((i) => scalarMetrics(i).has(m))
    );
    for (const metric of metrics) {
      const rows = sweepPoints(insts, axis, metric);
      if (!rows.length) continue;
      const panels = [...new Set(rows.map((r) => r.panel))];
      const color = {
        field: "similarity",
        type: "nominal",
        title: "similarity",
        scale: similarityScale(colours, insts.filter((i) => scalarMetrics(i).has(metric))),
      };
      const xs = [...new Set(rows.map((r) => r.x))].sort((a, b) => a - b);
      // Powers of two (embed_dim) read best on a log axis.
      const log = xs.every((v) => v > 0) && xs[xs.length - 1] / xs[0] >= 8;
      const x = {
        field: "x",
        type: "quantitative",
        title: axis,
        scale: log ? { type: "log", base: 2 } : { zero: false },
        axis: { values: xs, format: "~g" },
      };
      const better = SWEEP_METRICS[metric];
      const spec = {
        width: 240,
        height: 190,
        layer: [
          {
            mark: { type: "area", opacity: 0.18 },
            encoding: {
              x,
              y: { field: "lo", type: "quantitative" },
              y2: { field: "hi" },
              color,
            },
          },
          {
            mark: { type: "line", point: true, strokeWidth: 1.6 },
            encoding: {
              x,
              y: {
                field: "mean",
                type: "quantitative",
                title: `${metric} (${better} is better)`,
                scale: { zero: false },
              },
              color,
              tooltip: [
                { field: "similarity" },
                { field: "x", title: axis },
                { field: "mean", format: ".4g" },
                { field: "lo", format: ".4g" },
                { field: "hi", format: ".4g" },
                { field: "n", title: "seeds" },
              ],
            },
          },
        ],
      };
      const ns = rows.map((r) => r.n);
      const [fewest, most] = [Math.min(...ns), Math.max(...ns)];
      const seeds = fewest === most ? `n = ${most} seeds` : `n = ${fewest} to ${most} seeds`;
      figs.push({
        id: `sweep-${safeId(base)}-${safeId(metric)}`,
        title: `${metric} against ${axis}`,
        caption: `${metric} of stage ${base} against ${axis}, one line per similarity: the mean ` +
          `over seeds` +
          (most > 1 ? `, band = 95% t-interval of the mean (${seeds})` : "") +
          (panels.length > 1 || panels[0] ? `; panels: ${panels.join(" | ")}` : "") + ".",
        small: true,
        group: `Sweeps of ${base} against ${axis}`,
        spec: {
          $schema: "https://vega.github.io/schema/vega-lite/v6.json",
          data: { values: rows },
          ...(panels.length > 1 || panels[0]
            ? {
              facet: { column: { field: "panel", type: "nominal", title: null, sort: panels } },
              spec,
            }
            : spec),
          config: BASE_CONFIG,
        } as TopLevelSpec,
      });
    }
  }
  return figs;
}
