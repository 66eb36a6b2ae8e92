/** HTML assembly: one self-contained page (inline CSS and SVG, no script, no external URL). */
import type { RunRecord } from "../pipeline/records.ts";
import { type DiffRow, fmtIntervals, groupOfInstance } from "../pipeline/diff.ts";
import type { Instance, LoadedRun } from "./load.ts";
import type { RenderedFigure } from "./figures.ts";
import {
  byBase,
  fmtNum,
  fmtSummary,
  hasSeedLabel,
  metricNames,
  scalarMetrics,
  seedGroups,
  type Summary,
} from "./stats.ts";

export function esc(s: unknown): string {
  return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:24px auto;max-width:1200px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}h3 small{color:#666;font-weight:normal}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f5f5f5;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tbody tr:nth-child(even){background:#fafafa}
.wrap{overflow-x:auto}
.kv th{width:160px}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
.ok{color:#1a7f37;font-weight:600}.failed,.interrupted{color:#cf222e;font-weight:600}
.muted{color:#666}tr.diff,tbody tr.diff{background:#fff8c5}
figure{margin:12px 0 20px;max-width:100%;overflow-x:auto}figure svg{max-width:100%;height:auto}figure.small{display:inline-block;vertical-align:top;margin:8px 12px 12px 0}
figure.small figcaption{max-width:340px}
figcaption{color:#555;font-size:12px;max-width:760px}
.warn li{color:#9a6700}
`;

function page(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
${body}
</body>
</html>
`;
}

function figuresHtml(figs: RenderedFigure[]): string {
  if (!figs.length) {
    return `<p class="muted">No figures: no stage wrote a training log, R@K metrics or a PMI scatter.</p>`;
  }
  // Small figures of one group share a heading and a caption, and sit side by side.
  let group: string | undefined;
  return figs.map((f) => {
    const first = f.small && f.group !== group;
    group = f.small ? f.group : undefined;
    if (f.small) {
      return `${
        first ? `<h3>${esc(f.group ?? f.title)}</h3>\n<p class="muted">${esc(f.caption)}</p>\n` : ""
      }<figure id="fig-${esc(f.id)}" class="small">\n${f.svg}\n</figure>`;
    }
    return `<figure id="fig-${esc(f.id)}">
<h3>${esc(f.title)}</h3>
${f.svg}
<figcaption>${esc(f.caption)}</figcaption>
</figure>`;
  }).join("\n");
}

function warningsHtml(w: string[]): string {
  if (!w.length) return "";
  return `<h2 id="warnings">Warnings</h2>\n<ul class="warn">${
    w.map((x) => `<li>${esc(x)}</li>`).join("")
  }</ul>`;
}

function facetsSummary(rec: RunRecord): string {
  const f = new Map<string, Map<string, number>>();
  for (const s of Object.values(rec.stages)) {
    for (const [k, v] of Object.entries(s.facets ?? {})) {
      if (!f.has(k)) f.set(k, new Map());
      f.get(k)!.set(v, (f.get(k)!.get(v) ?? 0) + 1);
    }
  }
  if (!f.size) return "–";
  return [...f].map(([k, vs]) =>
    `${k}: ${[...vs].map(([v, n]) => `${v} (${n} stage${n === 1 ? "" : "s"})`).join(", ")}`
  ).join("; ");
}

interface HeaderRow {
  name: string;
  html: (r: RunRecord) => string;
}

const git = (r: RunRecord) => {
  const g = r.env?.git as { commit?: string; dirty?: boolean } | null | undefined;
  if (!g?.commit) return "–";
  return `<code>${esc(g.commit)}</code>${
    g.dirty === true ? " (dirty tree)" : g.dirty === false ? " (clean)" : ""
  }`;
};

const HEADER: HeaderRow[] = [
  {
    name: "experiment",
    html: (r) => `${esc(r.experiment.name)} <code>${esc(r.experiment.file)}</code>`,
  },
  { name: "run id", html: (r) => `<code>${esc(r.id)}</code>` },
  { name: "status", html: (r) => `<span class="${esc(r.status)}">${esc(r.status)}</span>` },
  { name: "started", html: (r) => esc(r.started) },
  { name: "finished", html: (r) => `${esc(r.finished)} (${fmtNum(r.seconds)} s)` },
  { name: "git commit", html: git },
  { name: "backend facets", html: (r) => esc(facetsSummary(r)) },
  {
    name: "Deno",
    html: (r) =>
      `${esc(r.env?.deno ?? "–")} <span class="muted">(V8 ${esc(r.env?.v8 ?? "?")}, TypeScript ${
        esc(r.env?.typescript ?? "?")
      })</span>`,
  },
  { name: "OS / host", html: (r) => `${esc(r.env?.os ?? "–")} / ${esc(r.env?.host ?? "–")}` },
  { name: "seed", html: (r) => esc(r.seed) },
  { name: "command", html: (r) => `<code>${esc((r.argv ?? []).join(" "))}</code>` },
];

function stagesTable(runs: LoadedRun[]): string {
  const compare = runs.length > 1;
  const rows = runs.flatMap((run) =>
    [...byBase(run.instances).values()].flat().map((i) => {
      const s = i.stage;
      return `<tr>${compare ? `<td>${esc(run.tag)}</td>` : ""}<td><code>${
        esc(i.name)
      }</code></td><td>${esc(s.kind)}</td><td class="${esc(s.outcome)}">${
        esc(s.outcome)
      }</td><td><code>${esc(s.key ? s.key.slice(0, 12) : "–")}</code></td><td class="num">${
        fmtNum(s.seconds)
      }</td><td class="num">${fmtNum(s.computeSeconds)}</td><td>${
        s.error ? `<span class="failed">${esc(s.error.split("\n")[0].slice(0, 300))}</span>` : ""
      }</td></tr>`;
    })
  );
  return `<div class="wrap"><table><thead><tr>${compare ? "<th>run</th>" : ""}<th>instance</th>` +
    `<th>kind</th><th>outcome</th><th>key</th><th>seconds</th><th>compute s</th><th>error</th>` +
    `</tr></thead><tbody>${rows.join("")}</tbody></table></div>`;
}

function instanceHeader(i: Instance): string {
  const labels = Object.entries(i.stage.labels ?? {});
  return labels.length ? labels.map(([k, v]) => `${k}=${v}`).join(", ") : i.name;
}

function metricsTables(run: LoadedRun): string {
  const parts: string[] = [];
  for (const [base, insts] of byBase(run.instances)) {
    const names = metricNames(insts);
    if (!names.length) continue;
    parts.push(
      `<h3>${esc(base)} <small>${esc(insts[0].stage.kind)}, ${insts.length} instance${
        insts.length === 1 ? "" : "s"
      }</small></h3>`,
    );
    const head = insts.map((i) => `<th title="${esc(i.name)}">${esc(instanceHeader(i))}</th>`)
      .join("");
    const body = names.map((n) =>
      `<tr><th>${esc(n)}</th>${
        insts.map((i) => `<td class="num">${fmtNum(scalarMetrics(i).get(n))}</td>`).join("")
      }</tr>`
    ).join("");
    parts.push(
      `<div class="wrap"><table><thead><tr><th>metric</th>${head}</tr></thead><tbody>${body}</tbody></table></div>`,
    );
    if (hasSeedLabel(insts)) {
      const groups = seedGroups(insts);
      parts.push(`<p class="muted">Across seeds: mean ± sample standard deviation (n).</p>`);
      const gh = groups.map((g) => `<th>${esc(g.group || "all")}</th>`).join("");
      const gb = names.map((n) =>
        `<tr><th>${esc(n)}</th>${
          groups.map((g) => `<td class="num">${esc(fmtSummary(g.metrics.get(n)))}</td>`).join("")
        }</tr>`
      ).join("");
      parts.push(
        `<div class="wrap"><table><thead><tr><th>metric</th>${gh}</tr></thead><tbody>${gb}</tbody></table></div>`,
      );
    }
  }
  return parts.join("\n") || `<p class="muted">No stage recorded scalar metrics.</p>`;
}

export interface PageInfo {
  generator: string;
  /** Single-run pages: KME - CLIP rows with seed-level intervals (report/mod.ts answerRows). */
  answer?: DiffRow[];
  /** Comparison pages: the intervals of B - A by diff row name (`stage[labels].metric`). */
  intervals?: Map<string, DiffRow>;
}

/** Which way is better for a headline metric, by its name ("" when the name does not say). */
function betterWhen(row: string): string {
  const m = row.slice(row.lastIndexOf(".") + 1);
  if (/loss|^kl_|rmse|rank/.test(m)) return "lower";
  if (/pearson|spearman|rsum|top\d|accuracy|recall|R@/.test(m)) return "higher";
  return "";
}

const signed = (v: number | undefined) =>
  v === undefined ? "–" : `${v > 0 ? "+" : ""}${Number(v.toPrecision(4))}`;

/** The answer block: KME - CLIP per comparison unit, `*` where the seed interval excludes 0. */
function answerHtml(rows: DiffRow[]): string {
  if (!rows.length) return "";
  const num = (v: number | string | undefined) =>
    typeof v === "number" ? Number(v.toPrecision(4)).toString() : v === undefined ? "–" : esc(v);
  const body = rows.map((r) =>
    `<tr${r.significant ? ' class="diff"' : ""}><td><code>${esc(r.name)}</code></td><td>${
      esc(betterWhen(r.name))
    }</td><td class="num">${num(r.a)}</td><td class="num">${num(r.b)}</td><td class="num">${
      signed(r.delta)
    }</td><td>${esc(fmtIntervals(r)) || "–"}</td></tr>`
  ).join("");
  const noIntervals = rows.every((r) => !r.seedCi)
    ? `<p class="muted">No seed-level interval: that needs two or more seeds of each similarity,
paired by seed (e.g. <code>matrix: {similarity: [clip, kme], seed: [0, 1, 2]}</code>). With one
seed the difference may be training noise.</p>`
    : "";
  return `<h2 id="answer">KME-CLIP - CLIP</h2>
<p class="muted">Means over seeds of CLIP (A) and KME-CLIP (B) in each comparison unit (a stage
with its other labels), their difference and its 95% interval over seeds, paired by seed index
(<code>diff RUN --by similarity=clip,kme</code>); <code>*</code>: the interval excludes 0.</p>
<table><thead><tr><th>metric</th><th>better</th><th>CLIP</th><th>KME-CLIP</th><th>KME - CLIP</th><th>interval</th></tr></thead><tbody>${body}</tbody></table>
${noIntervals}`;
}

export function singleReportHtml(run: LoadedRun, figs: RenderedFigure[], info: PageInfo): string {
  const r = run.record;
  const header = HEADER.map((h) => `<tr><th>${esc(h.name)}</th><td>${h.html(r)}</td></tr>`).join(
    "",
  );
  // The answer first (what the run is for), then what the run was.
  const body = `<h1>kme-clip report: ${esc(r.experiment.name)}</h1>
<p class="muted">Run <code>${esc(r.id)}</code></p>
${answerHtml(info.answer ?? [])}
<h2 id="run">Run</h2>
<table class="kv"><tbody>${header}</tbody></table>
<h2 id="figures">Figures</h2>
${figuresHtml(figs)}
<h2 id="metrics">Metrics</h2>
${metricsTables(run)}
<h2 id="stages">Stages</h2>
${stagesTable([run])}
${warningsHtml(run.warnings)}
<p class="muted">${esc(info.generator)}</p>`;
  return page(`${r.experiment.name} ${r.id}`, body);
}

export interface ParamChange {
  name: string;
  a?: string | number;
  b?: string | number;
}

export function compareReportHtml(
  a: LoadedRun,
  b: LoadedRun,
  paramChanges: ParamChange[],
  figs: RenderedFigure[],
  info: PageInfo,
): string {
  const header = HEADER.map((h) => {
    const [x, y] = [h.html(a.record), h.html(b.record)];
    return `<tr${x !== y ? ' class="diff"' : ""}><th>${
      esc(h.name)
    }</th><td>${x}</td><td>${y}</td></tr>`;
  }).join("");
  const params = paramChanges.length
    ? `<div class="wrap"><table><thead><tr><th>param</th><th>A</th><th>B</th></tr></thead><tbody>${
      paramChanges.map((p) =>
        `<tr><td><code>${esc(p.name)}</code></td><td>${esc(p.a ?? "–")}</td><td>${
          esc(p.b ?? "–")
        }</td></tr>`
      ).join("")
    }</tbody></table></div>`
    : `<p class="muted">No parameter differs.</p>`;
  const body = `<h1>kme-clip comparison: ${esc(a.record.experiment.name)} vs ${
    esc(b.record.experiment.name)
  }</h1>
<p class="muted">A = <code>${esc(a.record.experiment.name)}/${esc(a.record.id)}</code>, B = <code>${
    esc(b.record.experiment.name)
  }/${esc(b.record.id)}</code></p>
<h2 id="run">Runs</h2>
<table class="kv"><thead><tr><th></th><th>A</th><th>B</th></tr></thead><tbody>${header}</tbody></table>
<h2 id="params">Parameters that differ</h2>
${params}
<h2 id="metrics">Metrics</h2>
${compareMetrics(a, b, info.intervals ?? new Map())}
<h2 id="figures">Figures</h2>
${figuresHtml(figs)}
<h2 id="stages">Stages</h2>
${stagesTable([a, b])}
${warningsHtml([...a.warnings.map((w) => `A: ${w}`), ...b.warnings.map((w) => `B: ${w}`)])}
<p class="muted">${esc(info.generator)}</p>`;
  return page(`${a.record.experiment.name} ${a.record.id} vs ${b.record.id}`, body);
}

/**
 * Per base stage and seed group: A and B (mean ± sd (n) across seeds), difference of means,
 * and the interval of B - A that `diff A B` prints (seeds paired; see docs/evaluation.md).
 */
function compareMetrics(a: LoadedRun, b: LoadedRun, intervals: Map<string, DiffRow>): string {
  const ba = byBase(a.instances), bb = byBase(b.instances);
  const bases = [...new Set([...ba.keys(), ...bb.keys()])];
  const rows: string[] = [];
  for (const base of bases) {
    const ga = new Map(seedGroups(ba.get(base) ?? []).map((g) => [g.group, g]));
    const gb = new Map(seedGroups(bb.get(base) ?? []).map((g) => [g.group, g]));
    for (const group of new Set([...ga.keys(), ...gb.keys()])) {
      const [x, y] = [ga.get(group), gb.get(group)];
      const names = [...new Set([...(x?.metrics.keys() ?? []), ...(y?.metrics.keys() ?? [])])];
      const member = (x ?? y)!.members[0];
      const diffName = groupOfInstance(member.name, member.stage)?.name;
      for (const n of names) {
        const [sa, sb] = [x?.metrics.get(n), y?.metrics.get(n)];
        const { delta, rel } = deltaOf(sa, sb);
        const changed = delta !== undefined && delta !== 0;
        const iv = diffName === undefined ? undefined : intervals.get(`${diffName}.${n}`);
        rows.push(
          `<tr${changed ? ' class="diff"' : ""}><td><code>${esc(base)}</code></td><td>${
            esc(group || "–")
          }</td><td><code>${esc(n)}</code></td><td class="num">${
            esc(cell(sa))
          }</td><td class="num">${esc(cell(sb))}</td><td class="num">${
            delta === undefined ? "–" : (delta > 0 ? "+" : "") + fmtNum(delta)
          }</td><td class="num">${
            rel === undefined ? "–" : `${rel > 0 ? "+" : ""}${(rel * 100).toFixed(1)}%`
          }</td><td>${iv ? esc(fmtIntervals(iv)) : "–"}</td></tr>`,
        );
      }
    }
  }
  if (!rows.length) return `<p class="muted">No stage recorded scalar metrics.</p>`;
  return `<p class="muted">Groups are instances that differ only by seed: mean ± sample standard ` +
    `deviation (n); Δ = mean B − mean A. Interval: 95% CI of B − A with seeds paired across the ` +
    `runs, over seeds (Student t on the per-seed deltas; for retrieval R@K also a seeds × ` +
    `queries bootstrap, the hull of both); * where it excludes 0. "Queries only": resampling ` +
    `test queries, which does not cover training randomness.</p><div class="wrap"><table>` +
    `<thead><tr><th>stage</th><th>group</th><th>metric</th><th>A</th><th>B</th><th>Δ</th>` +
    `<th>Δ rel</th><th>interval of Δ</th></tr></thead><tbody>${
      rows.join("")
    }</tbody></table></div>`;
}

const cell = (s: Summary | undefined) =>
  s === undefined ? "–" : s.n === 1 ? fmtNum(s.mean) : fmtSummary(s);

function deltaOf(a?: Summary, b?: Summary): { delta?: number; rel?: number } {
  if (!a || !b) return {};
  const delta = b.mean - a.mean;
  return { delta, rel: a.mean !== 0 && delta !== 0 ? delta / Math.abs(a.mean) : undefined };
}
