/**
 * Training curves: loss and validation loss (seed mean with a ± one-sd band), and the learning
 * rate with the learned scale or bandwidth. Built from curve series, so that the report (from
 * finished entries) and the dashboard (from a stage still training) draw the same figures.
 */
import type { TopLevelSpec } from "vega-lite";
import type { Figure } from "./figures.ts";
import { BASE_CONFIG, NONE } from "./figure_style.ts";
import type { TrainPoint } from "./load.ts";

/** One training log and what it belongs to. */
export interface CurveSeries {
  /** "" in a single-run page, "A" / "B" in a comparison. */
  run: string;
  /** The stage's base name (instances of one base and group are averaged over seeds). */
  base: string;
  /** Labels without the seed ("" when none). */
  group: string;
  /** A name for the one line of this series in the scale panel. */
  label: string;
  similarity?: string;
  points: TrainPoint[];
}

const TRAIN_LOG = "train_log.jsonl";
const SCALARS = ["lr", "logit_scale", "sigma2"] as const;

/** The colour encoding and, when two runs are compared, run A solid and run B dashed. */
function encodings(colours: { domain: string[]; range: string[] }, compare: boolean) {
  const color = { field: "similarity", type: "nominal", scale: colours, title: "similarity" };
  const dash = (title?: string) =>
    compare
      ? {
        strokeDash: {
          field: "run",
          type: "nominal",
          ...(title ? { title } : {}),
          scale: { domain: ["A", "B"], range: [[1, 0], [5, 3]] },
        },
      }
      : {};
  return { color, dash };
}

/**
 * The figures of these series: training loss, validation loss (when any log has `val_loss`),
 * and the lr / scale panel (when any log has one of them). `idPrefix` keeps ids unique.
 */
export function curveFigures(
  series: CurveSeries[],
  colours: { domain: string[]; range: string[] },
  compare: boolean,
  idPrefix = "training",
): Figure[] {
  const withLog = series.filter((s) => s.points.length);
  if (!withLog.length) return [];
  const { color, dash } = encodings(colours, compare);
  const x = { field: "step", type: "quantitative", title: "step" };
  const lossFigure = (
    id: string,
    title: string,
    what: string,
    pick: (p: TrainPoint) => number | undefined,
  ): Figure | undefined => {
    const rows = seedMeans(withLog, pick);
    if (!rows.length) return undefined;
    const banded = rows.some((r) => r.n > 1);
    const groups = new Set(rows.map((r) => r.key)).size;
    const from = withLog.filter((s) => s.points.some((p) => pick(p) !== undefined)).length;
    return {
      id,
      title,
      caption: `${what} against step from ${TRAIN_LOG}: the mean over seeds of each ` +
        `configuration (${groups} line${groups === 1 ? "" : "s"} from ${from} pretrain ` +
        `instance${from === 1 ? "" : "s"})` +
        (banded ? ", with a band of ± one standard deviation over seeds where n > 1" : "") +
        "; coloured by similarity" + (compare ? "; solid: run A, dashed: run B." : "."),
      spec: {
        $schema: "https://vega.github.io/schema/vega-lite/v6.json",
        width: 620,
        height: 300,
        data: { values: rows },
        layer: [
          ...(banded
            ? [{
              transform: [{ filter: "datum.n > 1" }],
              mark: { type: "area", opacity: 0.18 },
              encoding: {
                x,
                y: { field: "lo", type: "quantitative", title: "loss", scale: { zero: false } },
                y2: { field: "hi" },
                color,
                detail: { field: "key", type: "nominal" },
              },
            }]
            : []),
          {
            // Points too: a validation curve may have few steps, and a line needs two.
            mark: { type: "line", strokeWidth: 1.5, opacity: 0.9, point: rows.length < 60 },
            encoding: {
              x,
              y: { field: "mean", type: "quantitative", title: "loss", scale: { zero: false } },
              color,
              detail: { field: "key", type: "nominal" },
              ...dash("run"),
            },
          },
        ],
        config: BASE_CONFIG,
      } as TopLevelSpec,
    };
  };
  const figs = [
    lossFigure(
      `${idPrefix}-loss`,
      "Training loss",
      "InfoNCE loss on the training batch",
      (p) => p.loss,
    ),
    lossFigure(
      `${idPrefix}-val-loss`,
      "Validation loss",
      "InfoNCE loss on the fixed validation batches (val_batches of the val split)",
      (p) => p.val_loss,
    ),
  ].filter((f): f is Figure => f !== undefined);

  const scal = withLog.flatMap((s) =>
    s.points.flatMap((p) =>
      SCALARS.filter((q) => p[q] !== undefined).map((q) => ({
        step: p.step,
        value: p[q]!,
        quantity: q,
        instance: s.label,
        similarity: s.similarity ?? NONE,
        run: s.run || "-",
      }))
    )
  );
  if (scal.length) {
    const quantities = [...new Set(scal.map((r) => r.quantity))];
    figs.push({
      id: `${idPrefix}-scale`,
      title: "Learning rate and learned scale",
      caption: "lr (the schedule), logit_scale (CLIP: exp(t) after clamping) and sigma2 (KME: " +
        "kernel bandwidth) against step, one line per instance, from the same logs.",
      spec: {
        $schema: "https://vega.github.io/schema/vega-lite/v6.json",
        data: { values: scal },
        facet: { column: { field: "quantity", type: "nominal", title: null, sort: quantities } },
        spec: {
          width: 300,
          height: 200,
          mark: { type: "line", strokeWidth: 1.5, opacity: 0.85 },
          encoding: {
            x: { field: "step", type: "quantitative" },
            y: { field: "value", type: "quantitative", title: null, scale: { zero: false } },
            color,
            detail: { field: "instance", type: "nominal" },
            ...dash(),
          },
        },
        resolve: { scale: { y: "independent" } },
        config: BASE_CONFIG,
      } as TopLevelSpec,
    });
  }
  return figs;
}

/**
 * A quantity per step, averaged over the seeds of each configuration (series of one run, base
 * and group): mean, ± one sample standard deviation, and n at that step.
 */
function seedMeans(series: CurveSeries[], pick: (p: TrainPoint) => number | undefined) {
  const byGroup = new Map<string, CurveSeries[]>();
  for (const s of series) {
    const k = `${s.run}\u0000${s.base}\u0000${s.group}`;
    byGroup.set(k, [...(byGroup.get(k) ?? []), s]);
  }
  return [...byGroup.values()].flatMap((members) => {
    const first = members[0];
    const key = `${first.run ? `${first.run}: ` : ""}${first.base}` +
      (first.group ? `[${first.group}]` : "");
    const atStep = new Map<number, number[]>();
    for (const m of members) {
      for (const p of m.points) {
        const v = pick(p);
        if (v !== undefined) atStep.set(p.step, [...(atStep.get(p.step) ?? []), v]);
      }
    }
    return [...atStep.entries()].sort((a, b) => a[0] - b[0]).map(([step, xs]) => {
      const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
      const sd = xs.length > 1
        ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1))
        : 0;
      return {
        step,
        mean,
        lo: mean - sd,
        hi: mean + sd,
        n: xs.length,
        key,
        group: first.group,
        similarity: first.similarity ?? NONE,
        run: first.run || "-",
      };
    });
  });
}
