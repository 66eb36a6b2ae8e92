/**
 * Test stage for sweeps: a "model" whose score depends on its similarity and seed, so that
 * diffs over seeds have known means and deviations. It also answers 50 "queries" (hit or miss,
 * written to hits.json) and has a `compare` hook over them, so that diffs get query-level and
 * seeds x queries intervals too.
 */
import { join } from "node:path";
import { z } from "zod";
import { defineStage, type PairedQueries } from "../../pipeline/stage.ts";

const QUERIES = 50;

/** Query q is a hit when (7q + 3 seed) mod 10 < threshold: clip 5 (50%), kme 6 or 7. */
function hits(similarity: string, seed: number): number[] {
  const threshold = similarity === "kme" ? 6 + (seed % 2) : 5;
  return Array.from({ length: QUERIES }, (_, q) => ((q * 7 + seed * 3) % 10 < threshold ? 1 : 0));
}

async function readHits(dir: string): Promise<number[] | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(join(dir, "hits.json")));
  } catch {
    return undefined;
  }
}

export default defineStage({
  kind: "test/score",
  description: "score = base(similarity) + 0.01 * seed (+ 0.02 for kme at odd seeds); " +
    "spread: kme +-0.01..0.02 by seed; acc: percent of 50 queries hit",
  params: z.strictObject({ similarity: z.enum(["clip", "kme"]).default("clip") }),
  inputs: { data: { description: "anything", optional: true } },
  async run(ctx) {
    const kme = ctx.params.similarity === "kme";
    const score = (kme ? 0.6 + 0.02 * (ctx.seed % 2) : 0.5) + 0.01 * ctx.seed;
    const spread = 0.3 + (kme ? 0.01 * [1, -2, 2][ctx.seed % 3] : 0);
    const h = hits(ctx.params.similarity, ctx.seed);
    const acc = (100 * h.reduce((s, x) => s + x, 0)) / QUERIES;
    await Deno.writeTextFile(join(ctx.outDir, "score.txt"), String(score));
    await Deno.writeTextFile(join(ctx.outDir, "hits.json"), JSON.stringify(h));
    return { metrics: { score, spread, acc, seed: ctx.seed } };
  },
  async compare(pairs): Promise<Record<string, PairedQueries>> {
    const units: PairedQueries["pairs"] = [];
    for (const { a, b } of pairs) {
      const [ha, hb] = [await readHits(a.dir), await readHits(b.dir)];
      if (!ha || !hb || ha.length !== hb.length) return {};
      units.push({
        diff: Float64Array.from(ha, (x, q) => 100 * (hb[q] - x)),
        size: new Float64Array(ha.length).fill(1),
      });
    }
    return { acc: { pairs: units, shared: true } };
  },
});
