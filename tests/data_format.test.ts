/** The packed dataset format: writer/reader round trip, bounded reads, typed errors, PRNG. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { DataError } from "../stages/lib/dataset/errors.ts";
import { openDataset } from "../stages/lib/dataset/read.ts";
import { DatasetWriter } from "../stages/lib/dataset/write.ts";
import { labelSeed, Rng } from "../stages/lib/random.ts";
import type { SplitName } from "../stages/lib/dataset/format.ts";

const IMAGE = { height: 4, width: 3, channels: 2 };
const BPI = 4 * 3 * 2;

interface Expected {
  images: Uint8Array[];
  captions: string[][];
  labels?: number[];
}

/** Writes a small dataset with awkward cases: images without captions, an empty split. */
async function writeSample(dir: string): Promise<Record<SplitName, Expected>> {
  const rng = new Rng(42);
  const w = await DatasetWriter.create(dir, {
    source: "unit-test",
    image: IMAGE,
    classNames: ["a", "b", "c"],
    superclasses: { ab: ["a", "b"] },
  });
  const exp: Record<SplitName, Expected> = {
    train: { images: [], captions: [], labels: [] },
    val: { images: [], captions: [] },
    test: { images: [], captions: [], labels: [] },
  };
  const counts: Record<SplitName, number> = { train: 37, val: 0, test: 5 };
  for (const split of ["train", "test", "val"] as SplitName[]) {
    for (let i = 0; i < counts[split]; i++) {
      const px = new Uint8Array(BPI).map(() => rng.int(256));
      const caps = Array.from(
        { length: i % 4 },
        (_, k) => `img ${i} cap ${k} "quoted"\n\u00e9\u{1F600}`,
      );
      const label = exp[split].labels ? rng.int(3) : undefined;
      await w.add(split, px, caps, label);
      exp[split].images.push(px);
      exp[split].captions.push(caps);
      if (label !== undefined) exp[split].labels!.push(label);
    }
  }
  await w.addFile("extra.json", '{"hello": 1}\n');
  await w.finish({ note: "x" });
  return exp;
}

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kme-data-format-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("dataset: writer -> reader round trip (verify: true)", () =>
  withTemp(async (dir) => {
    const exp = await writeSample(dir);
    const ds = await openDataset(dir, { verify: true });
    assert.equal(ds.meta.format, "kme-dataset/1");
    assert.deepEqual(ds.meta.image, IMAGE);
    assert.deepEqual(ds.meta.classNames, ["a", "b", "c"]);
    assert.deepEqual(ds.meta.superclasses, { ab: ["a", "b"] });
    assert.deepEqual(ds.meta.extra, { note: "x" });
    assert.ok(ds.meta.files["extra.json"]);
    for (const name of ["train", "val", "test"] as SplitName[]) {
      const s = ds.split(name);
      const e = exp[name];
      assert.equal(s.numImages, e.images.length);
      assert.equal(ds.meta.splits[name].images, e.images.length);
      assert.deepEqual(
        s.captions,
        e.captions.flatMap((caps, image) => caps.map((text) => ({ image, text }))),
      );
      for (let i = 0; i < s.numImages; i++) {
        const range = s.captions.slice(s.captionOffsets[i], s.captionOffsets[i + 1]);
        assert.deepEqual(range.map((c) => c.text), e.captions[i]);
      }
      if (e.labels) assert.deepEqual(Array.from(s.labels!), e.labels);
      else assert.equal(s.labels, undefined);
      const all = await s.readImages(0, s.numImages);
      assert.equal(all.length, s.numImages * BPI);
      for (let i = 0; i < s.numImages; i++) {
        assert.deepEqual(all.subarray(i * BPI, (i + 1) * BPI), e.images[i]);
      }
      if (s.numImages >= 5) {
        const buf = new Uint8Array(10 * BPI);
        const part = await s.readImages(2, 3, buf);
        assert.equal(part.buffer, buf.buffer);
        assert.deepEqual(part, all.subarray(2 * BPI, 5 * BPI));
      }
      assert.equal((await s.readImages(s.numImages, 0)).length, 0);
      await assert.rejects(() => s.readImages(s.numImages, 1), RangeError);
      await assert.rejects(() => s.readImages(-1, 1), RangeError);
    }
  }));

Deno.test("dataset: readImages reads only the requested range of a 6 GiB file", () =>
  withTemp(async (dir) => {
    // 224x224x3 images; the train split claims 6 GiB of them: a sparse file with a marker at
    // the end (readImages must seek, and openDataset must not read or hash it).
    const image = { height: 224, width: 224, channels: 3 };
    const bpi = 224 * 224 * 3;
    const w = await DatasetWriter.create(dir, { source: "sparse", image });
    await w.add("test", new Uint8Array(bpi), ["x"]);
    await w.finish();
    const n = Math.ceil((6 * 2 ** 30) / bpi);
    const size = n * bpi;
    const metaPath = join(dir, "dataset.json");
    const meta = JSON.parse(await Deno.readTextFile(metaPath));
    meta.splits.train = { images: n, captions: 0, labels: false };
    meta.files["train.images.u8"] = { size, sha256: "0".repeat(64) };
    await Deno.writeTextFile(metaPath, JSON.stringify(meta));
    const marker = new Uint8Array(bpi).map((_, i) => (i * 7 + 1) & 255);
    const f = await Deno.open(join(dir, "train.images.u8"), { write: true });
    await f.truncate(size);
    await f.seek(size - bpi, Deno.SeekMode.Start);
    await f.write(marker);
    f.close();

    const rssBefore = Deno.memoryUsage().rss;
    const t0 = performance.now();
    const ds = await openDataset(dir); // no verify: does not hash the 6 GiB
    const s = ds.split("train");
    assert.equal(s.numImages, n);
    const last = await s.readImages(n - 2, 2);
    assert.deepEqual(last.subarray(bpi), marker);
    assert.deepEqual(last.subarray(0, bpi), new Uint8Array(bpi));
    const mid = await s.readImages(Math.floor(n / 2), 64);
    assert.equal(mid.length, 64 * bpi);
    assert.ok(performance.now() - t0 < 5000, "range reads must not scan the file");
    const grown = Deno.memoryUsage().rss - rssBefore;
    assert.ok(grown < 256 * 2 ** 20, `rss grew by ${grown} bytes`);
  }));

/** Rewrites a data file and fixes its size/hash in dataset.json (to reach the parser). */
async function replaceFile(dir: string, name: string, content: Uint8Array | string) {
  const bytes = typeof content === "string" ? new TextEncoder().encode(content) : content;
  await Deno.writeFile(join(dir, name), bytes);
  const metaPath = join(dir, "dataset.json");
  const meta = JSON.parse(await Deno.readTextFile(metaPath));
  meta.files[name] = {
    size: bytes.length,
    sha256: createHash("sha256").update(bytes).digest("hex"),
  };
  await Deno.writeTextFile(metaPath, JSON.stringify(meta));
}

async function expectDataError(
  dir: string,
  file: string,
  pattern: RegExp,
  verify = false,
): Promise<void> {
  await assert.rejects(() => openDataset(dir, { verify }), (err: unknown) => {
    assert.ok(err instanceof DataError, `expected DataError, got ${err}`);
    assert.equal(err.file, join(dir, file));
    assert.ok(err.message.includes(file), err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

const corruptions: [string, string, (dir: string) => Promise<void>, RegExp, boolean?][] = [
  ["missing dataset.json", "dataset.json", (d) => Deno.remove(join(d, "dataset.json")), /missing/],
  [
    "dataset.json not JSON",
    "dataset.json",
    (d) => Deno.writeTextFile(join(d, "dataset.json"), "{oops"),
    /invalid JSON/,
  ],
  ["dataset.json wrong format", "dataset.json", async (d) => {
    const p = join(d, "dataset.json");
    const m = JSON.parse(await Deno.readTextFile(p));
    m.format = "kme-dataset/2";
    await Deno.writeTextFile(p, JSON.stringify(m));
  }, /format/],
  ["missing images", "test.images.u8", (d) => Deno.remove(join(d, "test.images.u8")), /missing/],
  [
    "truncated images",
    "train.images.u8",
    (d) => Deno.truncate(join(d, "train.images.u8"), 100),
    /bytes/,
  ],
  [
    "missing captions",
    "val.captions.jsonl",
    (d) => Deno.remove(join(d, "val.captions.jsonl")),
    /missing/,
  ],
  ["captions changed", "train.captions.jsonl", async (d) => {
    const p = join(d, "train.captions.jsonl");
    const t = await Deno.readTextFile(p);
    await Deno.writeTextFile(p, t.replace("cap 0", "cap 9"));
  }, /SHA-256/],
  ["captions bad JSON", "train.captions.jsonl", async (d) => {
    const p = join(d, "train.captions.jsonl");
    const lines = (await Deno.readTextFile(p)).split("\n");
    lines[3] = "{nope";
    await replaceFile(d, "train.captions.jsonl", lines.join("\n"));
  }, /line 4/],
  ["captions not grouped", "train.captions.jsonl", async (d) => {
    const p = join(d, "train.captions.jsonl");
    const lines = (await Deno.readTextFile(p)).trimEnd().split("\n");
    [lines[0], lines[lines.length - 1]] = [lines[lines.length - 1], lines[0]];
    await replaceFile(d, "train.captions.jsonl", lines.join("\n") + "\n");
  }, /grouped/],
  ["captions truncated", "train.captions.jsonl", async (d) => {
    const t = await Deno.readTextFile(join(d, "train.captions.jsonl"));
    await replaceFile(d, "train.captions.jsonl", t.slice(0, t.length - 5));
  }, /truncated/],
  [
    "labels truncated",
    "test.labels.i32",
    (d) => Deno.truncate(join(d, "test.labels.i32"), 7),
    /bytes/,
  ],
  [
    "label out of range",
    "test.labels.i32",
    (d) => replaceFile(d, "test.labels.i32", new Uint8Array(20).fill(7)),
    /outside/,
  ],
  ["missing extra file", "extra.json", (d) => Deno.remove(join(d, "extra.json")), /missing/],
  [
    "images bit flip (verify)",
    "test.images.u8",
    async (d) => {
      const p = join(d, "test.images.u8");
      const b = await Deno.readFile(p);
      b[7] ^= 1;
      await Deno.writeFile(p, b);
    },
    /SHA-256/,
    true,
  ],
];

for (const [name, file, corrupt, pattern, verify] of corruptions) {
  Deno.test(`dataset: ${name} -> DataError naming the file`, () =>
    withTemp(async (dir) => {
      await writeSample(dir);
      await corrupt(dir);
      await expectDataError(dir, file, pattern, verify);
    }));
}

Deno.test("dataset: images file truncated after opening -> DataError from readImages", () =>
  withTemp(async (dir) => {
    await writeSample(dir);
    const ds = await openDataset(dir);
    await Deno.truncate(join(dir, "train.images.u8"), 10 * BPI + 3);
    await assert.rejects(
      () => ds.split("train").readImages(5, 10),
      (err: unknown) => err instanceof DataError && err.message.includes("train.images.u8"),
    );
  }));

Deno.test("dataset writer: rejects bad images and mixed labels", () =>
  withTemp(async (dir) => {
    const w = await DatasetWriter.create(dir, { source: "t", image: IMAGE, classNames: ["x"] });
    await assert.rejects(() => w.add("train", new Uint8Array(3), []), RangeError);
    await w.add("train", new Uint8Array(BPI), ["a"], 0);
    await assert.rejects(() => w.add("train", new Uint8Array(BPI), ["a"]), /mixes/);
    await assert.rejects(() => w.add("test", new Uint8Array(BPI), [], 1), /classNames/);
    w.abort();
  }));

Deno.test("rng: deterministic, serialisable, bounded", () => {
  const a = new Rng(123);
  const b = new Rng(123);
  const xs = Array.from({ length: 100 }, () => a.u32());
  assert.deepEqual(xs, Array.from({ length: 100 }, () => b.u32()));
  assert.notDeepEqual(xs, Array.from({ length: 100 }, () => new Rng(124).u32()));
  const c = Rng.fromState(a.state());
  assert.deepEqual(
    Array.from({ length: 10 }, () => c.u32()),
    Array.from({ length: 10 }, () => a.u32()),
  );
  const counts = new Array(7).fill(0);
  for (let i = 0; i < 70000; i++) counts[a.int(7)]++;
  for (const k of counts) assert.ok(Math.abs(k - 10000) < 500, `int(7) counts ${counts}`);
  for (let i = 0; i < 1000; i++) {
    const f = a.float();
    assert.ok(f >= 0 && f < 1);
  }
  assert.notEqual(labelSeed(1, "train"), labelSeed(1, "test"));
  assert.notEqual(labelSeed(1, "train"), labelSeed(2, "train"));
  assert.equal(labelSeed(1, "a", 2), labelSeed(1, "a", 2));
});
