/** prepare/fashion-mnist: the real Debian data (when installed) and corrupt/missing inputs. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import stage, { DEFAULT_ROOT, FILES } from "../stages/prepare/fashion-mnist/stage.ts";
import { CLASS_NAMES } from "../stages/prepare/fashion-mnist/run.ts";
import { readIdx } from "../stages/prepare/fashion-mnist/idx.ts";
import { DataError } from "../stages/lib/dataset/errors.ts";
import { openDataset } from "../stages/lib/dataset/read.ts";
import { Rng } from "../stages/lib/random.ts";
import { makeContext } from "./fixtures/data/context.ts";

const installed = await Deno.stat(join(DEFAULT_ROOT, FILES.trainImages)).then(
  () => true,
  () => false,
);
const realData = { ignore: !installed }; // `apt-get install -y dataset-fashion-mnist`

Deno.test({
  name: "fashion-mnist: raw IDX files hold 60k/10k 28x28 images, 6k/1k per class",
  ...realData,
  fn: async () => {
    const tr = await readIdx(join(DEFAULT_ROOT, FILES.trainImages), 3);
    const trl = await readIdx(join(DEFAULT_ROOT, FILES.trainLabels), 1);
    const te = await readIdx(join(DEFAULT_ROOT, FILES.testImages), 3);
    const tel = await readIdx(join(DEFAULT_ROOT, FILES.testLabels), 1);
    assert.deepEqual(tr.dims, [60000, 28, 28]);
    assert.deepEqual(te.dims, [10000, 28, 28]);
    assert.deepEqual(trl.dims, [60000]);
    assert.deepEqual(tel.dims, [10000]);
    const per = (l: Uint8Array) =>
      Array.from({ length: 10 }, (_, c) => l.filter((v) => v === c).length);
    assert.deepEqual(per(trl.data), new Array(10).fill(6000));
    assert.deepEqual(per(tel.data), new Array(10).fill(1000));
  },
});

Deno.test({
  name: "fashion-mnist stage: 55k/5k/10k splits, 7k per class overall, captions, pixels",
  ...realData,
  fn: async () => {
    const ctx = await makeContext({ params: stage.params.parse({}), seed: 5 });
    try {
      const result = await stage.run(ctx);
      assert.deepEqual(result?.metrics, { train: 55000, val: 5000, test: 10000, captions: 210000 });
      const ds = await openDataset(ctx.outDir);
      assert.deepEqual(ds.meta.image, { height: 28, width: 28, channels: 1 });
      assert.deepEqual(ds.meta.classNames, CLASS_NAMES);
      assert.deepEqual(ds.meta.superclasses!.footwear, ["sandal", "sneaker", "ankle boot"]);
      assert.deepEqual(ds.meta.superclasses!.tops, ["t-shirt/top", "pullover", "coat", "shirt"]);
      const total = new Array(10).fill(0);
      for (
        const [name, n, perClass] of [
          ["train", 55000, 5500],
          ["val", 5000, 500],
          ["test", 10000, 1000],
        ] as const
      ) {
        const s = ds.split(name);
        assert.equal(s.numImages, n);
        assert.equal(s.captions.length, 3 * n);
        const counts = new Array(10).fill(0);
        for (const l of s.labels!) counts[l]++;
        assert.deepEqual(counts, new Array(10).fill(perClass), `${name} per class`);
        counts.forEach((c, k) => (total[k] += c));
      }
      assert.deepEqual(total, new Array(10).fill(7000));
      // Test split = the t10k file in order; captions name the class.
      const te = await readIdx(join(DEFAULT_ROOT, FILES.testImages), 3);
      const test = ds.split("test");
      assert.deepEqual(await test.readImages(9990, 10), te.data.subarray(9990 * 784));
      const first = test.captions.slice(test.captionOffsets[0], test.captionOffsets[1]);
      assert.equal(new Set(first.map((c) => c.text)).size, 3);
      const boot = test.labels!.indexOf(9);
      const bootCaps = test.captions.slice(
        test.captionOffsets[boot],
        test.captionOffsets[boot + 1],
      );
      for (const c of bootCaps) assert.match(c.text, /an ankle boot/);
    } finally {
      await ctx.cleanup();
    }
  },
});

// ---- Small fake inputs (built in a temp dir) for options, determinism and corruption. ----

function idx(dims: number[], data: Uint8Array, ndim = dims.length): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  const v = new DataView(out.buffer);
  out.set([0, 0, 8, ndim]);
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

/** Writes a fake Fashion-MNIST root with `nTrain` / `nTest` random images; returns it. */
async function fakeRoot(nTrain = 200, nTest = 40): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "kme-fake-fmnist-" });
  const rng = new Rng(9);
  const write = (name: string, dims: number[], data: Uint8Array) =>
    Deno.writeFile(join(root, name), gzipSync(idx(dims, data)));
  const px = (n: number) => new Uint8Array(n * 784).map(() => rng.int(256));
  const labels = (n: number) => new Uint8Array(n).map((_, i) => i % 10);
  await write(FILES.trainImages, [nTrain, 28, 28], px(nTrain));
  await write(FILES.trainLabels, [nTrain], labels(nTrain));
  await write(FILES.testImages, [nTest, 28, 28], px(nTest));
  await write(FILES.testLabels, [nTest], labels(nTest));
  return root;
}

async function runOn(root: string, params: Record<string, unknown> = {}, seed = 1) {
  const ctx = await makeContext({
    params: stage.params.parse({ root, val_size: 50, ...params }),
    seed,
  });
  try {
    await stage.run(ctx);
    return ctx;
  } catch (err) {
    await ctx.cleanup();
    throw err;
  }
}

Deno.test("fashion-mnist stage: externals name the four files under root", () => {
  const p = stage.params.parse({ root: "data/fm/" });
  const paths = Object.fromEntries(
    Object.entries(stage.externals!(p)).map(([k, v]) => [k, typeof v === "string" ? v : v.path]),
  );
  assert.deepEqual(paths, {
    trainImages: "data/fm/train-images-idx3-ubyte.gz",
    trainLabels: "data/fm/train-labels-idx1-ubyte.gz",
    testImages: "data/fm/t10k-images-idx3-ubyte.gz",
    testLabels: "data/fm/t10k-labels-idx1-ubyte.gz",
  });
  const dflt = stage.externals!(stage.params.parse({})).trainImages;
  assert.match(
    typeof dflt === "string" ? "" : dflt.hint ?? "",
    /apt-get install dataset-fashion-mnist/,
  );
  assert.throws(() => stage.params.parse({ captions_per_image: 7 }), /templates/);
  assert.throws(() => stage.params.parse({ templates: ["no placeholder"] }), /\{class\}/);
});

Deno.test("fashion-mnist stage: seeded val carve, deterministic bytes, padding to RGB", async () => {
  const root = await fakeRoot();
  const a = await runOn(root);
  const b = await runOn(root);
  const c = await runOn(root, {}, 2);
  const padded = await runOn(root, { image_size: 32, channels: 3 });
  try {
    for (
      const name of ["dataset.json", "train.images.u8", "val.labels.i32", "val.captions.jsonl"]
    ) {
      assert.deepEqual(
        await Deno.readFile(join(a.outDir, name)),
        await Deno.readFile(join(b.outDir, name)),
      );
    }
    assert.notDeepEqual(
      await Deno.readFile(join(a.outDir, "val.images.u8")),
      await Deno.readFile(join(c.outDir, "val.images.u8")),
    );
    const ds = await openDataset(a.outDir, { verify: true });
    assert.equal(ds.split("train").numImages, 150);
    assert.equal(ds.split("val").numImages, 50);
    assert.equal(ds.split("test").numImages, 40);
    const valCounts = new Array(10).fill(0);
    for (const l of ds.split("val").labels!) valCounts[l]++;
    assert.deepEqual(valCounts, new Array(10).fill(5));

    const p = await openDataset(padded.outDir);
    assert.deepEqual(p.meta.image, { height: 32, width: 32, channels: 3 });
    const small = await ds.split("test").readImages(3, 1);
    const big = await p.split("test").readImages(3, 1);
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        const inside = y >= 2 && y < 30 && x >= 2 && x < 30;
        const want = inside ? small[(y - 2) * 28 + (x - 2)] : 0;
        for (let ch = 0; ch < 3; ch++) assert.equal(big[(y * 32 + x) * 3 + ch], want);
      }
    }
  } finally {
    await Promise.all([a, b, c, padded].map((x) => x.cleanup()));
    await Deno.remove(root, { recursive: true });
  }
});

async function expectFailure(
  corrupt: (root: string) => Promise<void>,
  file: string,
  pattern: RegExp,
): Promise<void> {
  const root = await fakeRoot(30, 10);
  try {
    await corrupt(root);
    await assert.rejects(() => runOn(root, { val_size: 10 }), (err: unknown) => {
      assert.ok(err instanceof DataError, `expected DataError, got ${err}`);
      assert.ok(err.message.includes(join(root, file)), err.message);
      assert.match(err.message, pattern);
      return true;
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("fashion-mnist stage: missing root -> DataError with the apt command", async () => {
  const parent = await Deno.makeTempDir();
  const root = join(parent, "nowhere");
  try {
    await assert.rejects(() => runOn(root), (err: unknown) => {
      assert.ok(err instanceof DataError);
      assert.ok(err.message.startsWith(root), err.message);
      assert.match(err.message, /apt-get install -y dataset-fashion-mnist/);
      return true;
    });
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("fashion-mnist stage: missing file -> DataError naming it, with the apt command", () =>
  expectFailure(
    (r) => Deno.remove(join(r, FILES.testLabels)),
    FILES.testLabels,
    /missing.*apt-get install -y dataset-fashion-mnist/,
  ));

Deno.test("fashion-mnist stage: not gzip -> DataError naming the file", () =>
  expectFailure(
    (r) => Deno.writeTextFile(join(r, FILES.trainImages), "this is not gzip"),
    FILES.trainImages,
    /gzip/,
  ));

Deno.test("fashion-mnist stage: truncated gzip -> DataError naming the file", () =>
  expectFailure(
    async (r) => {
      const p = join(r, FILES.testImages);
      const b = await Deno.readFile(p);
      await Deno.writeFile(p, b.subarray(0, Math.floor(b.length / 2)));
    },
    FILES.testImages,
    /gzip|truncated/,
  ));

Deno.test("fashion-mnist stage: bad IDX magic -> DataError naming the file", () =>
  expectFailure(
    (r) =>
      Deno.writeFile(
        join(r, FILES.trainLabels),
        gzipSync(new Uint8Array([0, 0, 9, 1, 0, 0, 0, 30, ...new Uint8Array(30)])),
      ),
    FILES.trainLabels,
    /magic/,
  ));

Deno.test("fashion-mnist stage: IDX payload shorter than its header says -> DataError", () =>
  expectFailure(
    (r) =>
      Deno.writeFile(
        join(r, FILES.trainImages),
        gzipSync(idx([30, 28, 28], new Uint8Array(29 * 784))),
      ),
    FILES.trainImages,
    /truncated/,
  ));

Deno.test("fashion-mnist stage: label/image count mismatch and bad labels -> DataError", async () => {
  await expectFailure(
    (r) => Deno.writeFile(join(r, FILES.testLabels), gzipSync(idx([9], new Uint8Array(9)))),
    FILES.testLabels,
    /9 labels for 10 images/,
  );
  await expectFailure(
    (r) =>
      Deno.writeFile(join(r, FILES.testLabels), gzipSync(idx([10], new Uint8Array(10).fill(12)))),
    FILES.testLabels,
    /label 12/,
  );
});
