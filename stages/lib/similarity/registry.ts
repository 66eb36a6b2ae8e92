/**
 * The similarities an experiment can name: built-ins, presets (a built-in with some params
 * fixed, so that a control has one name for sweeps and `diff --by similarity`) and plugins (a
 * module given by path). Light: zod and the similarity modules, which import no TF.js.
 *
 * Adding a built-in similarity is one module in this folder plus its entry in BUILTIN and its
 * params in the `Shape` type below (which types pretrain's params).
 */
import { createHash } from "node:crypto";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { didYouMean } from "../../../pipeline/stage.ts";
import { clip, ClipParams } from "./clip.ts";
import { kme, KmeParams } from "./kme.ts";
import { wpse, WpseParams } from "./wpse.ts";
import type { ScalarValues, Similarity, SimilarityRecord } from "./similarity.ts";

// deno-lint-ignore no-explicit-any
type AnySimilarity = Similarity<any>;

const BUILTIN_TABLE = { clip, kme, wpse };

/** The name of a built-in similarity (a preset or plugin name is a plain string). */
export type BuiltinSimilarityName = keyof typeof BUILTIN_TABLE;

export const BUILTIN: Record<string, AnySimilarity> = BUILTIN_TABLE;

export interface Preset {
  similarity: string;
  params: Record<string, unknown>;
  summary: string;
}

const PRESET_TABLE = {
  clip_weighted: {
    similarity: "clip",
    params: { pool: "weighted" },
    summary: "clip with pool: weighted (KME's learned token weights, then cosine): a control",
  },
  kme_one_point: {
    similarity: "kme",
    params: { one_point: true },
    summary: "kme with one_point: true (Proposition 2: CLIP up to the scale): a control",
  },
} as const satisfies Record<string, Preset>;

export const PRESETS: Record<string, Preset> = PRESET_TABLE;

export const SIMILARITY_NAMES = [...Object.keys(BUILTIN), ...Object.keys(PRESETS)];

/** Whether a `similarity:` value names a module by path (as stage kinds may). */
export function isModulePath(name: string): boolean {
  return /^(\.\.?\/|\/)|\.(ts|js|mts|mjs)$/.test(name);
}

/** The built-in similarity behind a name or preset, with the preset's fixed params. */
export function builtinOf(
  name: string,
): { sim: AnySimilarity; fixed: Record<string, unknown> } | undefined {
  if (BUILTIN[name]) return { sim: BUILTIN[name], fixed: {} };
  const preset = PRESETS[name];
  return preset ? { sim: BUILTIN[preset.similarity], fixed: preset.params } : undefined;
}

const governed = new Set(Object.values(PRESETS).flatMap((p) => Object.keys(p.params)));

/**
 * The built-ins' params for pretrain's schema. A name used by two similarities must be one
 * definition (params.ts). Params that a preset fixes lose their default here (the preset or the
 * similarity fills it in `resolveBuiltinParams`), so that setting one against its preset is
 * seen.
 */
export function builtinParamsShape(): BuiltinParamsShape {
  const seen = new Map<string, z.ZodType>();
  for (const sim of Object.values(BUILTIN)) {
    for (const [k, t] of Object.entries(sim.params.shape) as [string, z.ZodType][]) {
      const prev = seen.get(k);
      if (prev !== undefined && prev !== t) {
        throw new Error(`similarity param '${k}' has two definitions; share one (params.ts)`);
      }
      seen.set(k, t);
    }
  }
  const out: Record<string, z.ZodType> = {};
  for (const [k, t] of seen) {
    out[k] = governed.has(k) && t instanceof z.ZodDefault
      ? z.optional(t.unwrap() as z.ZodType).describe(t.description ?? "")
      : t;
  }
  return out as unknown as BuiltinParamsShape;
}

type Shape = typeof ClipParams.shape & typeof KmeParams.shape & typeof WpseParams.shape;
/** The params some preset fixes. */
type Governed = { [K in keyof typeof PRESET_TABLE]: keyof (typeof PRESET_TABLE)[K]["params"] }[
  keyof typeof PRESET_TABLE
];
/** builtinParamsShape's type, for pretrain's typed params (one line per built-in in Shape). */
export type BuiltinParamsShape = {
  [K in keyof Shape]: K extends Governed ? z.ZodOptional<z.ZodType<z.output<Shape[K]>>>
    : Shape[K];
};

/** The names of every built-in's params (pretrain's top-level similarity params). */
export const BUILTIN_PARAM_NAMES: readonly string[] = [
  ...new Set(Object.values(BUILTIN).flatMap((s) => Object.keys(s.params.shape))),
];

export interface ParamIssue {
  path: (string | number)[];
  message: string;
}

/**
 * A built-in's own params out of pretrain's (preset applied, defaults filled), or the issues:
 * a param set against the preset, or the similarity's own checks.
 */
export function resolveBuiltinParams(
  name: string,
  all: Record<string, unknown>,
): { params?: Record<string, unknown>; issues: ParamIssue[] } {
  const b = builtinOf(name);
  if (!b) return { issues: [{ path: ["similarity"], message: `unknown similarity '${name}'` }] };
  const issues: ParamIssue[] = [];
  const own: Record<string, unknown> = {};
  for (const k of Object.keys(b.sim.params.shape)) {
    if (k in b.fixed) {
      if (all[k] !== undefined && all[k] !== b.fixed[k]) {
        issues.push({
          path: [k],
          message: `similarity '${name}' fixes ${k}: ${JSON.stringify(b.fixed[k])}; use ` +
            `'${PRESETS[name].similarity}' to set it`,
        });
      }
      own[k] = b.fixed[k];
    } else if (all[k] !== undefined) own[k] = all[k];
  }
  const parsed = b.sim.params.safeParse(own);
  if (!parsed.success) {
    for (const i of parsed.error.issues) {
      issues.push({ path: i.path as string[], message: i.message });
    }
    return { issues };
  }
  const params = parsed.data as Record<string, unknown>;
  for (const [k, message] of b.sim.check?.(params) ?? []) issues.push({ path: [k], message });
  return issues.length ? { issues } : { params, issues };
}

/** The record of a built-in or preset with these own params (defaults filled); for tests and
 * benchmarks that build models without a pretrain stage. */
export function builtinRecord(
  name: string,
  params: Record<string, unknown> = {},
): SimilarityRecord {
  const r = resolveBuiltinParams(name, params);
  if (!r.params) {
    throw new Error(`similarity '${name}': ${r.issues.map((i) => i.message).join("; ")}`);
  }
  return { name, params: r.params };
}

/** Imports a plugin similarity (default export) and checks its shape. */
export async function loadPlugin(path: string): Promise<AnySimilarity> {
  let mod: { default?: AnySimilarity };
  try {
    mod = await import(pathToFileURL(path).href); // fingerprint: module named by params
  } catch (e) {
    throw new Error(`similarity module ${path} failed to load: ${(e as Error).message}`);
  }
  const s = mod.default;
  const problems = s && typeof s === "object" ? shapeProblems(s) : ["no default export"];
  if (problems.length) {
    throw new Error(
      `similarity module ${path} must default-export a Similarity ` +
        `(stages/lib/similarity/similarity.ts): ${problems.join("; ")}`,
    );
  }
  return s!;
}

/** What a plugin's default export lacks, checked before any training so that it fails early. */
function shapeProblems(s: AnySimilarity): string[] {
  const out: string[] = [];
  const need = (o: object, keys: string[], type: "string" | "function", where = "") => {
    for (const k of keys) {
      const v = (o as Record<string, unknown>)[k];
      if (type === "string" ? typeof v !== "string" : typeof v !== "function") {
        out.push(`${where}${k} must be a ${type}`);
      }
    }
  };
  need(s, ["name", "summary", "probeDoc"], "string");
  need(s, ["head", "scalars", "values", "logits", "probeFeatures", "describe"], "function");
  if (!(s.params instanceof z.ZodObject)) out.push("params must be a zod object schema");
  const sc = s.scoring as unknown as Record<string, unknown> | undefined;
  if (sc?.kind === "pooled") {
    need(sc, ["embed", "scale", "poolPrompts"], "function", "scoring.");
    need(sc, ["promptPooling"], "string", "scoring.");
  } else if (sc?.kind === "kernel") need(sc, ["invSigma2", "finish"], "function", "scoring.");
  else out.push('scoring.kind must be "pooled" or "kernel"');
  return out;
}

/** sha256 of a plugin file, recorded with a model so that a changed plugin is not used. */
export function fileSha256(path: string): string {
  return createHash("sha256").update(Deno.readFileSync(path)).digest("hex");
}

/** A plugin's params (`similarity_params:`) checked by its schema, or the issues. */
export function resolvePluginParams(
  sim: AnySimilarity,
  given: Record<string, unknown>,
): { params?: Record<string, unknown>; issues: ParamIssue[] } {
  const parsed = sim.params.safeParse(given);
  if (!parsed.success) {
    const known = Object.keys(sim.params.shape);
    return {
      issues: parsed.error.issues.flatMap((i) =>
        // An unknown key is reported at that key, with its closest name and the full list.
        i.code === "unrecognized_keys"
          ? i.keys.map((k) => ({
            path: ["similarity_params", ...(i.path as string[]), k],
            message: `unknown param '${k}' of similarity ${sim.name}${didYouMean(k, known)}; ` +
              `its params: ${known.join(", ") || "(none)"}`,
          }))
          : [{ path: ["similarity_params", ...(i.path as string[])], message: i.message }]
      ),
    };
  }
  const params = parsed.data as Record<string, unknown>;
  const issues = (sim.check?.(params) ?? []).map(([k, message]) => ({
    path: ["similarity_params", k],
    message,
  }));
  return issues.length ? { issues } : { params, issues };
}

/** A loaded similarity with its params and learned values, ready to score. */
export interface LoadedSimilarity {
  sim: AnySimilarity;
  record: SimilarityRecord;
  params: Record<string, unknown>;
  values: ScalarValues;
}

/** The similarity a model or embeddings file recorded. */
export async function loadSimilarity(record: SimilarityRecord): Promise<LoadedSimilarity> {
  let sim: AnySimilarity;
  if (record.module) {
    const { path, sha256 } = record.module;
    let now: string;
    try {
      now = fileSha256(path);
    } catch (e) {
      throw new Error(`similarity module ${path} cannot be read (${(e as Error).message})`);
    }
    if (sha256 !== undefined && now !== sha256) {
      throw new Error(
        `similarity module ${path} changed since it was recorded (sha256 ${sha256.slice(0, 12)}, ` +
          `now ${now.slice(0, 12)}); run the experiment again so that the model is retrained`,
      );
    }
    sim = await loadPlugin(path);
  } else {
    const b = builtinOf(record.name);
    if (!b) throw new Error(`unknown similarity '${record.name}' (known: ${SIMILARITY_NAMES})`);
    sim = b.sim;
  }
  return { sim, record, params: record.params, values: record.values ?? {} };
}
