/**
 * prepare/coco: MS-COCO captions (2017 or 2014 release, optionally with Karpathy's split file)
 * packed as a kme-dataset with every caption of every image. Light definition (zod only); the
 * work is in ./run.ts. See docs/dataset-format.md, "Source: prepare/coco".
 */
import { z } from "zod";
import { defineStage, type ExternalSpec } from "../../../pipeline/stage.ts";

export const DEFAULT_MIRROR = "http://images.cocodataset.org";

/** The official 2017 archives: role -> path under the mirror. */
export const ARCHIVES = {
  annotations: "annotations/annotations_trainval2017.zip",
  train: "zips/train2017.zip",
  val: "zips/val2017.zip",
} as const;
export type ArchiveRole = keyof typeof ARCHIVES;

/**
 * MD5s of the official archives, as published by many download scripts (PaddleDetection,
 * FiftyOne, NVIDIA DALI...). Override with `checksums` (md5:, sha1: or sha256:) for a mirror
 * that serves other bytes.
 */
export const DEFAULT_CHECKSUMS: Record<ArchiveRole, string> = {
  annotations: "md5:f4bbac642086de4f52a3fdda2de5fa2c",
  train: "md5:cced6f7f71b7629ddf16f17bbcfab6b2",
  val: "md5:442b8da7639aecaf257c1dceb8ba8c80",
};

const HEX_LENGTH = { md5: 32, sha1: 40, sha256: 64 } as const;
const checksum = z.string().refine((s) => {
  const m = /^(md5|sha1|sha256):([0-9a-f]+)$/.exec(s);
  return m !== null && m[2].length === HEX_LENGTH[m[1] as keyof typeof HEX_LENGTH];
}, "expected 'md5:<32 hex>', 'sha1:<40 hex>' or 'sha256:<64 hex>' (lowercase)");

const count = z.int().min(0);

export const CocoParams = z.strictObject({
  /**
   * Folder holding `annotations/captions_{train,val}<release>.json` and the image folders
   * `train<release>/`, `val<release>/` (relative paths: against the experiment file).
   */
  root: z.string().min(1),
  /** Which official release's annotation files and image folders to read. */
  release: z.enum(["2017", "2014"]).default("2017"),
  /** Karpathy's split file (`dataset_coco.json`); relative paths: against the experiment file. */
  karpathy: z.string().min(1).optional(),
  /**
   * Where each split comes from. Defaults: all `karpathy` when `karpathy` is given; otherwise
   * train `official_train` (train<release>), val `carve` (from the train pool), test
   * `official_val` (val<release>). Any combination whose train or val shares an image with test
   * is refused.
   */
  splits: z.strictObject({
    train: z.enum(["karpathy", "official_train"]).optional(),
    val: z.enum(["karpathy", "carve"]).optional(),
    test: z.enum(["karpathy", "official_val"]).optional(),
  }).prefault({}),
  /** Images carved (seeded) from the train pool into val when `splits.val` is `carve`. */
  val_size: count.default(5000),
  /** At most this many images per split: a seeded subset, kept in the split's order. */
  max_images: z.strictObject({
    train: count.optional(),
    val: count.optional(),
    test: count.optional(),
  }).prefault({}),
  /** Side of the square RGB output images. */
  image_size: z.int().min(8).max(1024).default(64),
  /**
   * `center_crop`: resize the shortest side to image_size, then crop the centre; `stretch`:
   * resize both sides (aspect ratio not kept); `pad`: fit inside, pad with black.
   */
  resize: z.enum(["center_crop", "stretch", "pad"]).default("center_crop"),
  /**
   * sharp's `failOn`: which decoder complaints make an image fail (with a DataError naming it).
   * `truncated` (default) refuses truncated and undecodable JPEGs but tolerates mere libjpeg
   * warnings; `warning` is stricter; `none` decodes whatever it can.
   */
  fail_on: z.enum(["none", "truncated", "error", "warning"]).default("truncated"),
  /** Fetch the official 2017 archives from `mirror` into `root` (relative: to the experiment file). */
  download: z.boolean().default(false),
  mirror: z.url().default(DEFAULT_MIRROR),
  /** Expected checksums of the archives (`md5:`, `sha1:` or `sha256:` + lowercase hex). */
  checksums: z.strictObject({
    annotations: checksum.default(DEFAULT_CHECKSUMS.annotations),
    train: checksum.default(DEFAULT_CHECKSUMS.train),
    val: checksum.default(DEFAULT_CHECKSUMS.val),
  }).prefault({}),
  /** Download attempts after the first one fails (each resumes with an HTTP Range request). */
  retries: z.int().min(0).max(100).default(5),
}).superRefine((p, ctx) => {
  if (!p.karpathy) {
    for (const split of ["train", "val", "test"] as const) {
      if (p.splits[split] === "karpathy") {
        ctx.addIssue({
          code: "custom",
          path: ["splits", split],
          message: "splits from 'karpathy' need the `karpathy` param (path of dataset_coco.json)",
        });
      }
    }
  }
  if (p.download && p.release !== "2017") {
    ctx.addIssue({
      code: "custom",
      path: ["release"],
      message: "download fetches the 2017 archives: use release '2017'",
    });
  }
});
export type CocoParams = z.output<typeof CocoParams>;

export type SplitSource = {
  train: "karpathy" | "official_train";
  val: "karpathy" | "carve";
  test: "karpathy" | "official_val";
};

/** The split sources with defaults applied. */
export function splitSources(p: CocoParams): SplitSource {
  const k = p.karpathy !== undefined;
  return {
    train: p.splits.train ?? (k ? "karpathy" : "official_train"),
    val: p.splits.val ?? (k ? "karpathy" : "carve"),
    test: p.splits.test ?? (k ? "karpathy" : "official_val"),
  };
}

/** Paths of the inputs under `root` for a release. */
export function inputPaths(root: string, release: string) {
  const r = root.replace(/\/+$/, "") || "/";
  return {
    annotations_train: `${r}/annotations/captions_train${release}.json`,
    annotations_val: `${r}/annotations/captions_val${release}.json`,
    images_train: `${r}/train${release}`,
    images_val: `${r}/val${release}`,
  };
}
export type InputName = keyof ReturnType<typeof inputPaths>;

export function missingHint(p: CocoParams): string {
  const i = inputPaths(p.root, p.release);
  return `put MS-COCO ${p.release} under ${p.root}: ${i.annotations_train}, ${i.annotations_val} ` +
    `(from ${DEFAULT_MIRROR}/annotations/annotations_trainval${p.release}.zip) and the image ` +
    `folders ${i.images_train}/, ${i.images_val}/ (from ${DEFAULT_MIRROR}/zips/train${p.release}` +
    `.zip and val${p.release}.zip), or set \`download: true\` to fetch ` +
    `the 2017 archives`;
}

export default defineStage({
  kind: "prepare/coco",
  description: "MS-COCO captions (all captions per image), Karpathy or official splits, " +
    "resized with sharp; optional download of the official archives.",
  params: CocoParams,
  inputs: {},
  externals: (p) => {
    const ext: Record<string, ExternalSpec> = {};
    if (p.karpathy) {
      ext.karpathy = {
        path: p.karpathy,
        hint: "Karpathy's split file dataset_coco.json comes from caption_datasets.zip " +
          "(cs.stanford.edu/people/karpathy/deepimagesent/)",
      };
    }
    // Downloaded data does not exist before the run: the key is then the mirror, the
    // checksums and the params instead of the files' content.
    if (p.download) return ext;
    const hint = missingHint(p);
    for (const [name, path] of Object.entries(inputPaths(p.root, p.release))) {
      ext[name] = { path, hint };
    }
    return ext;
  },
  run: async (ctx) => (await import("./run.ts")).run(ctx),
});
