/**
 * `report`: HTML built from fixture run records and entry folders (tests/fixtures/report/),
 * figures as inline SVG, no external references, seed aggregation, comparison, PNG export, CLI.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import { openStore } from "../pipeline/store.ts";
import type { RunRecord } from "../pipeline/records.ts";
import { buildReport, defaultReportPath, writeReport } from "../report/mod.ts";
import { loadRun, MAX_SCATTER_POINTS, stride, subsampleIndices } from "../report/load.ts";
import { fmtNum, fmtSummary, parseRecallMetric, seedGroups, summarize } from "../report/stats.ts";
import { excludesZero, tInterval } from "../stages/lib/stats/intervals.ts";
import { prefixIds, roundTranslates } from "../report/figures.ts";
import { buildFixtureStore, type FixtureStore } from "./fixtures/report/fixture.ts";
import { ROOT } from "./helpers/cli.ts";

const TMP = await Deno.makeTempDir({ prefix: "kme-report-test-" });
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(TMP, { recursive: true });
  } catch { /* already gone */ }
});
let fixture: Promise<FixtureStore> | undefined;
const fx = () => (fixture ??= buildFixtureStore(join(TMP, "store")));

/** src / href / xlink:href attribute values and CSS url(...) that point off the machine. */
export function externalRefs(html: string): string[] {
  const out: string[] = [];
  for (
    const m of html.matchAll(
      /\b(?:src|href|xlink:href|srcset|action|data)\s*=\s*["']?\s*([^"'\s>]+)/gi,
    )
  ) {
    if (/^(?:https?:)?\/\//i.test(m[1])) out.push(m[0]);
  }
  for (const m of html.matchAll(/url\(\s*["']?\s*([^)"']+)/gi)) {
    if (/^(?:https?:)?\/\//i.test(m[1])) out.push(m[0]);
  }
  for (const m of html.matchAll(/@import[^;]*/gi)) out.push(m[0]);
  return out;
}

/** assert.match without printing megabytes of HTML on failure. */
function matches(text: string, re: RegExp, what = String(re)) {
  assert.ok(re.test(text), `expected ${what} (${text.length} characters of text)`);
}
function lacks(text: string, re: RegExp, what = String(re)) {
  const m = re.exec(text);
  assert.ok(
    !m,
    `unexpected ${what}: ...${m && text.slice(Math.max(0, m.index - 80), m.index + 80)}...`,
  );
}

function figureSvgs(html: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of html.matchAll(/<figure id="fig-([^"]+)"[^>]*>([\s\S]*?)<\/figure>/g)) {
    const svg = /<svg[\s\S]*<\/svg>/.exec(m[2]);
    out.set(m[1], svg ? svg[0] : "");
  }
  return out;
}

Deno.test("report: one run -> one self-contained HTML page with inline SVG figures", async () => {
  const f = await fx();
  const store = openStore(f.root);
  const rep = await writeReport(store, [f.a]);
  assert.equal(rep.path, join(f.root, "reports", "synthetic-fx", `${f.a.id}.html`));
  assert.equal(rep.path, defaultReportPath(store, [f.a]));
  const html = await Deno.readTextFile(rep.path);
  assert.equal(html, rep.html);

  // Figures: loss curves, learned scale, R@K bars, one PMI scatter per pmi instance (6).
  const svgs = figureSvgs(html);
  assert.deepEqual([...svgs.keys()].slice(0, 4), [
    "training-loss",
    "training-val-loss",
    "training-scale",
    "recall-retrieval",
  ]);
  assert.equal([...svgs.keys()].filter((k) => k.startsWith("pmi-")).length, 6);
  assert.equal(svgs.size, rep.figures.length);
  for (const [id, svg] of svgs) {
    assert.ok(svg.length > 1000, `${id}: empty SVG`);
    matches(svg, /<path|<rect/, `${id}: no marks`);
    matches(svg, /role-mark/, `${id}: no mark group`);
    lacks(svg, /NaN/, `${id}: NaN in SVG`);
  }
  // One loss line per configuration (2 similarities; the mean of 3 seeds) with its band over
  // seeds; the learning rate beside the learned scale; bars with whiskers (3 seeds).
  assert.equal(
    (svgs.get("training-loss")!.match(/aria-roledescription="line mark"/g) ?? []).length,
    2,
  );
  assert.equal(
    (svgs.get("training-loss")!.match(/aria-roledescription="area mark"/g) ?? []).length,
    2,
  );
  // Validation loss: the same, on the steps that validated (with points: few of them).
  for (const mark of ["line mark", "area mark"]) {
    const n = svgs.get("training-val-loss")!.match(
      new RegExp(`aria-roledescription="${mark}"`, "g"),
    );
    assert.equal(n?.length, 2, mark);
  }
  matches(svgs.get("training-val-loss")!, /aria-roledescription="point"/);
  matches(svgs.get("training-scale")!, />lr</);
  matches(svgs.get("recall-retrieval")!, /aria-roledescription="bar"/);
  matches(svgs.get("recall-retrieval")!, /aria-roledescription="rule mark"/);

  // Six pretrain and six PMI instances (two similarities x three seeds) fit in under 1 MB.
  assert.ok(html.length < 1_000_000, `${html.length} bytes`);
  // Self-contained: no script, no stylesheet link, nothing fetched from elsewhere.
  assert.deepEqual(externalRefs(html), []);
  lacks(html, /<script|<link\b|<iframe|<img\b/i);
  matches(html, /Content-Security-Policy" content="default-src 'none'/);
  // Ids are unique across the inlined SVGs (clip paths of one figure cannot hit another's).
  const ids = [...html.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1]);
  assert.equal(new Set(ids).size, ids.length, "duplicate element ids");
  for (const m of html.matchAll(/url\(#([^)]+)\)/g)) assert.ok(ids.includes(m[1]), m[0]);

  // Header.
  for (
    const s of [
      f.a.id,
      "a".repeat(40),
      "backend: wasm (6 stages)",
      "2.9.6",
      "experiments/synthetic-fx.yaml",
      '<span class="failed">failed</span>',
    ]
  ) assert.ok(html.includes(s), `header lacks ${s}`);
  // Text from records is escaped.
  assert.ok(html.includes("&lt;script&gt;alert(1)&lt;/script&gt;"));
  // The torn log line is a warning, not a failure.
  assert.deepEqual(rep.warnings, [
    "train[similarity=kme,seed=2]: train_log.jsonl: 1 malformed line(s) skipped",
  ]);
  matches(html, /<h2 id="warnings">/);
});

Deno.test("report: metrics per instance and mean ± sd (n) across seeds", async () => {
  const f = await fx();
  const store = openStore(f.root);
  const { html } = await buildReport(store, [f.a]);
  const vals = [0, 1, 2].map((s) =>
    f.a.stages[`retrieval[similarity=kme,seed=${s}]`].metrics!["i2t_R@1"] as number
  );
  const expected = fmtSummary(summarize(vals));
  matches(expected, /^[\d.]+ ± [\d.]+ \(3\)$/);
  assert.ok(html.includes(`<td class="num">${expected}</td>`), `no cell ${expected}`);
  // The per-instance table has every seed's value; array metrics (loss_curve) are not tabled.
  assert.ok(html.includes("similarity=kme, seed=2"));
  assert.ok(!html.includes("<th>loss_curve</th>"));
  // Identical values: sd exactly 0, not rounding noise.
  assert.ok(html.includes("0.4 ± 0 (3)"));

  const run = await loadRun(store, f.a);
  const groups = seedGroups(run.instances.filter((i) => i.stage.base === "retrieval"));
  assert.deepEqual(groups.map((g) => [g.group, g.similarity, g.members.length]), [
    ["similarity=clip", "clip", 3],
    ["similarity=kme", "kme", 3],
  ]);
  // Similarity of a downstream stage comes from its upstream when it has none of its own.
  assert.equal(run.instances.find((i) => i.name === "probe")!.similarity, "kme");
});

Deno.test("report: summarize, recall metric names, subsampling", () => {
  assert.deepEqual(summarize([1, 2, 3]), { mean: 2, sd: 1, n: 3 });
  assert.equal(summarize([5]).n, 1);
  assert.ok(Number.isNaN(summarize([5]).sd));
  assert.equal(fmtSummary(summarize([5])), "5 (1)");
  assert.equal(fmtSummary(summarize([1, 2, 3])), "2 ± 1 (3)");

  const cases: [string, string | undefined, number?][] = [
    ["i2t_R@1", "i2t", 1],
    ["t2i_R@10", "t2i", 10],
    ["5k_i2t_R@5", "5k i2t", 5],
    ["1k_t2i_R@1", "1k t2i", 1],
    ["R@5", "recall", 5],
    ["recall@10", "recall", 10],
    ["image_to_text.recall@1", "i2t", 1],
    ["coco_text_to_image_R@5", "coco t2i", 5],
    ["val_hit@3", "val", 3],
    ["rsum", undefined],
    ["i2t_medr", undefined],
    ["R@0", undefined],
    ["final_loss", undefined],
  ];
  for (const [name, panel, k] of cases) {
    const r = parseRecallMetric(name);
    assert.deepEqual(r && [r.panel, r.k], panel === undefined ? undefined : [panel, k], name);
  }

  const idx = subsampleIndices(20000, 5000);
  assert.equal(idx.length, 5000);
  assert.equal(new Set(idx).size, 5000);
  assert.ok(idx.every((v, i) => v >= 0 && v < 20000 && (i === 0 || v > idx[i - 1])));
  assert.deepEqual(subsampleIndices(20000, 5000), idx, "seeded: same subsample every time");
  assert.deepEqual(subsampleIndices(3, 5), [0, 1, 2]);
  const s = stride(Array.from({ length: 2500 }, (_, i) => i), 1000);
  assert.equal(s.length, 1000);
  assert.equal(s[0], 0);
  assert.equal(s[999], 2499);

  assert.equal(
    roundTranslates('<path transform="translate(3.818750000000005,158.06666666666666)"/>'),
    '<path transform="translate(3.82,158.07)"/>',
  );
  assert.equal(
    prefixIds('<clipPath id="clip1"/><g clip-path="url(#clip1)"/><use href="#clip1"/>', "f"),
    '<clipPath id="f-clip1"/><g clip-path="url(#f-clip1)"/><use href="#f-clip1"/>',
  );
});

Deno.test("report: PMI scatter is subsampled (5000 stored, a page's share drawn), the total kept", async () => {
  const f = await fx();
  const store = openStore(f.root);
  const run = await loadRun(store, f.a);
  const big = run.instances.find((i) => i.name === "pmi[similarity=kme,seed=0]")!;
  assert.equal(big.scatter!.total, f.bigScatter);
  assert.equal(big.scatter!.pmi.length, MAX_SCATTER_POINTS);
  assert.equal(big.scatter!.score.length, MAX_SCATTER_POINTS);
  const small = run.instances.find((i) => i.name === "pmi[similarity=kme,seed=1]")!;
  assert.equal(small.scatter!.pmi.length, 300);

  // The page draws at most 8,000 points over its PMI panels (each at least 200), by a fixed
  // stride through the stored subsample, so that a sweep's page stays light.
  const panels = run.instances.filter((i) => i.scatter).length;
  const share = Math.max(200, Math.floor(8000 / panels));
  const stride = Math.ceil(MAX_SCATTER_POINTS / share);
  const shown = Math.ceil(MAX_SCATTER_POINTS / stride);
  const { figures } = await buildReport(store, [f.a]);
  const fig = figures.find((x) => x.id === "pmi-pmi-similarity-kme-seed-0")!;
  const points = (fig.svg.match(/<circle cx=/g) ?? []).length;
  assert.ok(panels > 1 && shown < MAX_SCATTER_POINTS, `${panels} panels, ${shown} shown`);
  assert.equal(points, shown);
  matches(fig.svg, new RegExp(`${shown} of 8000 pairs shown`));
});

Deno.test("report: the same inputs give byte-identical pages", async () => {
  const f = await fx();
  const store = openStore(f.root);
  const [x, y] = [await buildReport(store, [f.a]), await buildReport(store, [f.a])];
  assert.equal(x.html, y.html);
});

Deno.test("report A B: comparison page with both runs", async () => {
  const f = await fx();
  const store = openStore(f.root);
  const rep = await writeReport(store, [f.a, f.b]);
  assert.equal(
    rep.path,
    join(f.root, "reports", "synthetic-fx", `${f.a.id}-vs-${f.b.id}.html`),
  );
  const html = rep.html;
  assert.deepEqual(externalRefs(html), []);
  matches(html, /kme-clip comparison/);
  // Parameters that differ: lr of every train instance.
  // (diff.ts may fold seeds: train[similarity=kme].lr or train[similarity=kme,seed=1].lr)
  assert.ok(
    /<code>train\[similarity=kme[^\]]*\]\.lr<\/code><\/td><td>0\.001<\/td><td>0\.0005</.test(html),
  );
  // Metric comparison per seed group, with the difference of means.
  const ga = seedGroups(
    (await loadRun(store, f.a)).instances.filter((i) => i.stage.base === "retrieval"),
  );
  const gb = seedGroups(
    (await loadRun(store, f.b)).instances.filter((i) => i.stage.base === "retrieval"),
  );
  const d = gb[1].metrics.get("rsum")!.mean - ga[1].metrics.get("rsum")!.mean;
  assert.ok(d > 0);
  assert.ok(html.includes(`+${String(Number(d.toPrecision(4)))}</td>`), "rsum delta");
  // With it, the interval of B - A that `diff A B` prints: seeds paired, t on the deltas.
  const rsum = (r: typeof f.a, s: number) =>
    r.stages[`retrieval[similarity=kme,seed=${s}]`].metrics!.rsum as number;
  const t = tInterval([0, 1, 2].map((s) => rsum(f.b, s) - rsum(f.a, s)));
  const iv = `95% CI [${fmtNum(t.lo)}, ${fmtNum(t.hi)}]${excludesZero(t) ? " *" : ""} ` +
    "(seeds: t, n=3)";
  assert.ok(html.includes(`<td>${iv}</td>`), `rsum interval ${iv}`);
  matches(html, /<th>interval of Δ<\/th>/);
  // Figures hold both runs: 4 seed-mean loss lines, A solid / B dashed, bars of 4 series.
  const svgs = figureSvgs(html);
  assert.equal(
    (svgs.get("training-loss")!.match(/aria-roledescription="line mark"/g) ?? []).length,
    4,
  );
  matches(svgs.get("training-loss")!, /stroke-dasharray="5,3"/);
  matches(svgs.get("recall-retrieval")!, /B: similarity=kme/);
  assert.equal([...svgs.keys()].filter((k) => k.startsWith("pmi-")).length, 12);
  assert.ok(
    rep.warnings.some((w) => w.startsWith("B: zeroshot: entry") && w.includes("not in the store")),
  );
  const ids = [...html.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1]);
  assert.equal(new Set(ids).size, ids.length, "duplicate element ids");
});

Deno.test("report --png: every figure as a valid PNG", async () => {
  const f = await fx();
  const store = openStore(f.root);
  const dir = join(TMP, "png");
  const out = join(TMP, "custom", "report.html");
  const rep = await writeReport(store, [f.a], { out, png: dir });
  assert.equal(rep.path, out);
  await Deno.stat(out);
  assert.equal(rep.pngs.length, rep.figures.length);
  assert.deepEqual(
    rep.pngs.map((p) => p.slice(dir.length + 1)).sort(),
    rep.figures.map((x) => `${x.id}.png`).sort(),
  );
  for (const p of rep.pngs) {
    const bytes = await Deno.readFile(p);
    assert.deepEqual([...bytes.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10], p);
    const meta = await sharp(bytes).metadata();
    assert.equal(meta.format, "png");
    assert.ok(meta.width! > 200 && meta.height! > 200, `${p}: ${meta.width}x${meta.height}`);
    // Not blank: more than one colour.
    const stats = await sharp(bytes).stats();
    assert.ok(stats.channels.some((c) => c.min < c.max), `${p} is blank`);
  }
});

Deno.test("report: a run without outputs still renders (no figures, no crash)", async () => {
  const f = await fx();
  const store = openStore(f.root);
  const bare: RunRecord = {
    ...f.a,
    id: "20250103T000000.000Z-cccccc",
    env: {},
    stages: { probe: f.a.stages.probe },
  };
  const { html, figures } = await buildReport(store, [bare]);
  assert.equal(figures.length, 0);
  matches(html, /No figures/);
  lacks(html, /<svg/);
});

Deno.test("report CLI: run id or experiment file -> prints the report path; bad ref exits 2", async () => {
  const f = await fx();
  const exp = join(TMP, "synthetic-fx.yaml");
  await Deno.writeTextFile(
    exp,
    "name: synthetic-fx\nstages:\n  data:\n    kind: prepare/synthetic\n",
  );
  const cli = async (...args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        "--quiet",
        `--config=${join(ROOT, "deno.json")}`,
        join(ROOT, "cli", "report_command.ts"),
        "--store",
        f.root,
        ...args,
      ],
      cwd: TMP,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  };
  let r = await cli("20250101");
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), join(f.root, "reports", "synthetic-fx", `${f.a.id}.html`));
  matches(r.stderr, /warning: train\[similarity=kme,seed=2\]/);
  // An experiment file means its latest run (b).
  r = await cli(exp, "--quiet");
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), join(f.root, "reports", "synthetic-fx", `${f.b.id}.html`));
  r = await cli("nosuchrun");
  assert.equal(r.code, 2);
  matches(r.stderr, /no run record 'nosuchrun'/);
});

Deno.test("report: a run with clip and kme leads with KME - CLIP and its seed-level interval", async () => {
  const f = await fx();
  const store = openStore(f.root);
  const { html } = await buildReport(store, [f.a]);
  const answer = html.indexOf('<h2 id="answer">');
  assert.ok(answer > 0, "no answer block");
  assert.ok(answer < html.indexOf('<h2 id="figures">'), "the answer comes before the figures");
  assert.ok(answer < html.indexOf('<h2 id="run">'), "and before the run's particulars");
  const rsum = (sim: string) =>
    [0, 1, 2].map((s) =>
      f.a.stages[`retrieval[similarity=${sim},seed=${s}]`].metrics!.rsum as number
    );
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const delta = mean(rsum("kme")) - mean(rsum("clip"));
  const t = tInterval(rsum("kme").map((v, i) => v - rsum("clip")[i]));
  const row = new RegExp(
    `<tr( class="diff")?><td><code>retrieval\\.rsum</code></td><td>higher</td>.*?<td class="num">${
      delta > 0 ? "\\+" : ""
    }${Number(delta.toPrecision(4))}</td><td>95% CI \\[[^\\]]+\\]${
      excludesZero(t) ? " \\*" : ""
    } \\(seeds: t, n=3\\)`,
  );
  matches(html.slice(answer), row, "the rsum row with its t-interval");
});
