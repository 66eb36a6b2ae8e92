/**
 * prepare/fashion-mnist: Fashion-MNIST (Debian package dataset-fashion-mnist) packed as a
 * kme-dataset with class-name captions. Light definition; the work is in ./run.ts.
 */
import { z } from "zod";
import { defineStage } from "../../../pipeline/stage.ts";

export const DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist";
export const FILES = {
  trainImages: "train-images-idx3-ubyte.gz",
  trainLabels: "train-labels-idx1-ubyte.gz",
  testImages: "t10k-images-idx3-ubyte.gz",
  testLabels: "t10k-labels-idx1-ubyte.gz",
} as const;
export type FileKey = keyof typeof FILES;

export const DEFAULT_TEMPLATES = [
  "a photo of {class}.",
  "a black and white photo of {class}.",
  "a low resolution photo of {class}.",
  "a product photo of {class}.",
  "{class}, from the {superclass} category.",
  "a photo of {class} ({superclass}).",
];

export const FashionMnistParams = z.strictObject({
  /** Folder with the four gzipped IDX files (relative paths: against the experiment file). */
  root: z.string().min(1).default(DEFAULT_ROOT),
  /** Images carved from the 60k training images into `val` (stratified by class, seeded). */
  val_size: z.int().min(0).max(30000).default(5000),
  /** Side of the output images: 28, or larger to zero-pad the 28x28 digits centrally. */
  image_size: z.int().min(28).max(256).default(28),
  /** 1 (greyscale) or 3 (grey replicated to RGB). */
  channels: z.union([z.literal(1), z.literal(3)]).default(1),
  /**
   * Caption templates: `{class}` becomes the class phrase with its article ("an ankle boot"),
   * `{superclass}` the superclass ("footwear").
   */
  templates: z.array(
    z.string().refine((t) => t.includes("{class}"), "a template must contain {class}"),
  ).min(1).default(DEFAULT_TEMPLATES),
  /** Distinct templates used per image (chosen at random, seeded). */
  captions_per_image: z.int().min(1).default(3),
}).refine((p) => p.captions_per_image <= p.templates.length, {
  message: "captions_per_image cannot exceed the number of templates",
  path: ["captions_per_image"],
});
export type FashionMnistParams = z.output<typeof FashionMnistParams>;

/** Path of one input file under `root`. */
export function inputPath(root: string, key: FileKey): string {
  return `${root.replace(/\/+$/, "")}/${FILES[key]}`;
}

export default defineStage({
  kind: "prepare/fashion-mnist",
  description: "Fashion-MNIST from the Debian package, with class-name captions and labels.",
  params: FashionMnistParams,
  inputs: {},
  externals: (p) => {
    const hint = p.root === DEFAULT_ROOT
      ? "install it with: apt-get install dataset-fashion-mnist"
      : `put Fashion-MNIST's ${Object.values(FILES).join(", ")} there`;
    return Object.fromEntries(
      (Object.keys(FILES) as FileKey[]).map((k) => [k, { path: inputPath(p.root, k), hint }]),
    );
  },
  run: async (ctx) => (await import("./run.ts")).run(ctx),
});
