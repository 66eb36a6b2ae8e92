/**
 * Sweep figures (report/sweep_figures.ts): metric against a swept numeric label, one line per
 * similarity, 95% t-band over seeds, panels for the other labels; built from constructed
 * instances and rendered to SVG.
 */
import assert from "node:assert/strict";
import type { StageRecord } from "../pipeline/records.ts";
import type { Instance } from "../report/load.ts";
import { sweepAxis, sweepFigures, sweepPoints } from "../report/sweep_figures.ts";
import { renderSvg } from "../report/figures.ts";
import { similarityColours } from "../report/figure_style.ts";
import { tInterval } from "../stages/lib/stats/intervals.ts";

function inst(labels: Record<string, string | number>, metrics: Record<string, number>): Instance {
  const name = `pmi[${Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(",")}]`;
  return {
    run: "",
    name,
    stage: { base: "pmi", kind: "pmi", labels, metrics } as unknown as StageRecord,
    similarity: labels.similarity as string,
    group: "",
    seed: labels.seed,
  };
}

/** A pmi-rank-like sweep: 2 worlds x 2 similarities x 3 dims x 3 seeds, KL = f(d) + seed noise. */
function sweep(): Instance[] {
  const out: Instance[] = [];
  for (const world of [0.99, 0]) {
    for (const similarity of ["clip", "kme"]) {
      for (const d of [8, 16, 32]) {
        for (const seed of [0, 1, 2]) {
          const kl = (similarity === "kme" ? 0.5 : 1) / Math.log2(d) + world + 0.01 * seed;
          out.push(inst({ "occlusion.correlation": world, similarity, embed_dim: d, seed }, {
            kl_image_to_text: kl,
          }));
        }
      }
    }
  }
  return out;
}

Deno.test("sweep axis: the numeric label with the most values, >= 3; never seed or text", () => {
  assert.equal(sweepAxis(sweep()), "embed_dim");
  const two = sweep().filter((i) => i.stage.labels!.embed_dim !== 32);
  assert.equal(sweepAxis(two), undefined, "two values are a comparison, not a sweep");
  const lr = [1, 2, 3].map((s) => inst({ similarity: "clip", seed: s }, { top1: s }));
  assert.equal(sweepAxis(lr), undefined, "seeds are not a sweep");
});

Deno.test("sweep points: mean and 95% t-band over seeds, per world panel and similarity", () => {
  const rows = sweepPoints(sweep(), "embed_dim", "kl_image_to_text");
  assert.equal(rows.length, 2 * 2 * 3);
  const r = rows.find((p) =>
    p.panel === "occlusion.correlation=0.99" && p.similarity === "kme" && p.x === 16
  )!;
  const v = [0, 1, 2].map((s) => 0.5 / 4 + 0.99 + 0.01 * s);
  const t = tInterval(v);
  assert.equal(r.n, 3);
  assert.ok(Math.abs(r.mean - t.delta) < 1e-12);
  assert.equal(r.lo, t.lo);
  assert.equal(r.hi, t.hi);
  assert.ok(r.lo < r.mean && r.mean < r.hi);
  // One seed: no band.
  const one = sweepPoints(sweep().filter((i) => i.seed === 0), "embed_dim", "kl_image_to_text");
  assert.ok(one.every((p) => p.n === 1 && p.lo === p.mean && p.hi === p.mean));
});

Deno.test("sweep figures: one per metric present, faceted by world, rendered to SVG", async () => {
  const all = sweep();
  const figs = sweepFigures(all, similarityColours(all));
  assert.deepEqual(figs.map((f) => f.id), ["sweep-pmi-kl-image-to-text"]);
  assert.match(figs[0].caption, /band = 95% t-interval of the mean \(n = 3 seeds\)/);
  assert.match(
    figs[0].caption,
    /panels: occlusion\.correlation=0 \| occlusion\.correlation=0\.99|panels: occlusion\.correlation=0\.99 \| occlusion\.correlation=0/,
  );
  const svg = await renderSvg(figs[0].spec, "t");
  assert.match(svg, /^<svg/);
  assert.match(svg, /kl_image_to_text \(lower is better\)/);
  assert.match(svg, /embed_dim/);
  // No sweep, no figure.
  const flat = all.filter((i) => i.stage.labels!.embed_dim === 8);
  assert.deepEqual(sweepFigures(flat, similarityColours(flat)), []);
});
