/** prepare/coco on a tiny COCO-format fixture built at test time (no download). */
import assert from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import stage from "../stages/prepare/coco/stage.ts";
import { DataError } from "../stages/lib/dataset/errors.ts";
import { openDataset } from "../stages/lib/dataset/read.ts";
import { makeContext } from "./fixtures/data/context.ts";
import {
  cleanCaptionsOf,
  type CocoFixture,
  jpeg,
  KARPATHY,
  makeCocoRoot,
  name2017,
  TRAIN_IDS,
  VAL_IDS,
} from "./fixtures/coco/make.ts";

const SIZE = 16;

async function withFixture(fn: (f: CocoFixture) => Promise<void>) {
  const f = await makeCocoRoot();
  try {
    await fn(f);
  } finally {
    await Deno.remove(f.root, { recursive: true });
  }
}

/** Runs the stage; returns the dataset dir (caller cleans up via the returned function). */
async function prepare(params: Record<string, unknown>, seed = 0) {
  const ctx = await makeContext({
    params: stage.params.parse({ image_size: SIZE, val_size: 2, ...params }),
    seed,
  });
  try {
    const result = await stage.run(ctx);
    return { ctx, result, ds: await openDataset(ctx.outDir, { verify: true }) };
  } catch (err) {
    await ctx.cleanup();
    throw err;
  }
}

async function imageIds(dir: string): Promise<Record<string, number[]>> {
  return JSON.parse(await Deno.readTextFile(join(dir, "image_ids.json")));
}

/** Every image of a split has exactly its fixture captions, in order. */
function assertCaptions(
  split: { numImages: number; captions: { text: string }[]; captionOffsets: Int32Array },
  ids: number[],
) {
  assert.equal(split.numImages, ids.length);
  ids.forEach((id, i) => {
    const got = split.captions
      .slice(split.captionOffsets[i], split.captionOffsets[i + 1])
      .map((c) => c.text);
    assert.deepEqual(got, cleanCaptionsOf(id), `captions of image ${id}`);
  });
}

Deno.test("coco: official splits, all 5-7 captions per image, centre-crop pixels", async () => {
  await withFixture(async (f) => {
    const { ctx, result, ds } = await prepare({ root: f.root });
    try {
      assert.deepEqual(result?.metrics, {
        train: 10,
        val: 2,
        test: 5,
        captions: [...TRAIN_IDS, ...VAL_IDS].reduce((n, id) => n + 5 + (id % 3), 0),
      });
      assert.equal(ds.meta.source, "coco");
      assert.deepEqual(ds.meta.image, { height: SIZE, width: SIZE, channels: 3 });
      const ids = await imageIds(ctx.outDir);
      assert.deepEqual(ids.test, VAL_IDS);
      assert.deepEqual([...ids.train, ...ids.val].sort((a, b) => a - b), TRAIN_IDS);
      for (const s of ["train", "val", "test"] as const) assertCaptions(ds.split(s), ids[s]);
      const perImage = (ds.meta.extra!.coco as { captionsPerImage: Record<string, number> })
        .captionsPerImage;
      assert.deepEqual(Object.keys(perImage).sort(), ["5", "6", "7"]);
      // Pixels: shortest side resized to SIZE, centre crop (sharp "cover").
      const id = ids.test[2];
      const want = await sharp(await jpeg(id)).resize(SIZE, SIZE, { fit: "cover" }).raw()
        .toBuffer();
      assert.deepEqual(await ds.split("test").readImages(2, 1), new Uint8Array(want));
      const extra = ds.meta.extra!.coco as Record<string, Record<string, unknown>>;
      assert.equal(
        (extra.sources.annotations_train as { file: string }).file,
        "captions_train2017.json",
      );
      assert.equal(extra.available.train, 10);
    } finally {
      await ctx.cleanup();
    }
  });
});

Deno.test("coco: same seed, same bytes; another seed carves another val", async () => {
  await withFixture(async (f) => {
    const a = await prepare({ root: f.root }, 3);
    const b = await prepare({ root: f.root }, 3);
    const c = await prepare({ root: f.root }, 4);
    try {
      const meta = (x: typeof a) => Deno.readTextFile(join(x.ctx.outDir, "dataset.json"));
      assert.equal(await meta(a), await meta(b));
      const va = (await imageIds(a.ctx.outDir)).val;
      const vc = (await imageIds(c.ctx.outDir)).val;
      assert.equal(vc.length, 2);
      assert.notDeepEqual(va, vc); // 66 possible pairs: these seeds differ
    } finally {
      for (const x of [a, b, c]) await x.ctx.cleanup();
    }
  });
});

Deno.test("coco: Karpathy splits (train+restval / val / test), images found in both folders", async () => {
  await withFixture(async (f) => {
    const { ctx, result, ds } = await prepare({ root: f.root, karpathy: f.karpathy });
    try {
      const ids = await imageIds(ctx.outDir);
      const k = JSON.parse(await Deno.readTextFile(f.karpathy)).images as {
        cocoid: number;
        split: string;
      }[];
      const inOrder = (...s: string[]) => k.filter((e) => s.includes(e.split)).map((e) => e.cocoid);
      assert.deepEqual(ids.train, inOrder("train", "restval")); // Karpathy's order
      assert.deepEqual(ids.val, inOrder("val"));
      assert.deepEqual(ids.test, inOrder("test"));
      assert.deepEqual([...ids.test].sort((a, b) => a - b), [...KARPATHY.test]);
      assert.equal(result?.metrics?.train, KARPATHY.train.length + KARPATHY.restval.length);
      for (const s of ["train", "val", "test"] as const) assertCaptions(ds.split(s), ids[s]);
      assert.match(ds.meta.description!, /karpathy test/);
    } finally {
      await ctx.cleanup();
    }
  });
});

Deno.test("coco: Karpathy test + train2017 as train is refused (image-id overlap)", async () => {
  await withFixture(async (f) => {
    await assert.rejects(
      prepare({ root: f.root, karpathy: f.karpathy, splits: { train: "official_train" } }),
      (err: unknown) => {
        assert.ok(err instanceof DataError);
        assert.equal(err.file, f.karpathy);
        assert.match(err.message, /2 of the 12 train images .* are also test images/);
        assert.match(err.message, /image ids 25, 30/);
        return true;
      },
    );
    // Karpathy val (partly in val2017) with official_val as test: val/test leak.
    await assert.rejects(
      prepare({
        root: f.root,
        karpathy: f.karpathy,
        splits: { train: "official_train", val: "karpathy", test: "official_val" },
      }),
      /1 of the 2 val images \(karpathy val\) are also test images \(official val\)/,
    );
    // Karpathy train+restval also holds val2017 images: with official_val as test, a leak.
    await assert.rejects(
      prepare({ root: f.root, karpathy: f.karpathy, splits: { test: "official_val" } }),
      /3 of the 12 train images \(karpathy train\+restval\) are also test images/,
    );
  });
});

Deno.test("coco: an image id planted in both train2017 and val2017 annotations is refused", async () => {
  await withFixture(async (f) => {
    const valJson = join(f.root, "annotations", "captions_val2017.json");
    const j = JSON.parse(await Deno.readTextFile(valJson));
    j.images.push({ id: 42, file_name: name2017(42) });
    j.annotations.push({ id: 99999, image_id: 42, caption: "a leaked image" });
    await Deno.copyFile(
      join(f.root, "train2017", name2017(42)),
      join(f.root, "val2017", name2017(42)),
    );
    await Deno.writeTextFile(valJson, JSON.stringify(j));
    await assert.rejects(prepare({ root: f.root }), (err: unknown) => {
      assert.ok(err instanceof DataError);
      assert.equal(err.file, valJson);
      assert.match(err.message, /are also test images .*image ids 42/);
      return true;
    });
  });
});

Deno.test("coco: max_images takes a seeded subset, nested in the full split", async () => {
  await withFixture(async (f) => {
    const full = await prepare({ root: f.root, karpathy: f.karpathy });
    const small = await prepare({
      root: f.root,
      karpathy: f.karpathy,
      max_images: { train: 4, test: 2 },
    });
    try {
      const a = await imageIds(full.ctx.outDir);
      const b = await imageIds(small.ctx.outDir);
      assert.equal(b.train.length, 4);
      assert.equal(b.test.length, 2);
      assert.deepEqual(b.val, a.val);
      // Kept in the split's order.
      assert.deepEqual(b.train, a.train.filter((id) => b.train.includes(id)));
      assert.deepEqual(b.test, a.test.filter((id) => b.test.includes(id)));
      assertCaptions(small.ds.split("train"), b.train);
    } finally {
      await full.ctx.cleanup();
      await small.ctx.cleanup();
    }
  });
});

Deno.test("coco: pad keeps the whole image on black; stretch fills", async () => {
  await withFixture(async (f) => {
    const pad = await prepare({ root: f.root, resize: "pad", max_images: { train: 1, val: 0 } });
    try {
      const ids = await imageIds(pad.ctx.outDir);
      const id = ids.test[0]; // 139: 48x32 (wider than tall) -> black rows top and bottom
      assert.equal(id, 139);
      const px = await pad.ds.split("test").readImages(0, 1);
      assert.deepEqual([...px.subarray(0, 3 * SIZE)], new Array(3 * SIZE).fill(0));
      const want = await sharp(await jpeg(id)).resize(SIZE, SIZE, { fit: "fill" }).raw()
        .toBuffer();
      const st = await prepare({ root: f.root, resize: "stretch", max_images: { val: 0 } });
      try {
        assert.deepEqual(await st.ds.split("test").readImages(0, 1), new Uint8Array(want));
      } finally {
        await st.ctx.cleanup();
      }
    } finally {
      await pad.ctx.cleanup();
    }
  });
});

Deno.test("coco: missing folder, bad JSON, truncated JPEG, bad Karpathy entry name the file", async () => {
  await withFixture(async (f) => {
    const expectDataError = async (params: Record<string, unknown>, file: string, re: RegExp) => {
      await assert.rejects(prepare({ root: f.root, ...params }), (err: unknown) => {
        assert.ok(err instanceof DataError, String(err));
        assert.equal(err.file, file);
        assert.ok(err.message.startsWith(file));
        assert.match(err.message, re);
        return true;
      });
    };
    // Truncated JPEG.
    const jpg = join(f.root, "val2017", name2017(285));
    const good = await Deno.readFile(jpg);
    await Deno.writeFile(jpg, good.subarray(0, Math.floor(good.length * 0.7)));
    await expectDataError({}, jpg, /cannot decode image .*damaged or truncated/);
    await Deno.writeFile(jpg, good);
    // An image the annotations list is missing.
    await Deno.remove(jpg);
    await expectDataError({}, jpg, /image file not found/);
    await Deno.writeFile(jpg, good);
    // Truncated caption JSON.
    const ann = join(f.root, "annotations", "captions_train2017.json");
    const text = await Deno.readTextFile(ann);
    await Deno.writeTextFile(ann, text.slice(0, 200));
    await expectDataError({}, ann, /invalid JSON in COCO caption annotations/);
    await Deno.writeTextFile(ann, JSON.stringify({ images: [{ id: 1, file_name: "x.jpg" }] }));
    await expectDataError({}, ann, /"annotations" arrays/);
    await Deno.writeTextFile(ann, text);
    // Karpathy file naming an image the annotations lack.
    const k = JSON.parse(await Deno.readTextFile(f.karpathy));
    k.images[3].cocoid = 123456;
    k.images[3].filename = "COCO_val2014_000000123456.jpg";
    const bad = join(f.root, "bad_karpathy.json");
    await Deno.writeTextFile(bad, JSON.stringify(k));
    await expectDataError({ karpathy: bad }, bad, /cocoid 123456 has no captions/);
    // Missing image folder: the hint says where to put what, and mentions download.
    await Deno.rename(join(f.root, "val2017"), join(f.root, "val2017.away"));
    await expectDataError(
      {},
      join(f.root, "val2017"),
      /folder not found; put MS-COCO 2017.*download: true/,
    );
  });
});

Deno.test("coco: params and externals", () => {
  const p = stage.params.parse({ root: "data/coco", karpathy: "data/dataset_coco.json" });
  const paths = (x: typeof p) =>
    Object.fromEntries(
      Object.entries(stage.externals!(x)).map(([k, v]) => [k, typeof v === "string" ? v : v.path]),
    );
  assert.deepEqual(paths(p), {
    karpathy: "data/dataset_coco.json",
    annotations_train: "data/coco/annotations/captions_train2017.json",
    annotations_val: "data/coco/annotations/captions_val2017.json",
    images_train: "data/coco/train2017",
    images_val: "data/coco/val2017",
  });
  const hint = (stage.externals!(p).images_val as { hint: string }).hint;
  assert.match(hint, /annotations_trainval2017\.zip/);
  assert.match(hint, /download: true/);
  const p14 = stage.params.parse({ root: "/c", release: "2014" });
  assert.equal(paths(p14).images_train, "/c/train2014");
  // Download mode: only the Karpathy file is an external (the rest does not exist yet).
  const d = stage.params.parse({ root: "/data/coco", download: true, karpathy: "k.json" });
  assert.deepEqual(Object.keys(stage.externals!(d)), ["karpathy"]);
  assert.equal(d.checksums.train, "md5:cced6f7f71b7629ddf16f17bbcfab6b2");
  const issues = (x: unknown) => {
    const r = stage.params.safeParse(x);
    assert.equal(r.success, false);
    return r.error!.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("\n");
  };
  assert.match(issues({ root: "c", splits: { test: "karpathy" } }), /splits\.test: .*karpathy/);
  assert.equal(stage.params.safeParse({ root: "rel/coco", download: true }).success, true);
  assert.match(issues({ root: "/c", download: true, release: "2014" }), /release/);
  assert.match(issues({ root: "/c", checksums: { train: "md5:xyz" } }), /checksums\.train/);
  assert.match(issues({ root: "/c", image_size: 4 }), /image_size/);
});
