/**
 * The symbolic rendering of `prepare/synthetic` (param `render: symbolic`; issue 14): an image
 * is a 2 x 2 grid of flat cells, one per attribute in `ATTRIBUTES` order (size top left,
 * colour top right, shape bottom left, position bottom right), each filled with the colour
 * code of the attribute's value, or mid grey when the image hides it. No nuisance at all.
 *
 * Why: the dimension sweep of experiments/pmi-rank.yaml asks whether a similarity function can
 * *represent* the PMI of a world, which needs models trained close to their capacity. Rendered
 * scenes teach a ViT to see shapes first, and on a 2-core machine the models stay far from the
 * true PMI within any affordable budget (KL(p(y|x) || q(y|x)) ~1.3 nats at 400 steps), so
 * what they show is optimisation speed. A cell grid with a patch of half the image side gives
 * the encoder four tokens that name what is visible, so training time goes to the similarity.
 * The image still reveals exactly the class of the occluded world (visible values, which are
 * hidden), so p(z | x) and the exact PMI are those of stages/lib/synthetic/occlusion.ts, unchanged.
 */
import { ATTRIBUTES } from "../../lib/synthetic/scene_model.ts";
import { PALETTE } from "./render.ts";

/**
 * RGB code of value v of any attribute (cells are told apart by position, not colour): the
 * scene palette, so that the colour cell shows each colour as the scenes draw it.
 */
export const SYMBOL_RGB: readonly (readonly [number, number, number])[] = PALETTE;
/** RGB of a hidden attribute's cell. */
export const HIDDEN_RGB: readonly [number, number, number] = [128, 128, 128];

/** The image side must split into the 2 x 2 grid of whole cells. */
export function checkSymbolicSize(imageSize: number): void {
  if (imageSize % 2 !== 0) {
    throw new RangeError(`render: symbolic needs an even image_size, got ${imageSize}`);
  }
}

/**
 * Writes the symbolic image of latent values `z` with the attributes of `hidden` hidden (bit a
 * = attribute a) into `out` (n x n x 3, row-major RGB).
 */
export function renderSymbolic(
  z: readonly number[],
  hidden: number,
  n: number,
  out: Uint8Array,
): void {
  checkSymbolicSize(n);
  const half = n / 2;
  const cell = ATTRIBUTES.map((spec, a) => {
    if (spec.values.length > SYMBOL_RGB.length) {
      throw new RangeError(`attribute ${spec.name} has more values than symbol colours`);
    }
    return ((hidden >> a) & 1) === 1 ? HIDDEN_RGB : SYMBOL_RGB[z[a]];
  });
  let o = 0;
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      const rgb = cell[(y < half ? 0 : 2) + (x < half ? 0 : 1)];
      out[o++] = rgb[0];
      out[o++] = rgb[1];
      out[o++] = rgb[2];
    }
  }
}
