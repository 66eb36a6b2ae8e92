/**
 * The report's figures: Vega-Lite specs built from loaded runs, compiled with vega-lite and
 * rendered headless to SVG strings by vega's View (no browser, no canvas, no network).
 */
import * as vega from "vega";
import * as vl from "vega-lite";
import type { TopLevelSpec } from "vega-lite";
import { type Instance, type LoadedRun, MAX_SCATTER_POINTS } from "./load.ts";
import { byBase, fmtNum, parseRecallMetric, scalarMetrics, summarize } from "./stats.ts";
import {
  BASE_CONFIG,
  NONE,
  PALETTE,
  safeId,
  similarityColours,
  similarityScale,
} from "./figure_style.ts";
import { sweepFigures } from "./sweep_figures.ts";
import { curveFigures, type CurveSeries } from "./curve_figures.ts";

export interface Figure {
  /** File-name-safe id, unique within a report (PNG files are named after it). */
  id: string;
  title: string;
  caption: string;
  spec: TopLevelSpec;
  /** Small figures are laid out side by side, under the heading `group` (no own heading). */
  small?: boolean;
  group?: string;
}

export interface RenderedFigure extends Figure {
  svg: string;
}

const label = (i: Instance) => (i.run ? `${i.run}: ${i.name}` : i.name);

export function buildFigures(runs: LoadedRun[]): Figure[] {
  const all = runs.flatMap((r) => r.instances);
  const sim = similarityColours(all);
  const compare = runs.length > 1;
  const figs = [
    ...trainingFigures(all, sim, compare),
    ...recallFigures(all, sim, compare),
    ...sweepFigures(all, sim),
    ...pmiFigures(all, sim),
  ];
  // Ids name PNG files: keep them unique even when two names sanitise alike.
  const seen = new Map<string, number>();
  for (const f of figs) {
    const n = seen.get(f.id) ?? 0;
    seen.set(f.id, n + 1);
    if (n) f.id = `${f.id}-${n + 1}`;
  }
  return figs;
}

function trainingFigures(
  all: Instance[],
  colours: Map<string, string>,
  compare: boolean,
): Figure[] {
  const withLog = all.filter((i) => i.trainLog?.length);
  return curveFigures(curveSeries(withLog), similarityScale(colours, withLog), compare);
}

/** The training logs of instances as curve series (the report's and the dashboard's figures). */
export function curveSeries(instances: Instance[]): CurveSeries[] {
  return instances.filter((i) => i.trainLog?.length).map((i) => ({
    run: i.run,
    base: i.stage.base,
    group: i.group,
    label: label(i),
    similarity: i.similarity,
    points: i.trainLog!,
  }));
}

const SCATTER = "scatter.json";

function recallFigures(all: Instance[], colours: Map<string, string>, compare: boolean): Figure[] {
  const figs: Figure[] = [];
  // Group by base stage across runs (a comparison puts A and B in the same figure).
  for (const [base, insts] of byBase(all)) {
    const recall = insts.filter((i) =>
      [...scalarMetrics(i).keys()].some((k) => parseRecallMetric(k))
    );
    if (!recall.length) continue;
    // Series: (run, labels without seed); values averaged over seeds.
    const series = new Map<string, { run: string; sim: string; vals: Map<string, number[]> }>();
    const panels: string[] = [];
    const ks = new Set<number>();
    for (const i of recall) {
      const name = (i.run ? `${i.run}: ` : "") + (i.group || i.name);
      if (!series.has(name)) {
        series.set(name, { run: i.run, sim: i.similarity ?? NONE, vals: new Map() });
      }
      const s = series.get(name)!;
      for (const [m, v] of scalarMetrics(i)) {
        const r = parseRecallMetric(m);
        if (!r || !Number.isFinite(v)) continue;
        if (!panels.includes(r.panel)) panels.push(r.panel);
        ks.add(r.k);
        const key = `${r.panel}\u0000${r.k}`;
        if (!s.vals.has(key)) s.vals.set(key, []);
        s.vals.get(key)!.push(v);
      }
    }
    const seriesNames = [...series.keys()];
    const kOrder = [...ks].sort((a, b) => a - b).map((k) => `R@${k}`);
    const rows = [];
    let withSd = false;
    for (const [name, s] of series) {
      for (const [key, xs] of s.vals) {
        const [panel, k] = key.split("\u0000");
        const sm = summarize(xs);
        const sd = Number.isFinite(sm.sd) ? sm.sd : 0;
        if (sm.n > 1) withSd = true;
        rows.push({
          series: name,
          run: s.run || "-",
          similarity: s.sim,
          panel,
          K: `R@${k}`,
          mean: sm.mean,
          lo: sm.mean - sd,
          hi: sm.mean + sd,
          n: sm.n,
          text: fmtNum(Number(sm.mean.toFixed(1))),
        });
      }
    }
    // Series coloured like their similarity when that tells them apart, else by position.
    const sims = [...series.values()].map((s) => s.sim);
    const colors = new Set(sims).size === sims.length
      ? sims.map((x) => colours.get(x)!)
      : seriesNames.map((_, i) => PALETTE[i % PALETTE.length]);
    const x = { field: "K", type: "ordinal", sort: kOrder, title: null, axis: { labelAngle: 0 } };
    const xOffset = { field: "series", type: "nominal", sort: seriesNames };
    const layer: unknown[] = [{
      mark: { type: "bar" },
      encoding: {
        x,
        xOffset,
        y: { field: "mean", type: "quantitative", title: "recall (%)" },
        color: {
          field: "series",
          type: "nominal",
          title: compare ? "run: group" : "group",
          scale: { domain: seriesNames, range: colors },
          sort: seriesNames,
        },
      },
    }];
    if (withSd) {
      layer.push({
        mark: { type: "rule", color: "#222" },
        encoding: {
          x,
          xOffset,
          y: { field: "lo", type: "quantitative" },
          y2: { field: "hi" },
        },
      });
    }
    const seeds = recall.some((i) => i.seed !== undefined);
    figs.push({
      id: `recall-${safeId(base)}`,
      title: `Retrieval: ${base}`,
      caption: `Recall@K (percent) of stage ${base}` +
        (seeds ? ", mean over seeds, whisker = ± 1 standard deviation" : "") +
        `; panels: ${panels.join(", ")}.`,
      spec: {
        $schema: "https://vega.github.io/schema/vega-lite/v6.json",
        data: { values: rows },
        facet: { column: { field: "panel", type: "nominal", title: null, sort: panels } },
        spec: {
          width: Math.max(120, kOrder.length * (seriesNames.length * 14 + 16)),
          height: 220,
          layer,
        },
        resolve: { scale: { y: "shared" } },
        config: BASE_CONFIG,
      } as TopLevelSpec,
    });
  }
  return figs;
}

/**
 * Points drawn over all PMI panels of a page. Every point is an SVG element (~120 bytes): a
 * sweep with 111 PMI stages drew 5,000 each and weighed 88 MB. Each panel gets an even share,
 * at least MIN_PANEL_POINTS, taken by a fixed stride from the stage's own seeded subsample.
 */
const PAGE_POINTS = 8000;
const MIN_PANEL_POINTS = 200;

function pmiFigures(all: Instance[], colours: Map<string, string>): Figure[] {
  const figs: Figure[] = [];
  const panels = all.filter((x) => x.scatter);
  const share = Math.max(MIN_PANEL_POINTS, Math.floor(PAGE_POINTS / Math.max(1, panels.length)));
  for (const i of panels) {
    const sc = i.scatter!;
    const stride = Math.max(1, Math.ceil(sc.pmi.length / share));
    const kept = sc.pmi.map((_, j) => j).filter((j) => j % stride === 0);
    const color = colours.get(i.similarity ?? NONE) ?? PALETTE[0];
    const m = scalarMetrics(i);
    const stat = [...m].filter(([k]) => /pearson|spearman|rmse/i.test(k))
      .map(([k, v]) => `${k} ${fmtNum(v)}`);
    const sub = [
      stat.length ? stat.join(", ") : `pearson ${fmtNum(sc.pearson)}`,
      sc.total > kept.length
        ? `${kept.length} of ${sc.total} pairs shown (seeded subsample)`
        : `${sc.total} pairs`,
    ];
    const rows = kept.map((j) => ({ pmi: sc.pmi[j], score: sc.score[j] }));
    const enc = {
      x: { field: "pmi", type: "quantitative", title: "true PMI", scale: { zero: false } },
      y: {
        field: "score",
        type: "quantitative",
        title: "learned similarity",
        scale: { zero: false },
      },
    };
    figs.push({
      id: `pmi-${safeId(label(i))}`,
      title: `PMI: ${label(i)}`,
      caption: `Learned similarity against true PMI, one panel per instance (${SCATTER}; at ` +
        `most ${Math.min(share, MAX_SCATTER_POINTS)} points each, a seeded subsample, so that ` +
        `the page stays light); the statistics above each panel use every pair; line: ` +
        "least-squares fit to the points shown.",
      small: true,
      group: "PMI fidelity: learned similarity against true PMI",
      spec: {
        $schema: "https://vega.github.io/schema/vega-lite/v6.json",
        width: 260,
        height: 240,
        title: { text: label(i), subtitle: sub },
        data: { values: rows },
        layer: [
          {
            // aria: false: no per-point aria-label (it would double the SVG's size).
            mark: { type: "circle", size: 6, opacity: 0.35, color, aria: false },
            encoding: enc,
          },
          {
            mark: { type: "line", color: "#222", strokeWidth: 1.2 },
            transform: [{ regression: "score", on: "pmi" }],
            encoding: enc,
          },
        ],
        config: BASE_CONFIG,
      } as TopLevelSpec,
    });
  }
  return figs;
}

/**
 * Compiles and renders one spec to an SVG string. Element ids (clip paths, gradients) are
 * prefixed with `idPrefix` so that several SVGs inlined in one page cannot collide.
 */
export async function renderSvg(spec: TopLevelSpec, idPrefix: string): Promise<string> {
  const compiled = vl.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  try {
    const svg = await view.toSVG();
    return prefixIds(compactCircles(roundTranslates(svg)), idPrefix);
  } finally {
    view.finalize();
  }
}

/** Rounds translate(x,y) offsets to 1/100 px (vega writes up to 17 digits per point). */
export function roundTranslates(svg: string): string {
  const r = (v: string) => String(Math.round(Number(v) * 100) / 100);
  return svg.replace(
    /translate\((-?[\d.]+(?:e-?\d+)?),\s*(-?[\d.]+(?:e-?\d+)?)\)/g,
    (_, x, y) => `translate(${r(x)},${r(y)})`,
  );
}

/**
 * Vega draws every point of a scatter as a path tracing a circle with two arcs, ~140 bytes each
 * with its attributes; an SVG `<circle>` says the same in ~75, which is what keeps a report with
 * six PMI panels under 1 MB. The stroke width goes (these points have no stroke) and the mark's
 * opacity becomes fill-opacity (the same for a fill without stroke).
 */
export function compactCircles(svg: string): string {
  return svg.replace(
    /<path transform="translate\((-?[\d.]+),(-?[\d.]+)\)" d="M([\d.]+),0A\3,\3,0,1,1,-\3,0A\3,\3,0,1,1,\3,0" fill="([^"]+)" stroke-width="[\d.]+" opacity="([\d.]+)"\/>/g,
    (_, x, y, r, fill, op) =>
      `<circle cx="${x}" cy="${y}" r="${r}" fill="${fill}" fill-opacity="${op}"/>`,
  );
}

export function prefixIds(svg: string, prefix: string): string {
  return svg
    .replace(/\bid="([^"]+)"/g, (_, id) => `id="${prefix}-${id}"`)
    .replace(/url\(#([^)]+)\)/g, (_, id) => `url(#${prefix}-${id})`)
    .replace(/\b((?:xlink:)?href)="#([^"]+)"/g, (_, a, id) => `${a}="#${prefix}-${id}"`);
}

export async function renderFigures(figs: Figure[]): Promise<RenderedFigure[]> {
  const out: RenderedFigure[] = [];
  for (const f of figs) out.push({ ...f, svg: await renderSvg(f.spec, `f-${f.id}`) });
  return out;
}
