/**
 * Renders scenes of the synthetic model. Each distinct object silhouette (shape x size class
 * x rotation x scale jitter x half-pixel offset) is rasterised once by sharp (SVG -> alpha mask,
 * anti-aliased by librsvg); every image is then composed in TypeScript: a tinted background
 * with a random gradient, the mask at a jittered position blended in a jittered colour, plus
 * pixel noise. That is ~100x faster than one sharp call per image and byte-for-byte
 * deterministic given the masks (which depend only on the pinned sharp/librsvg version).
 */
import sharp from "sharp";
import { ATTR_INDEX, ATTRIBUTES } from "../../lib/synthetic/scene_model.ts";
import type { Rng } from "../../lib/random.ts";

/** Object diameter as a fraction of the image side, per size class. */
export const SIZE_FRACTION = [0.28, 0.4, 0.54];
/** Object centre (x, y) as fractions of the image side, per position value. */
export const POSITION_CENTRE: readonly [number, number][] = [
  [0.5, 0.5],
  [0.3, 0.3],
  [0.7, 0.3],
  [0.3, 0.7],
  [0.7, 0.7],
];
/** RGB of each colour value. */
export const PALETTE: readonly [number, number, number][] = [
  [215, 40, 40],
  [40, 165, 60],
  [45, 85, 215],
  [235, 205, 40],
  [145, 60, 185],
  [245, 135, 30],
];
const ROTATIONS_DEG = [-16, -6, 6, 16];
const SCALES = [0.92, 1.08];
const OFFSETS = [0, 0.5];

/** SVG fragment of each shape in unit coordinates ([-1, 1]^2), filled white. */
function shapeFragment(shape: string): string {
  const poly = (pts: [number, number][]) =>
    `<polygon fill="#fff" points="${
      pts.map(([x, y]) => `${x.toFixed(4)},${y.toFixed(4)}`).join(" ")
    }"/>`;
  switch (shape) {
    case "circle":
      return `<circle fill="#fff" cx="0" cy="0" r="0.9"/>`;
    case "square":
      return poly([[-0.8, -0.8], [0.8, -0.8], [0.8, 0.8], [-0.8, 0.8]]);
    case "triangle":
      return poly([[0, -1], [0.95, 0.75], [-0.95, 0.75]]);
    case "star": {
      const pts: [number, number][] = [];
      for (let i = 0; i < 10; i++) {
        const r = i % 2 === 0 ? 1 : 0.45;
        const a = -Math.PI / 2 + (i * Math.PI) / 5;
        pts.push([r * Math.cos(a), r * Math.sin(a) + 0.05]);
      }
      return poly(pts);
    }
    case "cross": {
      const w = 0.32;
      const e = 0.95;
      return poly([
        [-w, -e],
        [w, -e],
        [w, -w],
        [e, -w],
        [e, w],
        [w, w],
        [w, e],
        [-w, e],
        [-w, w],
        [-e, w],
        [-e, -w],
        [-w, -w],
      ]);
    }
    case "diamond":
      return poly([[0, -1], [0.72, 0], [0, 1], [-0.72, 0]]);
    default:
      throw new Error(`no silhouette for shape "${shape}"`);
  }
}

interface Mask {
  /** Side of the square mask. */
  side: number;
  /** Alpha, side x side. */
  alpha: Uint8Array;
}

export interface RenderOptions {
  image_size: number;
  /** Position jitter, as a fraction of the image side (uniform +-). */
  jitter: number;
  /** Standard deviation of the pixel noise, in 0..255 units. */
  pixel_noise: number;
}

/** Values drawn in place of a hidden size / position (the image then carries a marker). */
export const HIDDEN_SIZE_DRAWN = 1;
export const HIDDEN_POSITION_DRAWN = 0;
/** RGB of an object whose colour is hidden (a dark silhouette, not a palette colour). */
export const HIDDEN_COLOUR_RGB = 30;
/** Alpha factor of the faint stripes of a hidden shape's striped disc. */
const STRIPE_FAINT = 0.3;

export class SceneRenderer {
  readonly options: RenderOptions;
  /** [shape][size][rotation][scale][offY][offX]. */
  #masks: Mask[];
  #half: number;
  /** Disc masks for hidden shapes, [size][scale][offY][offX] (made on first use). */
  #discs: Mask[] | undefined;

  private constructor(options: RenderOptions, masks: Mask[], half: number) {
    this.options = options;
    this.#masks = masks;
    this.#half = half;
  }

  static async create(options: RenderOptions, concurrency = 8): Promise<SceneRenderer> {
    const shapes = ATTRIBUTES[ATTR_INDEX.shape].values;
    const n = options.image_size;
    // One square canvas size for every mask, large enough for the largest silhouette.
    const maxD = n * SIZE_FRACTION[SIZE_FRACTION.length - 1] * SCALES[SCALES.length - 1];
    const half = Math.ceil(maxD / 2) + 2;
    const side = 2 * half;
    const jobs: string[] = [];
    for (const shape of shapes) {
      const frag = shapeFragment(shape);
      for (const frac of SIZE_FRACTION) {
        for (const rot of ROTATIONS_DEG) {
          for (const scale of SCALES) {
            for (const oy of OFFSETS) {
              for (const ox of OFFSETS) {
                const r = (n * frac * scale) / 2;
                jobs.push(
                  `<svg xmlns="http://www.w3.org/2000/svg" width="${side}" height="${side}">` +
                    `<g transform="translate(${half + ox} ${half + oy}) rotate(${rot}) ` +
                    `scale(${r.toFixed(5)})">${frag}</g></svg>`,
                );
              }
            }
          }
        }
      }
    }
    const masks: Mask[] = new Array(jobs.length);
    const encoder = new TextEncoder();
    for (let i = 0; i < jobs.length; i += concurrency) {
      const batch = jobs.slice(i, i + concurrency);
      const rendered = await Promise.all(
        batch.map((svg) =>
          sharp(encoder.encode(svg), { density: 72 })
            .ensureAlpha()
            .extractChannel(3)
            .raw()
            .toBuffer({ resolveWithObject: true })
        ),
      );
      rendered.forEach(({ data, info }, j) => {
        if (info.width !== side || info.height !== side || info.channels !== 1) {
          throw new Error(`sharp rendered ${info.width}x${info.height}x${info.channels}`);
        }
        masks[i + j] = { side, alpha: new Uint8Array(data.buffer, data.byteOffset, data.length) };
      });
    }
    return new SceneRenderer(options, masks, half);
  }

  #mask(shape: number, size: number, rot: number, scale: number, oy: number, ox: number): Mask {
    const idx = ((((shape * SIZE_FRACTION.length + size) * ROTATIONS_DEG.length + rot) *
                SCALES.length + scale) * OFFSETS.length + oy) * OFFSETS.length + ox;
    return this.#masks[idx];
  }

  /**
   * Renders latent values z (size, colour, shape, position) into `out` (image_size^2 x 3, HWC)
   * with nuisance drawn from `rng`. The number of draws per image is fixed.
   */
  render(z: readonly number[], rng: Rng, out: Uint8Array): void {
    const n = this.options.image_size;
    const size = z[ATTR_INDEX.size];
    const colour = z[ATTR_INDEX.colour];
    const shape = z[ATTR_INDEX.shape];
    const position = z[ATTR_INDEX.position];

    // Nuisance.
    const grey = rng.uniform(75, 185);
    const bg = [0, 1, 2].map(() => grey + rng.uniform(-18, 18));
    const gx = [0, 1, 2].map(() => rng.uniform(-22, 22) / n);
    const gy = [0, 1, 2].map(() => rng.uniform(-22, 22) / n);
    const fg = PALETTE[colour].map((c) => c + rng.uniform(-22, 22));
    const rot = rng.int(ROTATIONS_DEG.length);
    const scale = rng.int(SCALES.length);
    const j = this.options.jitter;
    const [px, py] = POSITION_CENTRE[position];
    const cx = Math.round((px + rng.uniform(-j, j)) * n * 2) / 2;
    const cy = Math.round((py + rng.uniform(-j, j)) * n * 2) / 2;
    const ix = Math.floor(cx);
    const iy = Math.floor(cy);
    const mask = this.#mask(shape, size, rot, scale, (cy - iy) * 2, (cx - ix) * 2);
    const left = ix - this.#half;
    const top = iy - this.#half;
    const side = mask.side;
    const alpha = mask.alpha;
    // Noise: the sum of the 4 bytes of a uint32 (std 147.8) scaled to pixel_noise.
    const noiseScale = this.options.pixel_noise / 147.80138;

    let o = 0;
    for (let y = 0; y < n; y++) {
      const my = y - top;
      const rowInMask = my >= 0 && my < side;
      const dy = y - n / 2;
      for (let x = 0; x < n; x++) {
        const mx = x - left;
        const a = rowInMask && mx >= 0 && mx < side ? alpha[my * side + mx] / 255 : 0;
        const dx = x - n / 2;
        for (let c = 0; c < 3; c++) {
          const b = bg[c] + gx[c] * dx + gy[c] * dy;
          const u = rng.u32();
          const noise = ((u & 255) + ((u >>> 8) & 255) + ((u >>> 16) & 255) + (u >>> 24) - 510) *
            noiseScale;
          const v = Math.round(b + (fg[c] - b) * a + noise);
          out[o++] = v < 0 ? 0 : v > 255 ? 255 : v;
        }
      }
    }
  }

  /**
   * Renders latent values z with the attributes of `hidden` (bit a = attribute a, in
   * `ATTRIBUTES` order) hidden, in a way the image shows and that depends on nothing but the
   * visible values and the nuisance:
   * - size hidden: drawn at the medium size, and the top row of pixels is white;
   * - colour hidden: a dark silhouette (RGB ~30, not a palette colour);
   * - shape hidden: a striped disc (diagonal stripes, alpha 1 and 0.3) instead of the silhouette;
   * - position hidden: drawn at the centre anchor, and the bottom row of pixels is white.
   * Nuisance is drawn as in `render` (same draws, same order). `hidden = 0` gives an image of
   * the same kind as `render`, not the same bytes (the two are never mixed in a dataset).
   */
  renderOccluded(z: readonly number[], hidden: number, rng: Rng, out: Uint8Array): void {
    const n = this.options.image_size;
    const isHidden = (a: number) => ((hidden >> a) & 1) === 1;
    const size = isHidden(ATTR_INDEX.size) ? HIDDEN_SIZE_DRAWN : z[ATTR_INDEX.size];
    const colour = z[ATTR_INDEX.colour];
    const shape = z[ATTR_INDEX.shape];
    const position = isHidden(ATTR_INDEX.position) ? HIDDEN_POSITION_DRAWN : z[ATTR_INDEX.position];

    const grey = rng.uniform(75, 185);
    const bg = [0, 1, 2].map(() => grey + rng.uniform(-18, 18));
    const gx = [0, 1, 2].map(() => rng.uniform(-22, 22) / n);
    const gy = [0, 1, 2].map(() => rng.uniform(-22, 22) / n);
    const jit = [0, 1, 2].map(() => rng.uniform(-22, 22));
    const fg = isHidden(ATTR_INDEX.colour)
      ? jit.map((j) => HIDDEN_COLOUR_RGB + 0.4 * j)
      : PALETTE[colour].map((c, k) => c + jit[k]);
    const rot = rng.int(ROTATIONS_DEG.length);
    const scale = rng.int(SCALES.length);
    const j = this.options.jitter;
    const [px, py] = POSITION_CENTRE[position];
    const cx = Math.round((px + rng.uniform(-j, j)) * n * 2) / 2;
    const cy = Math.round((py + rng.uniform(-j, j)) * n * 2) / 2;
    const ix = Math.floor(cx);
    const iy = Math.floor(cy);
    const oy = (cy - iy) * 2;
    const ox = (cx - ix) * 2;
    const striped = isHidden(ATTR_INDEX.shape);
    const mask = striped
      ? this.#disc(size, scale, oy, ox)
      : this.#mask(shape, size, rot, scale, oy, ox);
    const left = ix - this.#half;
    const top = iy - this.#half;
    const side = mask.side;
    const alpha = mask.alpha;
    const noiseScale = this.options.pixel_noise / 147.80138;
    const markTop = isHidden(ATTR_INDEX.size);
    const markBottom = isHidden(ATTR_INDEX.position);

    let o = 0;
    for (let y = 0; y < n; y++) {
      const my = y - top;
      const rowInMask = my >= 0 && my < side;
      const dy = y - n / 2;
      const marked = (markTop && y === 0) || (markBottom && y === n - 1);
      for (let x = 0; x < n; x++) {
        const mx = x - left;
        let a = rowInMask && mx >= 0 && mx < side ? alpha[my * side + mx] / 255 : 0;
        if (striped && ((x + y) & 3) >= 2) a *= STRIPE_FAINT;
        const dx = x - n / 2;
        for (let c = 0; c < 3; c++) {
          const b = bg[c] + gx[c] * dx + gy[c] * dy;
          const u = rng.u32();
          const noise = ((u & 255) + ((u >>> 8) & 255) + ((u >>> 16) & 255) + (u >>> 24) - 510) *
            noiseScale;
          const v = Math.round(b + (fg[c] - b) * a + noise);
          out[o++] = marked ? 255 : v < 0 ? 0 : v > 255 ? 255 : v;
        }
      }
    }
  }

  /** Anti-aliased disc of radius 1 (in the silhouettes' unit coordinates), 4x4 supersampled. */
  #disc(size: number, scale: number, oy: number, ox: number): Mask {
    if (!this.#discs) {
      const n = this.options.image_size;
      const half = this.#half;
      const side = 2 * half;
      const discs: Mask[] = [];
      for (const frac of SIZE_FRACTION) {
        for (const sc of SCALES) {
          for (const offY of OFFSETS) {
            for (const offX of OFFSETS) {
              const r = (n * frac * sc) / 2;
              const alpha = new Uint8Array(side * side);
              for (let my = 0; my < side; my++) {
                for (let mx = 0; mx < side; mx++) {
                  let hit = 0;
                  for (let sy = 0; sy < 4; sy++) {
                    for (let sx = 0; sx < 4; sx++) {
                      const dx = mx + (sx + 0.5) / 4 - (half + offX);
                      const dy = my + (sy + 0.5) / 4 - (half + offY);
                      if (dx * dx + dy * dy <= r * r) hit++;
                    }
                  }
                  alpha[my * side + mx] = Math.round((hit * 255) / 16);
                }
              }
              discs.push({ side, alpha });
            }
          }
        }
      }
      this.#discs = discs;
    }
    const idx = ((size * SCALES.length + scale) * OFFSETS.length + oy) * OFFSETS.length + ox;
    return this.#discs[idx];
  }
}
