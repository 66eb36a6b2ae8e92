/**
 * Our own TF.js kernels: fused ops that replace chains of small kernels on webgpu (and the
 * image unpacking, which has a cpu reference too). The model asks whether the active backend
 * has them (stages/lib/model/gpu_ops.ts) and uses the composites of stock ops elsewhere, so
 * wasm and cpu results do not change when a kernel is added here.
 */
import type { Tf } from "../backend.ts";
import type { KernelConfig } from "@tensorflow/tfjs-core";
import { unpackPatchesKernels } from "./unpack_patches.ts";
import { colSumKernels } from "./col_sum.ts";
import { layerNormKernels } from "./layer_norm.ts";
import { geluKernels } from "./gelu.ts";
import { l2NormalizeKernels } from "./l2_normalize.ts";
import { meanPoolKernels } from "./mean_pool.ts";
import { infoNceKernels } from "./info_nce.ts";
import { attentionKernels } from "./attention.ts";
import { tokenMaskKernels } from "./token_mask.ts";
import { blockLseKernels } from "./block_lse.ts";
import { embeddingGradKernels } from "./embedding_grad.ts";

const ALL: KernelConfig[] = [
  ...unpackPatchesKernels,
  ...colSumKernels,
  ...layerNormKernels,
  ...geluKernels,
  ...l2NormalizeKernels,
  ...meanPoolKernels,
  ...infoNceKernels,
  ...attentionKernels,
  ...tokenMaskKernels,
  ...blockLseKernels,
  ...embeddingGradKernels,
];

/**
 * Set to "stock" to run webgpu on TF.js's own kernels only (no fused ops, no in-place AdamW,
 * no byte upload of images): the baseline the profile compares with.
 */
export const KERNELS_ENV = "KME_WEBGPU_KERNELS";

/** Registers every kernel above (once per process; registration is per backend name). */
export function registerKernels(tf: Tf): void {
  let stock = false;
  try {
    stock = Deno.env.get(KERNELS_ENV) === "stock";
  } catch { /* no env permission: ours */ }
  for (const k of ALL) {
    if (stock && k.backendName === "webgpu") continue;
    if (tf.getKernel(k.kernelName, k.backendName) === undefined) tf.registerKernel(k);
  }
}
