/**
 * Sweeps: a stage's `matrix:` expanded into instances (axes, dotted param paths, `seed`),
 * `matrix.exclude` entries that drop combinations, and the names and labels of instances.
 * resolve.ts fans these out along the inputs.
 */
import type { MergedExperiment } from "./experiment_file.ts";
import { didYouMean } from "./suggest.ts";

export type Labels = Record<string, string | number | boolean>;

/** `name[axis=value,...]`, or just `name` for a stage that is not swept. */
export function instanceName(name: string, labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  return parts.length ? `${name}[${parts.join(",")}]` : name;
}

/** Union of two label sets, or undefined when they disagree on a shared axis. */
export function mergeLabels(a: Labels, b: Labels): Labels | undefined {
  for (const [k, v] of Object.entries(b)) if (k in a && a[k] !== v) return undefined;
  return { ...a, ...b };
}

export interface MatrixPoint {
  labels: Labels;
  params: Record<string, unknown>;
  seed?: number;
}

/** One `matrix.exclude` entry: axis -> the value, or any of the values, it drops. */
export type ExcludeEntry = Record<string, (string | number | boolean)[]>;

/**
 * Separates `matrix.exclude` (as in GitHub Actions: a list of partial combinations to drop)
 * from the axes. An entry may name this stage's axes and those its inputs carry (e.g. the data
 * stage's), and a list value means any of its values, so a sweep can be trimmed in a few lines.
 */
export function splitExclude(
  exp: MergedExperiment,
  name: string,
  matrix: Record<string, unknown[]> | undefined,
): { axes: Record<string, unknown[]> | undefined; exclude: ExcludeEntry[] } {
  if (!matrix || !Object.hasOwn(matrix, "exclude")) return { axes: matrix, exclude: [] };
  const { exclude: raw, ...axes } = matrix;
  const at = ["stages", name, "matrix", "exclude"];
  const scalar = (v: unknown): v is string | number | boolean =>
    typeof v === "string" || typeof v === "number" || typeof v === "boolean";
  const exclude = raw.map((entry, i): ExcludeEntry => {
    if (!isPlain(entry) || Object.keys(entry).length === 0) {
      throw exp.error(
        [...at, i],
        "an exclude entry must be a mapping of matrix axes to values, e.g. { seed: 3, embed_dim: 4 }",
      );
    }
    return Object.fromEntries(
      Object.entries(entry).map(([axis, v]) => {
        const values = Array.isArray(v) ? v : [v];
        if (values.length === 0 || !values.every(scalar)) {
          throw exp.error(
            [...at, i, axis],
            "expected a value of the axis, or a non-empty list of them (numbers, strings, booleans)",
          );
        }
        return [axis, values];
      }),
    );
  });
  return { axes, exclude };
}

/** Whether an exclude entry matches an instance's labels (every axis it names). */
export function excludes(entry: ExcludeEntry, labels: Labels): boolean {
  return Object.entries(entry).every(([axis, values]) =>
    Object.hasOwn(labels, axis) && values.includes(labels[axis])
  );
}

/** An exclude entry that names no axis of the stage, or drops nothing, is a typo: say so. */
export function checkExclude(
  exp: MergedExperiment,
  name: string,
  exclude: ExcludeEntry[],
  excluded: number[],
  axesSeen: Set<string>,
) {
  exclude.forEach((entry, i) => {
    for (const axis of Object.keys(entry)) {
      if (!axesSeen.has(axis)) {
        throw exp.error(
          ["stages", name, "matrix", "exclude", i, axis],
          `'${axis}' is not a matrix axis of this stage or of its inputs${
            didYouMean(axis, [...axesSeen])
          }; its axes: ${[...axesSeen].join(", ") || "(none)"}`,
          { key: true },
        );
      }
    }
    if (excluded[i] === 0) {
      throw exp.error(
        ["stages", name, "matrix", "exclude", i],
        "this exclude entry matches no instance (check its values against the axes' values)",
      );
    }
  });
}

/** Cartesian product of a stage's `matrix:` axes (param paths, or `seed`). */
export function expandMatrix(
  exp: MergedExperiment,
  name: string,
  matrix: Record<string, unknown[]> | undefined,
  known: string[] | undefined,
): MatrixPoint[] {
  let points: MatrixPoint[] = [{ labels: {}, params: {} }];
  for (const [axis, values] of Object.entries(matrix ?? {})) {
    const top = axis.split(".")[0];
    if (axis !== "seed" && known && !known.includes(top)) {
      throw exp.error(
        ["stages", name, "matrix", axis],
        `matrix axis '${axis}' is not a param of this stage${didYouMean(top, [...known, "seed"])}`,
        { key: true },
      );
    }
    const next: MatrixPoint[] = [];
    for (const p of points) {
      values.forEach((v, i) => {
        if (v !== null && typeof v === "object") {
          throw exp.error(
            ["stages", name, "matrix", axis, i],
            `matrix values must be scalars (numbers, strings, booleans)`,
          );
        }
        const label = v as string | number | boolean;
        if (axis === "seed") {
          if (!Number.isInteger(v) || (v as number) < 0) {
            throw exp.error(["stages", name, "matrix", axis, i], "a seed must be an integer >= 0");
          }
          next.push({ labels: { ...p.labels, seed: label }, params: p.params, seed: v as number });
        } else {
          next.push({
            labels: { ...p.labels, [axis]: label },
            params: setPath(p.params, axis.split("."), v),
            seed: p.seed,
          });
        }
      });
    }
    points = next;
  }
  return points;
}

function setPath(o: Record<string, unknown>, path: string[], v: unknown): Record<string, unknown> {
  const [head, ...rest] = path;
  if (!rest.length) return { ...o, [head]: v };
  const inner = isPlain(o[head]) ? o[head] as Record<string, unknown> : {};
  return { ...o, [head]: setPath(inner, rest, v) };
}

export function isPlain(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
