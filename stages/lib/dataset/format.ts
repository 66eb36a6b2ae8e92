/**
 * The packed dataset format "kme-dataset/1" (see docs/dataset-format.md): names of the files
 * and the schema of `dataset.json`. Shared by the reader and the writer.
 */
import { z } from "zod";

export const FORMAT = "kme-dataset/1";
export const META_FILE = "dataset.json";
export const SPLITS = ["train", "val", "test"] as const;
export type SplitName = (typeof SPLITS)[number];

export const imagesFile = (split: SplitName): string => `${split}.images.u8`;
export const captionsFile = (split: SplitName): string => `${split}.captions.jsonl`;
export const labelsFile = (split: SplitName): string => `${split}.labels.i32`;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, "expected a lowercase hex SHA-256");
const count = z.int().min(0);

export const ImageShapeSchema = z.strictObject({
  height: z.int().min(1),
  width: z.int().min(1),
  channels: z.int().min(1).max(4),
});
export type ImageShape = z.infer<typeof ImageShapeSchema>;

export const SplitMetaSchema = z.strictObject({
  images: count,
  captions: count,
  /** Whether `<split>.labels.i32` exists. */
  labels: z.boolean(),
});
export type SplitMeta = z.infer<typeof SplitMetaSchema>;

export const FileMetaSchema = z.strictObject({ size: count, sha256: sha256Hex });
export type FileMeta = z.infer<typeof FileMetaSchema>;

export const DatasetMetaSchema = z.strictObject({
  format: z.literal(FORMAT),
  /** Where the data came from, e.g. "synthetic", "fashion-mnist", "coco". */
  source: z.string().min(1),
  description: z.string().optional(),
  image: ImageShapeSchema,
  splits: z.strictObject({ train: SplitMetaSchema, val: SplitMetaSchema, test: SplitMetaSchema }),
  /** Names of the label values: label i is classNames[i]. */
  classNames: z.array(z.string()).optional(),
  /** Superclass name -> names of its member classes (all in classNames). */
  superclasses: z.record(z.string(), z.array(z.string())).optional(),
  /** Every file of the dataset (data files and extras) by name: size and SHA-256. */
  files: z.record(z.string(), FileMetaSchema),
  /** Source-specific facts (generator parameters, extra file descriptions...). */
  extra: z.record(z.string(), z.unknown()).optional(),
});
export type DatasetMeta = z.infer<typeof DatasetMetaSchema>;

/** Bytes of one image. */
export function imageBytes(shape: ImageShape): number {
  return shape.height * shape.width * shape.channels;
}

/**
 * Cross-field checks the schema cannot express. Returns a problem description or undefined.
 */
export function metaProblem(meta: DatasetMeta): string | undefined {
  const names = meta.classNames;
  if (names && new Set(names).size !== names.length) return "classNames has duplicates";
  if (meta.superclasses) {
    if (!names) return "superclasses given without classNames";
    for (const [sup, members] of Object.entries(meta.superclasses)) {
      for (const m of members) {
        if (!names.includes(m)) return `superclass "${sup}" names unknown class "${m}"`;
      }
    }
  }
  const bpi = imageBytes(meta.image);
  for (const split of SPLITS) {
    const s = meta.splits[split];
    const expect: [string, number | undefined][] = [
      [imagesFile(split), s.images * bpi],
      [captionsFile(split), undefined],
    ];
    if (s.labels) expect.push([labelsFile(split), s.images * 4]);
    for (const [file, size] of expect) {
      const f = meta.files[file];
      if (!f) return `files does not list ${file}`;
      if (size !== undefined && f.size !== size) {
        return `files.${file}.size is ${f.size}, expected ${size} for ${s.images} images`;
      }
    }
  }
  return undefined;
}
