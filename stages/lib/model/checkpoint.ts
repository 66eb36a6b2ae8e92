/**
 * Training checkpoints: parameters, Adam moments, step, data cursor and recent losses, written
 * atomically to a scratch folder and read back with every way they can be damaged turned into
 * CheckpointDamagedError (train.ts then starts over with a warning). Moved from train.ts
 * verbatim.
 */
import { join } from "node:path";
import type { ContrastiveModel } from "./model.ts";
import type { AdamW } from "./optim.ts";
import type { BatchSource } from "./data.ts";
import { type NamedTensor, readBundle, writeBundle } from "./tensorfile.ts";

export const CHECKPOINT_FORMAT = "kme-clip-checkpoint";
const CKPT_HEADER = "checkpoint.json";

export interface CheckpointHeader {
  step: number;
  /** Data cursor: the next batch is that of `step`; epoch/index for humans. */
  cursor: { step: number; epoch: number; index: number };
  /** RNG state: batches are counter-based on (seed, step). */
  rng: { kind: "counter"; seed: number; step: number };
  optimizer: { kind: "adamw"; step: number };
  recentLosses: number[];
  config: unknown;
}

/** Saves parameters, Adam moments, step and cursor to `dir` (atomic; old binaries removed). */
export async function saveCheckpoint(
  dir: string,
  model: ContrastiveModel,
  opt: AdamW,
  source: BatchSource,
  seed: number,
  recentLosses: number[],
  extraConfig: unknown = {},
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const tensors: NamedTensor[] = [];
  for (const spec of model.params.specs) {
    const v = model.params.get(spec.name);
    tensors.push({
      name: `param/${spec.name}`,
      shape: v.shape,
      values: (await v.data()) as Float32Array,
    });
  }
  for (const [name, { shape, m, v }] of await opt.readMoments()) {
    tensors.push({ name: `adam.m/${name}`, shape, values: m });
    tensors.push({ name: `adam.v/${name}`, shape, values: v });
  }
  const step = opt.step;
  const binFile = `checkpoint-${String(step).padStart(8, "0")}.bin`;
  const header: CheckpointHeader = {
    step,
    cursor: { step, ...source.cursor(step) },
    rng: { kind: "counter", seed, step },
    optimizer: { kind: "adamw", step },
    recentLosses,
    config: { model: model.config, ...extraConfig as Record<string, unknown> },
  };
  await writeBundle(dir, CKPT_HEADER, binFile, CHECKPOINT_FORMAT, tensors, { ...header });
  // The header now points at binFile; older binaries are garbage.
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && /^checkpoint-\d+\.bin$/.test(e.name) && e.name !== binFile) {
      await Deno.remove(join(dir, e.name)).catch(() => {});
    }
  }
}

/** A checkpoint that cannot be used: unreadable, inconsistent, or for another model. */
export class CheckpointDamagedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CheckpointDamagedError";
  }
}

/**
 * Loads a checkpoint into `model` and `opt`; returns its header, or undefined if none. Throws
 * CheckpointDamagedError (naming the file) before touching the model or the optimizer when any
 * part of it is unusable, so that the caller can start over from the untouched initial state.
 */
export async function loadCheckpoint(
  dir: string,
  model: ContrastiveModel,
  opt: AdamW,
): Promise<CheckpointHeader | undefined> {
  const headerPath = join(dir, CKPT_HEADER);
  try {
    await Deno.stat(headerPath);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  type Header = CheckpointHeader & import("./tensorfile.ts").BundleHeader;
  let header: Header;
  let tensors: Map<string, NamedTensor>;
  try {
    ({ header, tensors } = await readBundle<Header>(dir, CKPT_HEADER, CHECKPOINT_FORMAT));
  } catch (e) {
    const msg = (e as Error).message;
    throw new CheckpointDamagedError(msg.startsWith(dir) ? msg : `${headerPath}: ${msg}`);
  }
  const saved = (header.config as { model?: unknown } | undefined)?.model;
  if (JSON.stringify(saved) !== JSON.stringify(model.config)) {
    throw new CheckpointDamagedError(`${headerPath}: written for another model configuration`);
  }
  if (!(Number.isInteger(header.optimizer?.step) && header.optimizer.step >= 0)) {
    throw new CheckpointDamagedError(`${headerPath}: no optimizer step`);
  }
  const take = (name: string, size: number) => {
    const t = tensors.get(name);
    if (t === undefined) throw new CheckpointDamagedError(`${headerPath}: lacks tensor ${name}`);
    if (t.values.length !== size) {
      throw new CheckpointDamagedError(
        `${headerPath}: tensor ${name} has ${t.values.length} values, the model ${size}`,
      );
    }
    return t.values;
  };
  // Everything is checked before anything is set.
  const sizeOf = (name: string) => model.params.get(name).size;
  const params = model.params.specs.map((spec) =>
    [spec.name, take(`param/${spec.name}`, sizeOf(spec.name))] as const
  );
  const moments = new Map(
    model.trainableNames().map((n) => [n, {
      m: take(`adam.m/${n}`, sizeOf(n)),
      v: take(`adam.v/${n}`, sizeOf(n)),
    }]),
  );
  for (const [name, values] of params) model.params.set(name, values);
  opt.loadMoments((name) => moments.get(name)!);
  opt.step = header.optimizer.step;
  return header;
}
