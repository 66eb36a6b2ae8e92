/**
 * The two-tower model: a small ViT for images and a transformer over word tokens for text.
 * Each tower outputs a weighted point set (stages/lib/similarity/similarity.ts); the similarity
 * says how tokens become points (its `head`):
 * - "mean": masked mean of the tokens -> linear projection -> L2 normalise (one point, score 0);
 * - "sets" with points "tokens": every (non-padding) token -> projection -> L2 normalise,
 *   score = linear(token); padding gets -Infinity;
 * - "sets" with points "queries": K learned queries attend over the tokens (one multi-head
 *   cross-attention, as in an attentional pooler) -> LN -> projection -> L2 normalise,
 *   score = linear(pooled).
 * The similarity's learnable scalars (logit scale, bandwidth) are parameters of the model too.
 *
 * All activations inside the towers are kept as 2D [B*T, width] so matmuls are plain 2D.
 *
 * Over 500 lines on purpose: the whole model (config, parameters, both towers, the three
 * heads, the class that ties them) reads in one sitting, as nanoGPT's does; its pieces are not
 * used apart, so splitting them would scatter one concept.
 */
import * as tf from "@tensorflow/tfjs-core";
import { dense, gelu, layerNorm as fusedLayerNorm } from "./ops.ts";
import { infoNce } from "./loss.ts";
import { ParamStore } from "./params.ts";
import type {
  Draw,
  EncoderHead,
  PointSet,
  ScalarSpec,
  ScalarTensors,
  ScalarValues,
  Similarity,
  SimilarityRecord,
} from "../similarity/similarity.ts";
import { builtinOf } from "../similarity/registry.ts";
import { l2normalize } from "../similarity/tf_ops.ts";
import { type ImageInput, isPacked, unpackPatches } from "./batch_tensors.ts";
import {
  attentionFits,
  attentionFused,
  embeddingFused,
  fusedOps,
  l2normalizeFused,
  meanPoolFused,
  tokenMask,
} from "./gpu_ops.ts";

/** Rows scaled to unit L2 norm (one fused op on webgpu). */
function unit(x: tf.Tensor2D): tf.Tensor2D {
  return (fusedOps() ? l2normalizeFused(x) : l2normalize(tf, x)) as tf.Tensor2D;
}

function builtinSimilarity(r: SimilarityRecord): Similarity<unknown> {
  const b = r.module ? undefined : builtinOf(r.name);
  if (!b) throw new Error(`similarity '${r.name}' is not built in: pass its loaded module`);
  return b.sim;
}

/** tf.tidy for functions returning a point set (tfjs' typings want an index signature). */
export function tidyPointSet(fn: () => PointSet): PointSet {
  return tf.tidy(fn as unknown as () => tf.TensorContainer) as unknown as PointSet;
}

export interface TowerConfig {
  /** Transformer width. */
  width: number;
  depth: number;
  heads: number;
  /** Hidden size of the MLP. */
  mlp: number;
}

export interface ImageTowerConfig extends TowerConfig {
  height: number;
  widthPx: number;
  channels: number;
  patch: number;
}

export interface TextTowerConfig extends TowerConfig {
  maxLen: number;
  vocabSize: number;
}

export interface ModelConfig {
  /** The similarity (name, params; a plugin's module), without learned values. */
  similarity: SimilarityRecord;
  /** Dimension d of the (unit) points. */
  embedDim: number;
  image: ImageTowerConfig;
  text: TextTowerConfig;
  /** Heads of kind "sets": token points or K learned query points. */
  points: "tokens" | "queries";
  numQueries: number;
}

export function numPatches(c: ImageTowerConfig): number {
  return (c.height / c.patch) * (c.widthPx / c.patch);
}

export function validateConfig(c: ModelConfig): void {
  const err = (m: string) => {
    throw new Error(`model config: ${m}`);
  };
  const im = c.image;
  if (im.height % im.patch !== 0 || im.widthPx % im.patch !== 0) {
    err(`image ${im.height}x${im.widthPx} is not divisible by patch ${im.patch}`);
  }
  for (const [name, t] of [["image", im], ["text", c.text]] as const) {
    if (t.width % t.heads !== 0) err(`${name} width ${t.width} not divisible by heads ${t.heads}`);
  }
  if (c.text.vocabSize < 2) err("vocabulary needs at least PAD and OOV");
}

const NEG_INF = -Infinity;
const MASK_BIAS = -1e9;

/** Which decays: matrices of linear layers and the token embedding; not biases, norms,
 * positional embeddings, learned queries or the similarity scalars. */
function declareLinear(
  p: ParamStore,
  name: string,
  nIn: number,
  nOut: number,
  std: number,
  bias = true,
) {
  p.declare(`${name}.w`, [nIn, nOut], { kind: "normal", std }, true);
  if (bias) p.declare(`${name}.b`, [nOut], { kind: "const", value: 0 }, false);
}

function declareNorm(p: ParamStore, name: string, width: number) {
  p.declare(`${name}.g`, [width], { kind: "const", value: 1 }, false);
  p.declare(`${name}.b`, [width], { kind: "const", value: 0 }, false);
}

function declareTower(p: ParamStore, pre: string, t: TowerConfig) {
  const std = 0.02;
  const resStd = 0.02 / Math.sqrt(2 * t.depth); // GPT-2 scaling of residual projections
  for (let i = 0; i < t.depth; i++) {
    const b = `${pre}.blk${i}`;
    declareNorm(p, `${b}.ln1`, t.width);
    declareLinear(p, `${b}.attn.qkv`, t.width, 3 * t.width, std);
    declareLinear(p, `${b}.attn.out`, t.width, t.width, resStd);
    declareNorm(p, `${b}.ln2`, t.width);
    declareLinear(p, `${b}.mlp.fc1`, t.width, t.mlp, std);
    declareLinear(p, `${b}.mlp.fc2`, t.mlp, t.width, resStd);
  }
  declareNorm(p, `${pre}.lnf`, t.width);
}

function declareHead(
  p: ParamStore,
  pre: string,
  c: ModelConfig,
  head: EncoderHead,
  width: number,
) {
  const projStd = 1 / Math.sqrt(width);
  if (head.points === "mean") {
    declareLinear(p, `${pre}.proj`, width, c.embedDim, projStd, false);
    return;
  }
  if (c.points === "queries") {
    p.declare(`${pre}.pool.queries`, [c.numQueries, width], { kind: "normal", std: 0.02 }, false);
    declareNorm(p, `${pre}.pool.lnq`, width);
    declareLinear(p, `${pre}.pool.q`, width, width, 0.02);
    declareLinear(p, `${pre}.pool.kv`, width, 2 * width, 0.02);
    declareLinear(p, `${pre}.pool.out`, width, width, 0.02);
    declareNorm(p, `${pre}.pool.ln`, width);
  }
  declareLinear(p, `${pre}.proj`, width, c.embedDim, projStd, false);
  if (head.scoreInit === "normal") {
    // sony/wpse's weight_proj: no bias, N(0, 1/width).
    p.declare(`${pre}.wt.w`, [width, 1], { kind: "normal", std: projStd }, true);
  } else {
    // Scores start at exactly 0: uniform softmax weights.
    p.declare(`${pre}.wt.w`, [width, 1], { kind: "const", value: 0 }, true);
    p.declare(`${pre}.wt.b`, [1], { kind: "const", value: 0 }, false);
  }
}

export function declareParams(c: ModelConfig, sim: Similarity<unknown>): ParamStore {
  validateConfig(c);
  const head = sim.head(c.similarity.params);
  const p = new ParamStore();
  const im = c.image;
  const pdim = im.patch * im.patch * im.channels;
  declareLinear(p, "img.patch", pdim, im.width, 1 / Math.sqrt(pdim));
  p.declare("img.pos", [numPatches(im), im.width], { kind: "normal", std: 0.02 }, false);
  declareTower(p, "img", im);
  declareHead(p, "img", c, head, im.width);

  const tx = c.text;
  p.declare("txt.tok", [tx.vocabSize, tx.width], { kind: "normal", std: 0.02 }, true);
  p.declare("txt.pos", [tx.maxLen, tx.width], { kind: "normal", std: 0.01 }, false);
  declareTower(p, "txt", tx);
  declareHead(p, "txt", c, head, tx.width);

  for (const s of sim.scalars(c.similarity.params)) {
    p.declare(s.name, [], { kind: "const", value: s.init }, false);
  }
  return p;
}

// ---------------------------------------------------------------- building blocks

function linear(p: ParamStore, name: string, x: tf.Tensor2D, bias = true): tf.Tensor2D {
  const w = p.get(`${name}.w`) as tf.Tensor2D;
  return dense(x, w, bias ? p.get(`${name}.b`) as tf.Tensor1D : undefined);
}

/** LayerNorm (eps 1e-5) with a fused gradient (ops.ts). */
function layerNorm(p: ParamStore, name: string, x: tf.Tensor2D): tf.Tensor2D {
  return fusedLayerNorm(x, p.get(`${name}.g`) as tf.Tensor1D, p.get(`${name}.b`) as tf.Tensor1D);
}

/**
 * x [B*T, W] + pos [T, W] for every one of the B inputs, as a broadcast add on [B, T*W]
 * (not `tile`: tile's gradient is B slices and B adds).
 */
function addPositions(x: tf.Tensor2D, pos: tf.Tensor, b: number, t: number): tf.Tensor2D {
  const w = x.shape[1];
  const y = tf.add(tf.reshape(x, [b, t * w]), tf.reshape(pos, [t * w]));
  return tf.reshape(y, [b * t, w]);
}

/** [B*T, H*dh] -> [B, H, T, dh] */
function splitHeads(x: tf.Tensor, b: number, t: number, h: number): tf.Tensor4D {
  const dh = x.shape[x.rank - 1] / h;
  return tf.transpose(tf.reshape(x, [b, t, h, dh]), [0, 2, 1, 3]);
}

/** [B, H, T, dh] -> [B*T, H*dh] */
function mergeHeads(x: tf.Tensor4D): tf.Tensor2D {
  const [b, h, t, dh] = x.shape;
  return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [b * t, h * dh]);
}

/**
 * Multi-head attention of queries q [B, H, Tq, dh] over k, v [B, H, Tk, dh];
 * `bias` broadcasts to [B, H, Tq, Tk] (0 or MASK_BIAS for padded keys).
 */
function attend(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, bias?: tf.Tensor): tf.Tensor4D {
  const dh = q.shape[3];
  let s = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(dh));
  if (bias !== undefined) s = tf.add(s, bias);
  return tf.matMul(tf.softmax(s, -1), v) as tf.Tensor4D;
}

function block(
  p: ParamStore,
  pre: string,
  x: tf.Tensor2D,
  b: number,
  t: number,
  heads: number,
  mask?: KeyMask,
): tf.Tensor2D {
  const w = x.shape[1];
  const h = layerNorm(p, `${pre}.ln1`, x);
  const qkv = linear(p, `${pre}.attn.qkv`, h);
  let a: tf.Tensor2D;
  if (fusedOps() && attentionFits(t, w / heads)) {
    a = attentionFused(qkv, b, heads, mask?.mask);
  } else {
    const [q, k, v] = tf.split(qkv, [w, w, w], 1).map((z) => splitHeads(z, b, t, heads));
    a = mergeHeads(attend(q, k, v, mask?.bias()));
  }
  x = tf.add(x, linear(p, `${pre}.attn.out`, a));
  const h2 = layerNorm(p, `${pre}.ln2`, x);
  const m = linear(p, `${pre}.mlp.fc2`, gelu(linear(p, `${pre}.mlp.fc1`, h2)) as tf.Tensor2D);
  return tf.add(x, m);
}

/** Which keys are real: the mask [B, T] (1 real), and the additive bias the composite wants. */
interface KeyMask {
  mask: tf.Tensor2D;
  /** [B, 1, 1, T]: 0, or MASK_BIAS for padding (made once, when first asked for). */
  bias(): tf.Tensor;
}

function keyMask(mask: tf.Tensor2D): KeyMask {
  const [b, t] = mask.shape;
  let bias: tf.Tensor | undefined;
  return {
    mask,
    bias: () => bias ??= tf.reshape(tf.mul(tf.sub(1, mask), MASK_BIAS), [b, 1, 1, t]),
  };
}

function tower(
  p: ParamStore,
  pre: string,
  cfg: TowerConfig,
  x: tf.Tensor2D,
  b: number,
  t: number,
  mask?: KeyMask,
): tf.Tensor2D {
  for (let i = 0; i < cfg.depth; i++) x = block(p, `${pre}.blk${i}`, x, b, t, cfg.heads, mask);
  return layerNorm(p, `${pre}.lnf`, x);
}

/**
 * Images [B, H, W, C] (uint8 or float pixel values 0..255) -> patches [B, P, patch*patch*C],
 * scaled to [-1, 1]. Pure reshape/transpose (no conv, so no Conv2DBackpropFilter is needed).
 */
export function patchify(images: tf.Tensor4D, patch: number): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, h, w, c] = images.shape;
    const x = tf.sub(tf.mul(tf.cast(images, "float32"), 1 / 127.5), 1);
    const gh = h / patch;
    const gw = w / patch;
    const r = tf.reshape(x, [b, gh, patch, gw, patch, c]);
    const t = tf.transpose(r, [0, 1, 3, 2, 4, 5]);
    return tf.reshape(t, [b, gh * gw, patch * patch * c]);
  });
}

// ---------------------------------------------------------------- the model

export class ContrastiveModel {
  readonly config: ModelConfig;
  readonly params: ParamStore;
  /** The similarity module (config.similarity names it). */
  readonly sim: Similarity<unknown>;
  private readonly head_: EncoderHead;
  private readonly scalarSpecs: ScalarSpec[];

  private constructor(config: ModelConfig, params: ParamStore, sim: Similarity<unknown>) {
    this.config = config;
    this.params = params;
    this.sim = sim;
    this.head_ = sim.head(config.similarity.params);
    this.scalarSpecs = sim.scalars(config.similarity.params);
  }

  /**
   * A freshly initialised model (deterministic in `seed`, identical on every backend). `sim`:
   * the loaded similarity module; a built-in is found by name when omitted.
   */
  static create(config: ModelConfig, seed: number, sim?: Similarity<unknown>): ContrastiveModel {
    sim ??= builtinSimilarity(config.similarity);
    const p = declareParams(config, sim);
    p.initialise(seed);
    return new ContrastiveModel(config, p, sim);
  }

  /** A model with the given parameter values (e.g. read from a saved model). */
  static fromValues(
    config: ModelConfig,
    values: Map<string, Float32Array>,
    sim?: Similarity<unknown>,
  ): ContrastiveModel {
    sim ??= builtinSimilarity(config.similarity);
    const p = declareParams(config, sim);
    p.initialiseFrom(values);
    return new ContrastiveModel(config, p, sim);
  }

  /** Point sets of kind "sets" have this many points per image / per caption; "mean" has 1. */
  pointsPerInput(): { M: number; N: number } {
    if (this.head_.points === "mean") return { M: 1, N: 1 };
    const c = this.config;
    if (c.points === "queries") return { M: c.numQueries, N: c.numQueries };
    return { M: numPatches(c.image), N: c.text.maxLen };
  }

  /** Point set of a batch of images [B, H, W, C] (pixel values 0..255), or packed bytes. */
  encodeImages(images: ImageInput): PointSet {
    return tidyPointSet(() => {
      const c = this.config.image;
      const np = numPatches(c);
      let b: number;
      let patches: tf.Tensor2D;
      if (isPacked(images)) {
        b = images.words.shape[0];
        patches = unpackPatches(images, c);
      } else {
        b = images.shape[0];
        patches = tf.reshape(patchify(images, c.patch), [b * np, -1]);
      }
      const x0 = linear(this.params, "img.patch", patches);
      const x1 = addPositions(x0, this.params.get("img.pos"), b, np);
      const x = tower(this.params, "img", c, x1, b, np);
      const ps = this.head("img", x, b, np, undefined);
      return ps;
    });
  }

  /** Point set of a batch of token ids [B, L] (int32, PAD = 0). */
  encodeTexts(ids: tf.Tensor2D): PointSet {
    return tidyPointSet(() => {
      const c = this.config.text;
      const [b, l] = ids.shape;
      if (l > c.maxLen) throw new Error(`text length ${l} exceeds maxLen ${c.maxLen}`);
      const flat = tf.reshape(ids, [b * l]);
      const table = this.params.get("txt.tok") as tf.Tensor2D;
      const x0 = fusedOps()
        ? embeddingFused(table, flat as tf.Tensor1D)
        : tf.gather(table, flat) as tf.Tensor2D;
      const pos = l === c.maxLen
        ? this.params.get("txt.pos")
        : tf.slice(this.params.get("txt.pos"), [0, 0], [l, c.width]);
      // [B, L], 1 for real tokens. Not cast(notEqual(ids, 0)): on tfjs-webgpu 4.22 a bool ->
      // float32 cast keeps the bool (uint8) storage and corrupts later ops. ids are >= 0.
      const mask = fusedOps()
        ? tokenMask(ids)
        : tf.cast(tf.minimum(ids, 1), "float32") as tf.Tensor2D;
      const x = tower(this.params, "txt", c, addPositions(x0, pos, b, l), b, l, keyMask(mask));
      return this.head("txt", x, b, l, mask);
    });
  }

  /** Tokens x [B*T, width] -> point set; `mask` [B, T] marks real tokens (undefined: all). */
  private head(
    pre: string,
    x: tf.Tensor2D,
    b: number,
    t: number,
    mask: tf.Tensor2D | undefined,
  ): PointSet {
    const c = this.config;
    const p = this.params;
    const width = x.shape[1];
    if (this.head_.points === "mean") {
      const x3 = tf.reshape(x, [b, t, width]);
      let pooled: tf.Tensor2D;
      if (fusedOps()) {
        pooled = meanPoolFused(x, b, mask);
      } else if (mask === undefined) {
        pooled = tf.mean(x3, 1);
      } else {
        const m3 = tf.expandDims(mask, 2);
        pooled = tf.div(tf.sum(tf.mul(x3, m3), 1), tf.maximum(tf.sum(m3, 1), 1));
      }
      const u = unit(linear(p, `${pre}.proj`, pooled, false));
      return {
        points: tf.reshape(u, [b, 1, c.embedDim]),
        weights: tf.zeros([b, 1]),
      };
    }
    if (c.points === "tokens") {
      const u = unit(linear(p, `${pre}.proj`, x, false));
      let w = tf.reshape(this.scores(pre, x), [b, t]) as tf.Tensor2D;
      if (mask !== undefined) w = tf.where(tf.greater(mask, 0.5), w, tf.fill([b, t], NEG_INF));
      return { points: tf.reshape(u, [b, t, c.embedDim]), weights: w };
    }
    // Attentional pooling with K learned queries.
    const k = c.numQueries;
    const heads = pre === "img" ? c.image.heads : c.text.heads;
    const qIn = layerNorm(p, `${pre}.pool.lnq`, p.get(`${pre}.pool.queries`) as tf.Tensor2D);
    const q = splitHeads(tf.tile(linear(p, `${pre}.pool.q`, qIn), [b, 1]), b, k, heads);
    const kv = linear(p, `${pre}.pool.kv`, x);
    const [kk, vv] = tf.split(kv, [width, width], 1).map((z) => splitHeads(z, b, t, heads));
    const bias = mask === undefined
      ? undefined
      : tf.reshape(tf.mul(tf.sub(1, mask), MASK_BIAS), [b, 1, 1, t]);
    const pooled = linear(p, `${pre}.pool.out`, mergeHeads(attend(q, kk, vv, bias)));
    const h = layerNorm(p, `${pre}.pool.ln`, pooled); // [B*K, width]
    const u = unit(linear(p, `${pre}.proj`, h, false));
    const w = tf.reshape(this.scores(pre, h), [b, k]) as tf.Tensor2D;
    return { points: tf.reshape(u, [b, k, c.embedDim]), weights: w };
  }

  /** The points' raw scores: a linear map of their features (no bias for sony/wpse's head). */
  private scores(pre: string, x: tf.Tensor2D): tf.Tensor2D {
    return linear(this.params, `${pre}.wt`, x, this.params.vars.has(`${pre}.wt.b`));
  }

  /** The similarity's scalars as tensors (the variables themselves). */
  scalarTensors(): ScalarTensors {
    const out: ScalarTensors = {};
    for (const s of this.scalarSpecs) out[s.name] = this.params.get(s.name) as tf.Scalar;
    return out;
  }

  /** Logits [B1, B2] between image and text point sets (`draw`: the similarity's randomness). */
  logits(images: PointSet, texts: PointSet, draw: Draw = { kind: "eval" }): tf.Tensor2D {
    const c = this.config.similarity;
    return this.sim.logits(tf, images, texts, this.scalarTensors(), c.params, draw);
  }

  /** Symmetric InfoNCE loss of a batch of matching (image, caption) pairs. */
  loss(images: ImageInput, ids: tf.Tensor2D, draw: Draw = { kind: "eval" }): tf.Scalar {
    return tf.tidy(() =>
      infoNce(this.logits(this.encodeImages(images), this.encodeTexts(ids), draw))
    );
  }

  /** Names of the variables that receive gradients. */
  trainableNames(): string[] {
    const fixed = new Set(this.scalarSpecs.filter((s) => !s.learn).map((s) => s.name));
    return this.params.specs.map((s) => s.name).filter((n) => !fixed.has(n));
  }

  /**
   * Clamps the similarity scalars in place after an optimizer step (as open_clip clamps its
   * logit scale), to the [min, max] of their ScalarSpec.
   */
  clampScalars(): void {
    tf.tidy(() => {
      for (const s of this.scalarSpecs) {
        const v = this.params.get(s.name);
        // clipByValue takes its bounds as attributes (minimum(v, max) made a host scalar, an
        // upload per step on webgpu); with min = -Infinity it equals minimum, bit for bit.
        v.assign(tf.clipByValue(v, s.min, s.max));
      }
    });
  }

  /** Effective values of the similarity's scalars, e.g. {logit_scale} or {sigma2}. */
  async scalars(): Promise<ScalarValues> {
    const raw: Record<string, number> = {};
    for (const s of this.scalarSpecs) raw[s.name] = (await this.params.get(s.name).data())[0];
    return this.sim.values(raw, this.config.similarity.params);
  }

  dispose(): void {
    this.params.dispose();
  }
}
