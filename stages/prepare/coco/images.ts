/**
 * JPEG -> square RGB uint8 with sharp, decoded in parallel with a bounded window and yielded
 * in order, so a writer can stream them to disk while at most `window` images are in memory.
 */
import sharp from "sharp";
import { DataError, isNotFound } from "../../lib/dataset/errors.ts";
import type { CocoParams } from "./stage.ts";

export interface DecodeOptions {
  size: number;
  resize: CocoParams["resize"];
  failOn: CocoParams["fail_on"];
}

const FIT = { center_crop: "cover", stretch: "fill", pad: "contain" } as const;

/** Decodes one JPEG to `size * size * 3` bytes (RGB, row-major). */
export async function decodeImage(file: string, o: DecodeOptions): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(file);
  } catch (err) {
    if (isNotFound(err)) {
      throw new DataError(file, "image file not found (the annotations list it)", { cause: err });
    }
    throw new DataError(file, `cannot read: ${(err as Error).message}`, { cause: err });
  }
  let data: Uint8Array;
  let channels: number;
  try {
    const out = await sharp(bytes, { failOn: o.failOn })
      .resize(o.size, o.size, {
        fit: FIT[o.resize],
        position: "centre",
        background: { r: 0, g: 0, b: 0, alpha: 1 },
      })
      .removeAlpha()
      .toColourspace("srgb")
      .raw()
      .toBuffer({ resolveWithObject: true });
    data = new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.byteLength);
    channels = out.info.channels;
    if (out.info.width !== o.size || out.info.height !== o.size) {
      throw new Error(`resized to ${out.info.width}x${out.info.height}`);
    }
  } catch (err) {
    const msg = (err as Error).message.split("\n")[0];
    throw new DataError(
      file,
      `cannot decode image (${msg}); the file is damaged or truncated (param fail_on: ` +
        `'${o.failOn}')`,
      { cause: err },
    );
  }
  if (channels === 3) return data;
  // Defensive: a greyscale result is replicated to RGB.
  const n = o.size * o.size;
  const rgb = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const v = data[i * channels];
    rgb[i * 3] = rgb[i * 3 + 1] = rgb[i * 3 + 2] = v;
  }
  return rgb;
}

/**
 * Decodes `files` with up to `window` decodes in flight and yields the pixels in order. An
 * error is thrown when its image's turn comes; decodes still in flight finish in the background.
 */
export async function* decodeInOrder(
  files: readonly string[],
  o: DecodeOptions,
  window: number,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array> {
  const pending: Promise<Uint8Array>[] = [];
  let next = 0;
  const launch = () => {
    const p = decodeImage(files[next++], o);
    p.catch(() => {}); // handled when awaited in order; never an unhandled rejection
    pending.push(p);
  };
  while (next < files.length && pending.length < window) launch();
  while (pending.length > 0) {
    signal?.throwIfAborted();
    const pixels = await pending.shift()!;
    if (next < files.length) launch();
    yield pixels;
  }
}
