/**
 * Intervals of B - A for the rows of a diff (used by `diff` and by `report A B`); the numbers
 * come from stages/lib/stats/intervals.ts.
 *
 * Per compared group (a stage with its labels, the seed and the selected axis projected away):
 * - Instances are paired by seed (the same seed on both sides: the same data in the same order,
 *   e.g. clip and kme of one sweep index); an instance without a seed label pairs with the
 *   other side's unseeded one.
 * - With >= 2 seed pairs, every metric gets a seed-level interval: Student's t on the per-seed
 *   deltas (`tInterval`).
 * - A stage kind with a `compare` hook gives per-query results: those metrics also get the
 *   query-only interval (`queryBootstrap`), and with >= 2 seed pairs the seeds x queries
 *   bootstrap (`hierarchicalBootstrap`); their seed-level interval is then the hull of the
 *   t-interval and that bootstrap (`hullInterval`: the t-interval keeps the small-sample
 *   quantile, the bootstrap adds test-set sampling).
 * - `significant` (the `*`) is set from the seed-level interval only.
 */
import type { DiffRow, DiffSide } from "../pipeline/diff.ts";
import { diffSides, groupsOf, memberMetrics } from "../pipeline/diff.ts";
import type { RunRecord } from "../pipeline/records.ts";
import { isAbsolute, toFileUrl } from "../pipeline/paths.ts";
import type { InputHandle, PairedQueries, Stage } from "../pipeline/stage.ts";
import type { Store } from "../pipeline/store.ts";
import { builtinCatalog } from "../stages/registry.ts";
import {
  excludesZero,
  hierarchicalBootstrap,
  hullInterval,
  queryBootstrap,
  tInterval,
} from "../stages/lib/stats/intervals.ts";

/** The stage definition behind a recorded kind: a built-in, or a plugin stage's module path. */
async function definition(kind: string): Promise<Stage<unknown> | undefined> {
  const url = builtinCatalog()[kind] ??
    (isAbsolute(kind) && /\.(ts|js|mts|mjs)$/.test(kind) ? toFileUrl(kind) : undefined);
  if (!url) return undefined;
  try {
    return (await import(url.href)).default as Stage<unknown>;
  } catch {
    return undefined; // a plugin moved or deleted since the run: no per-query intervals
  }
}

async function handle(store: Store, key: string | undefined): Promise<InputHandle | undefined> {
  if (!key) return undefined;
  const m = await store.readManifest(key);
  return m &&
    { dir: store.layout.outDir(key), key, digest: m.digest, files: m.files, metrics: m.metrics };
}

/** Sets `seedCi`, `queryCi` and `significant` on the metric rows of `rows`. */
export async function addIntervals(
  store: Store,
  sa: DiffSide,
  sb: DiffSide,
  rows: DiffRow[],
): Promise<void> {
  const ga = groupsOf(sa), gb = groupsOf(sb);
  for (const [name, x] of ga) {
    const y = gb.get(name);
    if (!y) continue;
    const pairs = x.members.flatMap((m) => {
      const other = y.members.find((n) => n.seed === m.seed);
      return other ? [{ seed: m.seed, a: m.record, b: other.record }] : [];
    });
    if (!pairs.length) continue;
    const seeded = pairs.every((p) => p.seed !== undefined);
    const rowOf = (metric: string) =>
      rows.find((r) => r.section === "metrics" && r.name === `${name}.${metric}`);

    // Seed level: t on the per-seed paired deltas, for every metric both sides of a pair have.
    const ma = pairs.map((p) => memberMetrics(p.a)), mb = pairs.map((p) => memberMetrics(p.b));
    const tOf = new Map<string, ReturnType<typeof tInterval>>();
    if (seeded && pairs.length >= 2) {
      for (const metric of ma[0].keys()) {
        const deltas = pairs.map((_, i) => mb[i].get(metric)! - ma[i].get(metric)!);
        if (deltas.some((d) => !Number.isFinite(d))) continue;
        const row = rowOf(metric);
        if (!row) continue;
        const t = tInterval(deltas);
        tOf.set(metric, t);
        row.seedCi = { lo: t.lo, hi: t.hi, method: "t", n: t.n };
        row.significant = excludesZero(t);
      }
    }

    // Per-query results from the stage's compare hook.
    const def = await definition(x.kind);
    if (!def?.compare) continue;
    const handles: { a: InputHandle; b: InputHandle }[] = [];
    for (const p of pairs) {
      const [ha, hb] = [await handle(store, p.a.key), await handle(store, p.b.key)];
      if (ha && hb) handles.push({ a: ha, b: hb });
    }
    if (!handles.length) continue;
    let perQuery: Record<string, PairedQueries>;
    try {
      perQuery = await def.compare(handles);
    } catch {
      continue; // unreadable outputs: no per-query intervals rather than a failed diff
    }
    for (const [metric, pq] of Object.entries(perQuery)) {
      const row = rowOf(metric);
      if (!row || !pq.pairs.length) continue;
      const q = queryBootstrap(pq.pairs, pq.shared);
      row.queryCi = { lo: q.lo, hi: q.hi, method: "bootstrap", n: pq.pairs.length };
      const t = tOf.get(metric);
      // The hierarchical bootstrap only when it rests on the same seed pairs as the t-interval.
      if (t && pq.pairs.length === t.n && handles.length === pairs.length) {
        const h = hierarchicalBootstrap(pq.pairs, pq.shared);
        const hull = hullInterval(t, h);
        row.seedCi = {
          lo: hull.lo,
          hi: hull.hi,
          method: "t+bootstrap",
          n: t.n,
          t: [t.lo, t.hi],
          bootstrap: [h.lo, h.hi],
        };
        row.significant = excludesZero(hull);
      }
    }
  }
}

/**
 * The metric rows of `diff RUN --by AXIS=A,B` that `keep` accepts (all rows, unchanged ones
 * too), with their intervals: what the report's answer block and the dashboard's comparison show.
 */
export async function metricsByAxis(
  store: Store,
  record: RunRecord,
  axis: string,
  a: string,
  b: string,
  keep: (r: DiffRow) => boolean,
): Promise<DiffRow[]> {
  const sa = { record, select: { axis, value: a } };
  const sb = { record, select: { axis, value: b } };
  const rows = diffSides(sa, sb, true).filter((r) => r.section === "metrics" && keep(r));
  await addIntervals(store, sa, sb, rows);
  return rows;
}
