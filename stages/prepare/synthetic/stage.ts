/**
 * prepare/synthetic: shapes dataset with a known generative model and exact PMI.
 * Light definition only; the generator lives in ./run.ts (imported on run).
 */
import { z } from "zod";
import { defineStage } from "../../../pipeline/stage.ts";

const prob = z.number().min(0).max(1);

export const SyntheticParams = z.strictObject({
  /** Images per split. */
  counts: z.strictObject({
    train: z.int().min(0).default(20000),
    val: z.int().min(0).default(1000),
    test: z.int().min(1).default(1000),
  }).prefault({}),
  /** Independent captions drawn from p(y | z) per image. */
  captions_per_image: z.int().min(1).max(100).default(5),
  /**
   * `scene`: shapes drawn with nuisance (render.ts). `symbolic`: a 2 x 2 grid of flat cells that
   * name each attribute's value or show it hidden (symbolic.ts): the same world and exact PMI,
   * with encoders that are not the bottleneck (use a patch of half the image side). Absent:
   * `scene`, and the resolved params (cache keys) of existing experiments stay as they were.
   */
  render: z.enum(["scene", "symbolic"]).optional(),
  /** Side of the square RGB images, in pixels. */
  image_size: z.int().min(16).max(256).default(32),
  /** Probability that a caption mentions each attribute. */
  mention: z.strictObject({
    shape: prob.default(0.85),
    colour: prob.default(0.7),
    size: prob.default(0.4),
    position: prob.default(0.4),
  }).prefault({}),
  /** Probability that a mentioned attribute names a wrong value (keeps every PMI finite). */
  attribute_noise: z.number().gt(0).max(0.5).default(0.05),
  /** Position jitter as a fraction of the image side (uniform +-). */
  jitter: z.number().min(0).max(0.2).default(0.06),
  /** Std of the additive pixel noise, 0..255 units. */
  pixel_noise: z.number().min(0).max(64).default(6),
  /** PMI grid: the first `grid_images` test images x the first captions of `grid_captions` test images. */
  grid_images: z.int().min(1).default(256),
  grid_captions: z.int().min(1).default(256),
  /**
   * The occluded world (issue 14; docs/dataset-format.md): images hide attributes, visibly, so
   * that PMI is a log of a mixture of high rank. Absent (the default): the revealed world, in
   * which every image shows its whole latent and PMI is additive, of rank 17.
   */
  occlusion: z.strictObject({
    /** Probability that an image hides each attribute, independently. */
    hide: z.number()
      .min(0, "must be >= 0 (the probability that an image hides each attribute)")
      .lt(1, "must be < 1: at 1 every image hides every attribute and PMI is 0 everywhere")
      .default(0.5),
    /** The rank knob: weight of the archetype scenes in the prior. */
    correlation: z.number()
      .min(0, "must be >= 0 (0 = the revealed world's prior, nearly additive PMI)")
      .lt(
        1,
        "must be < 1: at 1 images whose visible attributes match no archetype would have " +
          "probability 0",
      )
      .default(0.9),
    /** Number of archetype scenes (a fixed seeded list of latents). */
    archetypes: z.int()
      .min(1, "must be >= 1")
      .max(540, "must be <= 540, the number of latents")
      .default(90),
  }).optional(),
});
export type SyntheticParams = z.output<typeof SyntheticParams>;

export default defineStage({
  kind: "prepare/synthetic",
  description: "Synthetic shapes with a known latent model; writes exact PMI for a test grid.",
  params: SyntheticParams,
  inputs: {},
  run: async (ctx) => (await import("./run.ts")).run(ctx),
});
