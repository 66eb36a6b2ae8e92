/**
 * A batch's tensors as a training step takes them. On webgpu the images go up as their raw bytes,
 * four to an int32 (TF.js has no uint8 dtype), and one kernel unpacks, scales and cuts them into
 * patches on the GPU; uploading one int32 per byte moved 4x the bytes and cost a cast and a
 * transpose. Elsewhere the images stay one int32 a value, as before (no upload to save, and
 * the wasm and cpu results stay bit-identical).
 */
import * as tf from "@tensorflow/tfjs-core";
import type { ContrastiveModel, ImageTowerConfig } from "./model.ts";
import { UNPACK_PATCHES, wordsPerImage } from "../tf/kernels/unpack_patches.ts";

/** Images as raw bytes, four to an int32: [B, ceil(H * W * C / 4)]. */
export interface PackedImages {
  readonly kind: "packed-bytes";
  readonly words: tf.Tensor2D;
}

/** A batch of images: pixel values 0..255 as [B, H, W, C], or packed bytes. */
export type ImageInput = tf.Tensor4D | PackedImages;

export function isPacked(x: ImageInput): x is PackedImages {
  return (x as PackedImages).kind === "packed-bytes";
}

/** Whether this backend unpacks images itself (packing pays only where uploads cost). */
export function packsImages(): boolean {
  return tf.getBackend() === "webgpu" && tf.getKernel(UNPACK_PATCHES, "webgpu") !== undefined;
}

/** `count` images of `c`'s size, as bytes one after another -> packed words (no copy if aligned). */
export function packImages(bytes: Uint8Array, count: number, c: ImageTowerConfig): PackedImages {
  const per = c.height * c.widthPx * c.channels;
  if (bytes.length !== count * per) {
    throw new Error(`${bytes.length} image bytes for ${count} images of ${per} bytes`);
  }
  const words = wordsPerImage({ height: c.height, width: c.widthPx, channels: c.channels });
  let view: Int32Array;
  if (per % 4 === 0 && bytes.byteOffset % 4 === 0) {
    view = new Int32Array(bytes.buffer, bytes.byteOffset, count * words);
  } else {
    const padded = new Uint8Array(count * words * 4);
    for (let i = 0; i < count; i++) {
      padded.set(bytes.subarray(i * per, (i + 1) * per), i * words * 4);
    }
    view = new Int32Array(padded.buffer);
  }
  return { kind: "packed-bytes", words: tf.tensor2d(view, [count, words], "int32") };
}

/** The patch matrix [B * P, patch * patch * C] of packed images, scaled to [-1, 1]. */
export function unpackPatches(x: PackedImages, c: ImageTowerConfig): tf.Tensor2D {
  const attrs = { height: c.height, width: c.widthPx, channels: c.channels, patch: c.patch };
  return tf.engine().runKernel(UNPACK_PATCHES, { x: x.words }, attrs as never) as tf.Tensor2D;
}

export function disposeImages(x: ImageInput): void {
  if (isPacked(x)) x.words.dispose();
  else x.dispose();
}

export interface BatchTensors {
  images: ImageInput;
  ids: tf.Tensor2D;
  dispose(): void;
}

/** The tensors of one batch (images as bytes, ids [B, L] int32 with PAD = 0). */
export function batchTensors(
  model: ContrastiveModel,
  batch: { images: Uint8Array; ids: Int32Array; size: number },
): BatchTensors {
  const c = model.config.image;
  const images: ImageInput = packsImages()
    ? packImages(batch.images, batch.size, c)
    : tf.tensor4d(batch.images, [batch.size, c.height, c.widthPx, c.channels], "int32");
  const ids = tf.tensor2d(batch.ids, [batch.size, batch.ids.length / batch.size], "int32");
  return {
    images,
    ids,
    dispose() {
      disposeImages(images);
      ids.dispose();
    },
  };
}
