/** Grouping instances, aggregating metrics across seeds, recognising R@K metric names. */
import { fmtNum } from "../pipeline/diff.ts";
import type { Instance } from "./load.ts";

export { fmtNum };

export interface Summary {
  mean: number;
  /** Sample standard deviation (n - 1); NaN when n < 2. */
  sd: number;
  n: number;
}

export function summarize(xs: number[]): Summary {
  const n = xs.length;
  if (n === 0) return { mean: NaN, sd: NaN, n: 0 };
  const mean = xs.reduce((s, x) => s + x, 0) / n;
  let sd = n < 2 ? NaN : Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1));
  // Equal values can leave rounding noise (0.4 +- 7e-17): call that 0.
  if (sd <= 1e-12 * Math.max(1, Math.abs(mean))) sd = 0;
  return { mean, sd, n };
}

/** Scalar metrics of an instance (array metrics such as loss_curve are plotted, not tabled). */
export function scalarMetrics(inst: Instance): Map<string, number> {
  const m = new Map<string, number>();
  for (const [k, v] of Object.entries(inst.stage.metrics ?? {})) {
    if (typeof v === "number") m.set(k, v);
  }
  return m;
}

/** Instances grouped by base stage, in record order. */
export function byBase(instances: Instance[]): Map<string, Instance[]> {
  const out = new Map<string, Instance[]>();
  for (const i of instances) {
    const b = i.stage.base ?? i.name;
    if (!out.has(b)) out.set(b, []);
    out.get(b)!.push(i);
  }
  return out;
}

export function hasSeedLabel(instances: Instance[]): boolean {
  return instances.some((i) => i.stage.labels && "seed" in i.stage.labels);
}

export interface SeedGroup {
  run: string;
  group: string;
  similarity?: string;
  members: Instance[];
  metrics: Map<string, Summary>;
}

/** Instances of one base stage grouped by (run, labels without seed); metrics summarised. */
export function seedGroups(instances: Instance[]): SeedGroup[] {
  const groups = new Map<string, SeedGroup>();
  for (const i of instances) {
    const k = `${i.run}\u0000${i.group}`;
    if (!groups.has(k)) {
      groups.set(k, {
        run: i.run,
        group: i.group,
        similarity: i.similarity,
        members: [],
        metrics: new Map(),
      });
    }
    groups.get(k)!.members.push(i);
  }
  for (const g of groups.values()) {
    const names = metricNames(g.members);
    for (const name of names) {
      const xs = g.members.map((i) => scalarMetrics(i).get(name)).filter((v): v is number =>
        v !== undefined && Number.isFinite(v)
      );
      if (xs.length) g.metrics.set(name, summarize(xs));
    }
  }
  return [...groups.values()];
}

/** Union of scalar metric names, in first-seen order. */
export function metricNames(instances: Instance[]): string[] {
  const s = new Set<string>();
  for (const i of instances) for (const k of scalarMetrics(i).keys()) s.add(k);
  return [...s];
}

export interface RecallMetric {
  /** What the K values are grouped under: protocol prefix and direction, e.g. "5k i2t". */
  panel: string;
  k: number;
}

const DIRECTIONS: Record<string, string> = {
  i2t: "i2t",
  t2i: "t2i",
  image_to_text: "i2t",
  text_to_image: "t2i",
  img2txt: "i2t",
  txt2img: "t2i",
  imagetotext: "i2t",
  texttoimage: "t2i",
};

/**
 * Recognises recall-at-K metric names: `i2t_R@1`, `5k_t2i_R@10`, `R@5`, `recall@5`,
 * `text_to_image.recall@1`, `hit@10` ... (case-insensitive). Returns undefined otherwise.
 */
export function parseRecallMetric(name: string): RecallMetric | undefined {
  const m = /^(.*?)[_.\-/ ]?(?:r|recall|hit|hits)@(\d+)$/i.exec(name);
  if (!m) return undefined;
  const k = Number(m[2]);
  if (!Number.isInteger(k) || k < 1) return undefined;
  let rest = m[1];
  let dir = "";
  const lower = rest.toLowerCase();
  for (const [tag, d] of Object.entries(DIRECTIONS)) {
    if (
      lower === tag || lower.endsWith(`_${tag}`) || lower.endsWith(`.${tag}`) ||
      lower.endsWith(`-${tag}`) || lower.endsWith(`/${tag}`)
    ) {
      dir = d;
      rest = rest.slice(0, rest.length - tag.length);
      break;
    }
  }
  const prefix = rest.replace(/[_.\-/ ]+$/, "").replace(/^[_.\-/ ]+/, "");
  const panel = [prefix, dir].filter(Boolean).join(" ") || "recall";
  return { panel, k };
}

export function fmtSummary(s: Summary | undefined): string {
  if (!s || s.n === 0) return "–";
  if (s.n < 2) return `${fmtNum(s.mean)} (1)`;
  return `${fmtNum(s.mean)} ± ${fmtNum(s.sd)} (${s.n})`;
}
