/**
 * The dashboard's HTML: the runs page, a run's page (curves, comparison, stages) and an
 * attempt's page (its curves and log while it trains). Server-rendered; /app.js only refreshes
 * the parts marked `data-live` from the JSON API (dashboard/server.ts).
 */
import { esc } from "../report/html.ts";
import { fmtIntervals } from "../pipeline/diff.ts";
import type { RunRecord } from "../pipeline/records.ts";
import type { RunRow } from "../cli/runs_command.ts";
import { chooseColumns, DEFAULT_METRICS, differingParams, fmtParam } from "../cli/runs_command.ts";
import type { RenderedFigure } from "../report/figures.ts";
import type { Attempt, Comparison } from "./data.ts";

export function layout(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · kme dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/style.css">
<script src="/app.js" defer></script>
</head>
<body>
<header><a href="/">kme dashboard</a> <span class="muted">read-only view of the store</span></header>
<main>
${body}
</main>
</body>
</html>
`;
}

const num = (v: number | string | undefined) =>
  typeof v === "number" ? Number(v.toPrecision(4)).toString() : v === undefined ? "–" : esc(v);

function duration(s: number): string {
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${Math.round(s % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

const runHref = (experiment: string, id: string) =>
  `/run/${encodeURIComponent(experiment)}/${encodeURIComponent(id)}`;

/** The attempts table; also what /api/attempts.html returns for the live refresh. */
export function attemptsHtml(attempts: Attempt[]): string {
  if (!attempts.length) {
    return `<p class="muted" id="no-attempts">No stage is training, and none stopped halfway.</p>`;
  }
  const rows = attempts.map((a) =>
    `<tr class="${a.state}" data-key="${a.key}"><td><a href="/attempt/${a.key}">${
      esc(a.stage ?? a.key.slice(0, 12))
    }</a></td><td class="state">${a.state}</td><td>${
      a.state === "running"
        ? esc(`${a.host} pid ${a.pid}, since ${a.since?.slice(11, 19)}`)
        : a.resumesFrom
        ? esc(`resumes from ${a.resumesFrom}`)
        : ""
    }</td><td class="num points">${a.points}</td><td class="num">${num(a.lastStep)}${
      a.steps ? ` / ${a.steps}` : ""
    }</td>` +
    `<td class="num">${num(a.lastLoss)}</td><td class="num">${num(a.lastValLoss)}</td></tr>`
  ).join("\n");
  return `<table><thead><tr><th>stage</th><th>state</th><th>owner / resume point</th><th>logged points</th>` +
    `<th>step</th><th>loss</th><th>val loss</th></tr></thead><tbody>\n${rows}\n</tbody></table>`;
}

export function runsPage(rows: RunRow[], attempts: Attempt[]): string {
  const params = differingParams(rows);
  const metrics = chooseColumns(rows, DEFAULT_METRICS, false);
  const head = ["run", "started", "time", "status", "ran/cached/failed", ...params, ...metrics];
  const body = rows.map((r) =>
    `<tr><td><a href="${runHref(r.experiment, r.id)}">${esc(r.experiment)}/${esc(r.id)}</a></td>` +
    `<td>${esc(r.started.replace("T", " ").slice(0, 19))}</td><td class="num">${
      duration(r.seconds)
    }</td><td class="${esc(r.status)}">${esc(r.status)}${
      r.work === "no-op" ? ' <span class="muted">(no-op)</span>' : ""
    }</td><td class="num">${r.ran}/${r.cached}/${r.failed}</td>${
      params.map((p) => `<td><code>${esc(fmtParam(r.params[p]))}</code></td>`).join("")
    }${metrics.map((m) => `<td class="num">${num(r.metrics[m])}</td>`).join("")}</tr>`
  ).join("\n");
  return layout(
    "runs",
    `<h1>Training now</h1>
<div data-live="/api/attempts.html" id="attempts">${attemptsHtml(attempts)}</div>
<h1>Runs</h1>
<p class="muted">${rows.length} run record(s), newest first; params shown are those that differ
between runs (a sweep's values listed); metrics per configuration (a swept stage's labels in
brackets), the mean over its seeds (<code>kme runs --json</code> gives the same).</p>
<div class="wrap"><table id="runs"><thead><tr>${
      head.map((h) => `<th>${esc(h)}</th>`).join("")
    }</tr></thead><tbody>
${body || `<tr><td colspan="${head.length}" class="muted">no runs yet</td></tr>`}
</tbody></table></div>`,
  );
}

export function figuresHtml(figs: RenderedFigure[]): string {
  return figs.map((f) =>
    `<figure id="fig-${esc(f.id)}"><h3>${esc(f.title)}</h3>${f.svg}<figcaption>${
      esc(f.caption)
    }</figcaption></figure>`
  ).join("\n");
}

/** The comparison form (axes with two or more values) and, when chosen, its table and plot. */
function comparisonHtml(
  rec: RunRecord,
  axes: Map<string, string[]>,
  cmp: Comparison | undefined,
  plot: string,
): string {
  if (!axes.size) return `<p class="muted">No label takes two values in this run.</p>`;
  const options = [...axes].map(([axis, vs]) =>
    `<p>${esc(axis)}: ${
      vs.flatMap((a, i) =>
        vs.slice(i + 1).map((b) =>
          `<a href="${runHref(rec.experiment.name, rec.id)}?by=${encodeURIComponent(axis)}&a=${
            encodeURIComponent(a)
          }&b=${encodeURIComponent(b)}#compare">${esc(b)} − ${esc(a)}</a>`
        )
      ).join(" · ")
    }</p>`
  ).join("\n");
  if (!cmp) return options;
  const body = cmp.rows.map((r) =>
    `<tr${r.significant ? ' class="sig"' : ""}><td><code>${
      esc(r.name)
    }</code></td><td class="num">${num(r.a)}</td><td class="num">${num(r.b)}</td><td class="num">${
      r.delta !== undefined && r.delta > 0 ? "+" : ""
    }${num(r.delta)}</td><td class="ci">${esc(fmtIntervals(r)) || "–"}</td></tr>`
  ).join("\n");
  return `${options}
<h3>${esc(cmp.axis)}: ${esc(cmp.b)} − ${esc(cmp.a)}</h3>
<p class="muted">As <code>kme diff ${esc(rec.experiment.name)}:${esc(rec.id)} --by ${
    esc(cmp.axis)
  }=${esc(cmp.a)},${esc(cmp.b)}</code>: means over seeds, the difference, and its 95% interval
over seeds paired by seed index (with per-query results: the hull of that and a seeds × queries
bootstrap); <code>*</code>: the seed interval excludes 0. The plot shows ${esc(cmp.b)} − ${
    esc(cmp.a)
  } and its seed-level interval per metric, each on its own scale, with 0 marked.</p>
${plot}
<div class="wrap"><table id="comparison"><thead><tr><th>metric</th><th>${esc(cmp.a)}</th><th>${
    esc(cmp.b)
  }</th><th>${esc(cmp.b)} − ${esc(cmp.a)}</th><th>interval</th></tr></thead><tbody>
${body}
</tbody></table></div>`;
}

export function runPage(
  rec: RunRecord,
  curves: RenderedFigure[],
  axes: Map<string, string[]>,
  cmp: Comparison | undefined,
  plot: string,
): string {
  const stages = Object.entries(rec.stages).map(([name, s]) =>
    `<tr><td><code>${esc(name)}</code></td><td>${esc(s.kind)}</td><td class="${esc(s.outcome)}">${
      esc(s.outcome)
    }</td><td class="num">${duration(s.seconds)}</td><td>${
      s.key ? `<a href="/log/${s.key}">log</a> · <code>${s.key.slice(0, 12)}</code>` : "–"
    }</td></tr>`
  ).join("\n");
  return layout(
    `${rec.experiment.name} ${rec.id}`,
    `<h1>${esc(rec.experiment.name)} <small><code>${esc(rec.id)}</code></small></h1>
<p>${esc(rec.status)}, started ${esc(rec.started.replace("T", " ").slice(0, 19))}, ${
      duration(rec.seconds)
    }, seed ${rec.seed} · <a href="${
      runHref(rec.experiment.name, rec.id)
    }/report">full report</a></p>
<h2 id="compare">Comparison</h2>
${comparisonHtml(rec, axes, cmp, plot)}
<h2 id="curves">Training curves</h2>
${
      curves.length
        ? figuresHtml(curves)
        : `<p class="muted">No stage of this run wrote a training log.</p>`
    }
<h2 id="stages">Stages</h2>
<div class="wrap"><table><thead><tr><th>stage</th><th>kind</th><th>outcome</th><th>time</th><th>entry</th></tr></thead><tbody>
${stages}
</tbody></table></div>`,
  );
}

export function attemptPage(key: string, attempt: Attempt | undefined, published: boolean): string {
  const title = attempt?.stage ?? key.slice(0, 12);
  const state = published
    ? "finished: its entry is published"
    : attempt?.state === "running"
    ? `training now (${esc(attempt.host)} pid ${attempt.pid})`
    : `stopped: the next run resumes it${
      attempt?.resumesFrom ? ` from ${esc(attempt.resumesFrom)}` : " from what it kept"
    }`;
  return layout(
    title,
    `<h1>${esc(title)} <small><code>${key.slice(0, 12)}</code></small></h1>
<p id="state">${state}</p>
<h2>Training curves</h2>
<div data-live="/api/curve/${key}" id="curve"><p class="muted">loading…</p></div>
<h2>Log</h2>
<pre data-live="/log/${key}" id="log"></pre>`,
  );
}

export function notFoundPage(what: string): string {
  return layout(
    "not found",
    `<h1>Not found</h1><p>${esc(what)}</p><p><a href="/">all runs</a></p>`,
  );
}

export const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0}
header{background:#24292f;color:#fff;padding:8px 24px}header a{color:#fff;font-weight:600;text-decoration:none}
header .muted{color:#bbb;margin-left:12px}
main{max-width:1280px;margin:16px auto;padding:0 16px}
h1{font-size:20px;margin:18px 0 6px}h1 small{font-size:13px;color:#666}
h2{font-size:17px;margin:24px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f5f5f5;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tbody tr:nth-child(even){background:#fafafa}tr.sig td{background:#fff8c5}
tr.running td.state{color:#1a7f37;font-weight:600}tr.stopped td.state{color:#9a6700}
.wrap{overflow-x:auto}code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
pre{background:#f6f8fa;border:1px solid #ddd;padding:8px;max-height:420px;overflow:auto;font-size:12px}
.ok,.ran{color:#1a7f37}.failed,.interrupted{color:#cf222e;font-weight:600}.muted{color:#666}
figure{margin:10px 0 18px}figcaption{color:#555;font-size:12px;max-width:760px}
`;
