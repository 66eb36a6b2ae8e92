/** What every figure of the report shares: colours of similarities, ids, the base config. */
/** Anything with a similarity: an instance of a run, a curve series. */
type HasSimilarity = { similarity?: string };

export const PALETTE = [
  "#4c78a8",
  "#f58518",
  "#54a24b",
  "#e45756",
  "#72b7b2",
  "#b279a2",
  "#eeca3b",
  "#9d755d",
  "#ff9da6",
  "#bab0ac",
];
/** The built-in similarities and presets (stages/lib/similarity/registry.ts), in a fixed order. */
export const KNOWN_SIMILARITIES = ["clip", "kme", "wpse", "clip_weighted", "kme_one_point"];
export const NONE = "n/a";

/**
 * Colours of similarities: known ones first, then the others present in any run, sorted, so a
 * similarity keeps its colour in every figure of a report (and clip / kme across reports).
 */
export function similarityColours(instances: HasSimilarity[]): Map<string, string> {
  const present = new Set(instances.map((i) => i.similarity).filter((s) => s !== undefined));
  const domain = [
    ...KNOWN_SIMILARITIES,
    ...[...present].filter((s) => !KNOWN_SIMILARITIES.includes(s!)).sort(),
    NONE,
  ] as string[];
  return new Map(domain.map((d, i) => [d, d === NONE ? "#888888" : PALETTE[i % PALETTE.length]]));
}

/** The colour scale of a figure: only the similarities of the instances it shows. */
export function similarityScale(
  colours: Map<string, string>,
  shown: HasSimilarity[],
): { domain: string[]; range: string[] } {
  const present = new Set(shown.map((i) => i.similarity ?? NONE));
  const domain = [...colours.keys()].filter((d) => present.has(d));
  return { domain, range: domain.map((d) => colours.get(d)!) };
}

export function safeId(s: string): string {
  return s.replace(/[^A-Za-z0-9]+/g, "-").replace(/^-+|-+$/g, "").toLowerCase() || "x";
}

export const BASE_CONFIG = {
  font: "sans-serif",
  view: { stroke: "#ddd" },
  axis: { labelFontSize: 11, titleFontSize: 12 },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 260 },
  title: { fontSize: 13, anchor: "start" as const },
};
