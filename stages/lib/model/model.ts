/**
 * The two-tower model: a small ViT for images and a transformer over word tokens for text.
 * Each tower outputs a weighted point set (see similarity.ts); the head decides how tokens
 * become points:
 * - clip: masked mean of the tokens -> linear projection -> L2 normalise (one point, weight 0);
 * - kme / wpse with points "tokens": every (non-padding) token -> projection -> L2 normalise,
 *   weight logit = linear(token); padding gets -Infinity;
 * - kme / wpse with points "queries": K learned queries attend over the tokens (one multi-head
 *   cross-attention, as in an attentional pooler) -> LN -> projection -> L2 normalise,
 *   weight logit = linear(pooled).
 *
 * All activations inside the towers are kept as 2D [B*T, width] so matmuls are plain 2D.
 */
import * as tf from "@tensorflow/tfjs-core";
import { dense, gelu, layerNorm as fusedLayerNorm } from "./ops.ts";
import { ParamStore } from "./params.ts";
import {
  infoNce,
  type PointSet,
  type SimilarityKind,
  similarityLogits,
  type SimilarityParams,
  tidyPointSet,
} from "./similarity.ts";

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
  similarity: SimilarityKind;
  /** Dimension d of the (unit) points. */
  embedDim: number;
  image: ImageTowerConfig;
  text: TextTowerConfig;
  /** kme / wpse: token points or K learned query points. */
  points: "tokens" | "queries";
  numQueries: number;
  /** clip / wpse: t is initialised to log(1 / initTemperature). */
  initTemperature: number;
  maxScale: number;
  /** kme / wpse: sigma^2 initial value and clamp. */
  sigma2Init: number;
  sigma2Min: number;
  sigma2Max: number;
  /** Whether sigma^2 is learned (else fixed at sigma2Init). */
  learnSigma2: boolean;
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

function declareHead(p: ParamStore, pre: string, c: ModelConfig, width: number) {
  const projStd = 1 / Math.sqrt(width);
  if (c.similarity === "clip") {
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
  // Weight logits start at exactly 0: uniform weights.
  p.declare(`${pre}.wt.w`, [width, 1], { kind: "const", value: 0 }, true);
  p.declare(`${pre}.wt.b`, [1], { kind: "const", value: 0 }, false);
}

export function declareParams(c: ModelConfig): ParamStore {
  validateConfig(c);
  const p = new ParamStore();
  const im = c.image;
  const pdim = im.patch * im.patch * im.channels;
  declareLinear(p, "img.patch", pdim, im.width, 1 / Math.sqrt(pdim));
  p.declare("img.pos", [numPatches(im), im.width], { kind: "normal", std: 0.02 }, false);
  declareTower(p, "img", im);
  declareHead(p, "img", c, im.width);

  const tx = c.text;
  p.declare("txt.tok", [tx.vocabSize, tx.width], { kind: "normal", std: 0.02 }, true);
  p.declare("txt.pos", [tx.maxLen, tx.width], { kind: "normal", std: 0.01 }, false);
  declareTower(p, "txt", tx);
  declareHead(p, "txt", c, tx.width);

  if (c.similarity === "clip" || c.similarity === "wpse") {
    p.declare("logit_scale", [], { kind: "const", value: Math.log(1 / c.initTemperature) }, false);
  }
  if (c.similarity === "kme" || c.similarity === "wpse") {
    p.declare("log_sigma2", [], { kind: "const", value: Math.log(c.sigma2Init) }, false);
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
  bias?: tf.Tensor,
): tf.Tensor2D {
  const w = x.shape[1];
  const h = layerNorm(p, `${pre}.ln1`, x);
  const qkv = linear(p, `${pre}.attn.qkv`, h);
  const [q, k, v] = tf.split(qkv, [w, w, w], 1).map((z) => splitHeads(z, b, t, heads));
  const a = mergeHeads(attend(q, k, v, bias));
  x = tf.add(x, linear(p, `${pre}.attn.out`, a));
  const h2 = layerNorm(p, `${pre}.ln2`, x);
  const m = linear(p, `${pre}.mlp.fc2`, gelu(linear(p, `${pre}.mlp.fc1`, h2)) as tf.Tensor2D);
  return tf.add(x, m);
}

function tower(
  p: ParamStore,
  pre: string,
  cfg: TowerConfig,
  x: tf.Tensor2D,
  b: number,
  t: number,
  bias?: tf.Tensor,
): tf.Tensor2D {
  for (let i = 0; i < cfg.depth; i++) x = block(p, `${pre}.blk${i}`, x, b, t, cfg.heads, bias);
  return layerNorm(p, `${pre}.lnf`, x);
}

function l2normalize(x: tf.Tensor, eps = 1e-12): tf.Tensor {
  return tf.mul(x, tf.rsqrt(tf.maximum(tf.sum(tf.square(x), -1, true), eps)));
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

export class ClipModel {
  readonly config: ModelConfig;
  readonly params: ParamStore;

  private constructor(config: ModelConfig, params: ParamStore) {
    this.config = config;
    this.params = params;
  }

  /** A freshly initialised model (deterministic in `seed`, identical on every backend). */
  static create(config: ModelConfig, seed: number): ClipModel {
    const p = declareParams(config);
    p.initialise(seed);
    return new ClipModel(config, p);
  }

  /** A model with the given parameter values (e.g. read from a saved model). */
  static fromValues(config: ModelConfig, values: Map<string, Float32Array>): ClipModel {
    const p = declareParams(config);
    p.initialiseFrom(values);
    return new ClipModel(config, p);
  }

  /** Point set of a batch of images [B, H, W, C] (pixel values 0..255). */
  encodeImages(images: tf.Tensor4D): PointSet {
    return tidyPointSet(() => {
      const c = this.config.image;
      const [b] = images.shape;
      const np = numPatches(c);
      const patches = patchify(images, c.patch);
      const x0 = linear(this.params, "img.patch", tf.reshape(patches, [b * np, -1]) as tf.Tensor2D);
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
      const x0 = tf.gather(this.params.get("txt.tok"), flat) as tf.Tensor2D;
      const pos = l === c.maxLen
        ? this.params.get("txt.pos")
        : tf.slice(this.params.get("txt.pos"), [0, 0], [l, c.width]);
      // [B, L], 1 for real tokens. Not cast(notEqual(ids, 0)): on tfjs-webgpu 4.22 a bool ->
      // float32 cast keeps the bool (uint8) storage and corrupts later ops. ids are >= 0.
      const mask = tf.cast(tf.minimum(ids, 1), "float32") as tf.Tensor2D;
      const bias = tf.reshape(tf.mul(tf.sub(1, mask), MASK_BIAS), [b, 1, 1, l]);
      const x = tower(this.params, "txt", c, addPositions(x0, pos, b, l), b, l, bias);
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
    if (c.similarity === "clip") {
      const x3 = tf.reshape(x, [b, t, width]);
      let pooled: tf.Tensor2D;
      if (mask === undefined) {
        pooled = tf.mean(x3, 1);
      } else {
        const m3 = tf.expandDims(mask, 2);
        pooled = tf.div(tf.sum(tf.mul(x3, m3), 1), tf.maximum(tf.sum(m3, 1), 1));
      }
      const u = l2normalize(linear(p, `${pre}.proj`, pooled, false));
      return {
        points: tf.reshape(u, [b, 1, c.embedDim]),
        weights: tf.zeros([b, 1]),
      };
    }
    if (c.points === "tokens") {
      const u = l2normalize(linear(p, `${pre}.proj`, x, false));
      let w = tf.reshape(linear(p, `${pre}.wt`, x), [b, t]) as tf.Tensor2D;
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
    const u = l2normalize(linear(p, `${pre}.proj`, h, false));
    const w = tf.reshape(linear(p, `${pre}.wt`, h), [b, k]) as tf.Tensor2D;
    return { points: tf.reshape(u, [b, k, c.embedDim]), weights: w };
  }

  /** The similarity's scalar parameters as tensors (the variables themselves). */
  similarityParams(): SimilarityParams {
    const c = this.config;
    const out: SimilarityParams = {
      maxScale: c.maxScale,
      sigma2Min: c.sigma2Min,
      sigma2Max: c.sigma2Max,
    };
    if (this.params.vars.has("logit_scale")) {
      out.logScale = this.params.get("logit_scale") as tf.Scalar;
    }
    if (this.params.vars.has("log_sigma2")) {
      out.logSigma2 = this.params.get("log_sigma2") as tf.Scalar;
    }
    return out;
  }

  /** Logits [B1, B2] between image and text point sets. */
  logits(images: PointSet, texts: PointSet): tf.Tensor2D {
    return similarityLogits(this.config.similarity, images, texts, this.similarityParams());
  }

  /** Symmetric InfoNCE loss of a batch of matching (image, caption) pairs. */
  loss(images: tf.Tensor4D, ids: tf.Tensor2D): tf.Scalar {
    return tf.tidy(() => infoNce(this.logits(this.encodeImages(images), this.encodeTexts(ids))));
  }

  /** Names of the variables that receive gradients. */
  trainableNames(): string[] {
    return this.params.specs
      .map((s) => s.name)
      .filter((n) => n !== "log_sigma2" || this.config.learnSigma2);
  }

  /**
   * Clamps the similarity scalars in place (after an optimizer step): t <= log(maxScale),
   * log sigma^2 in [log min, log max], as open_clip clamps its logit scale.
   */
  clampScalars(): void {
    const c = this.config;
    tf.tidy(() => {
      if (this.params.vars.has("logit_scale")) {
        const v = this.params.get("logit_scale");
        v.assign(tf.minimum(v, Math.log(c.maxScale)));
      }
      if (this.params.vars.has("log_sigma2")) {
        const v = this.params.get("log_sigma2");
        v.assign(tf.clipByValue(v, Math.log(c.sigma2Min), Math.log(c.sigma2Max)));
      }
    });
  }

  /** Current temperature-like scalars as numbers: {logit_scale, sigma2}. */
  async scalars(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    const c = this.config;
    if (this.params.vars.has("logit_scale")) {
      const t = (await this.params.get("logit_scale").data())[0];
      out.logit_scale = Math.min(Math.exp(t), c.maxScale);
    }
    if (this.params.vars.has("log_sigma2")) {
      const r = (await this.params.get("log_sigma2").data())[0];
      out.sigma2 = Math.min(Math.max(Math.exp(r), c.sigma2Min), c.sigma2Max);
    }
    return out;
  }

  dispose(): void {
    this.params.dispose();
  }
}
