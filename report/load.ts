/**
 * Reading what a report shows: a run record and, per stage instance, the files of its store
 * entry that the report knows (see docs/report.md for the contract):
 *
 *   out/train_log.jsonl  training curve (pretrain): one JSON object per logged step
 *   out/scatter.json     PMI scatter (pmi stages): {"pmi": number[], "score": number[]}
 *
 * Files are found by name, not by stage kind, so a new kind that writes them is shown too.
 * Anything missing or malformed becomes a warning in the report, never an error.
 */
import { join } from "node:path";
import type { RunRecord, StageRecord } from "../pipeline/records.ts";
import type { Store } from "../pipeline/store.ts";
import { pearson } from "../stages/lib/stats/correlation.ts";

export const TRAIN_LOG_FILE = "train_log.jsonl";
export const SCATTER_FILE = "scatter.json";
/** At most this many points per scatter (a seeded subsample; the total is kept). */
export const MAX_SCATTER_POINTS = 5000;
/** At most this many points per training curve (evenly strided; the last step is kept). */
export const MAX_CURVE_POINTS = 1000;

export interface TrainPoint {
  step: number;
  loss: number;
  lr?: number;
  logit_scale?: number;
  sigma2?: number;
  /** Held-out loss, on the steps that validated. */
  val_loss?: number;
}

export interface Scatter {
  pmi: number[];
  score: number[];
  /** Finite pairs in the file (before subsampling). */
  total: number;
  /** Pearson correlation over all finite pairs. */
  pearson: number;
}

export interface Instance {
  /** "" in a single-run report, "A" / "B" in a comparison. */
  run: string;
  /** The instance name in the run record, e.g. `train[similarity=kme,seed=1]`. */
  name: string;
  stage: StageRecord;
  /** labels.similarity, params.similarity, or that of the nearest upstream that has one. */
  similarity?: string;
  /** The labels without `seed`, formatted `a=1, b=x` ("" when none): instances that differ only
   * by seed share a group. */
  group: string;
  seed?: string | number | boolean;
  outDir?: string;
  trainLog?: TrainPoint[];
  scatter?: Scatter;
}

export interface LoadedRun {
  tag: string;
  record: RunRecord;
  instances: Instance[];
  warnings: string[];
}

export function groupOf(labels: Record<string, unknown>): string {
  return Object.entries(labels).filter(([k]) => k !== "seed").map(([k, v]) => `${k}=${v}`)
    .join(", ");
}

function similarityOf(rec: RunRecord, name: string, seen = new Set<string>()): string | undefined {
  const s = rec.stages[name];
  if (!s || seen.has(name)) return undefined;
  seen.add(name);
  const own = s.labels?.similarity ?? s.params?.similarity;
  if (typeof own === "string") return own;
  for (const up of Object.values(s.inputs ?? {})) {
    const v = similarityOf(rec, up, seen);
    if (v !== undefined) return v;
  }
  return undefined;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

export async function loadRun(store: Store, record: RunRecord, tag = ""): Promise<LoadedRun> {
  const warnings: string[] = [];
  const instances: Instance[] = [];
  for (const [name, stage] of Object.entries(record.stages)) {
    const inst: Instance = {
      run: tag,
      name,
      stage,
      similarity: similarityOf(record, name),
      group: groupOf(stage.labels ?? {}),
      seed: stage.labels?.seed,
    };
    if (stage.key) {
      if (await store.has(stage.key)) inst.outDir = store.layout.outDir(stage.key);
      else if (stage.outcome !== "failed" && stage.outcome !== "interrupted") {
        warnings.push(`${name}: entry ${stage.key.slice(0, 12)} is not in the store (gc'd?)`);
      }
    }
    if (inst.outDir) {
      const log = join(inst.outDir, TRAIN_LOG_FILE);
      if (await exists(log)) {
        inst.trainLog = await readTrainLog(log, (w) => warnings.push(`${name}: ${w}`));
      }
      const sc = join(inst.outDir, SCATTER_FILE);
      if (await exists(sc)) {
        inst.scatter = await readScatter(sc, (w) => warnings.push(`${name}: ${w}`));
      }
    }
    instances.push(inst);
  }
  return { tag, record, instances, warnings };
}

/** Parses a train_log.jsonl; torn or malformed lines are skipped (counted in a warning). */
export async function readTrainLog(
  path: string,
  warn: (w: string) => void,
): Promise<TrainPoint[] | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    warn(`${TRAIN_LOG_FILE}: ${(e as Error).message}`);
    return undefined;
  }
  const pts: TrainPoint[] = [];
  let bad = 0;
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(line);
    } catch {
      bad++;
      continue;
    }
    const step = o?.step, loss = o?.loss;
    if (typeof step !== "number" || typeof loss !== "number" || !Number.isFinite(loss)) {
      bad++;
      continue;
    }
    const p: TrainPoint = { step, loss };
    for (const k of ["lr", "logit_scale", "sigma2", "val_loss"] as const) {
      const v = o[k];
      if (typeof v === "number" && Number.isFinite(v)) p[k] = v;
    }
    pts.push(p);
  }
  if (bad) warn(`${TRAIN_LOG_FILE}: ${bad} malformed line(s) skipped`);
  if (pts.length === 0) {
    warn(`${TRAIN_LOG_FILE}: no usable lines`);
    return undefined;
  }
  pts.sort((a, b) => a.step - b.step);
  return stride(pts, MAX_CURVE_POINTS);
}

/** At most `max` evenly spaced elements, always including the first and the last. */
export function stride<T>(xs: T[], max: number): T[] {
  if (xs.length <= max) return xs;
  const out: T[] = [];
  for (let i = 0; i < max; i++) out.push(xs[Math.round(i * (xs.length - 1) / (max - 1))]);
  return out;
}

export async function readScatter(
  path: string,
  warn: (w: string) => void,
): Promise<Scatter | undefined> {
  let o: { pmi?: unknown; score?: unknown };
  try {
    o = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    warn(`${SCATTER_FILE}: ${(e as Error).message}`);
    return undefined;
  }
  if (!Array.isArray(o?.pmi) || !Array.isArray(o?.score)) {
    warn(`${SCATTER_FILE}: expected {"pmi": number[], "score": number[]}`);
    return undefined;
  }
  const [a, b] = [o.pmi as unknown[], o.score as unknown[]];
  if (a.length !== b.length) {
    warn(`${SCATTER_FILE}: pmi has ${a.length} values, score ${b.length}; using the first pairs`);
  }
  const pmi: number[] = [], score: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const [x, y] = [a[i], b[i]];
    if (
      typeof x === "number" && typeof y === "number" && Number.isFinite(x) && Number.isFinite(y)
    ) {
      pmi.push(x);
      score.push(y);
    }
  }
  if (pmi.length === 0) {
    warn(`${SCATTER_FILE}: no finite pairs`);
    return undefined;
  }
  const total = pmi.length;
  const r = pearson(pmi, score);
  const idx = subsampleIndices(total, MAX_SCATTER_POINTS);
  return { pmi: idx.map((i) => pmi[i]), score: idx.map((i) => score[i]), total, pearson: r };
}

/** `k` of `n` indices without replacement, sorted, from a fixed seed (reports are repeatable). */
export function subsampleIndices(n: number, k: number, seed = 0x5eed): number[] {
  if (n <= k) return Array.from({ length: n }, (_, i) => i);
  const idx = Int32Array.from({ length: n }, (_, i) => i);
  let s = seed >>> 0;
  const rand = () => { // mulberry32
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rand() * (n - i));
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return Array.from(idx.subarray(0, k)).sort((x, y) => x - y);
}
