/**
 * Hostile dataset files (issue 17): valid IDX files, COCO caption and Karpathy JSON, ZIP archives
 * and JPEG images, mutated by fast-check (bytes flipped, cut short, extended, spliced), go
 * through the readers the prepare stages use. Each must either read (consistently) or throw a
 * DataError naming the file (exit 2, a message, no stack trace), never anything else.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import fc from "fast-check";
import { DataError } from "../stages/lib/dataset/errors.ts";
import { parseIdx, readIdx } from "../stages/prepare/fashion-mnist/idx.ts";
import { readCaptionFile, readKarpathy } from "../stages/prepare/coco/annotations.ts";
import { extractZip, listZip } from "../stages/prepare/coco/zip.ts";
import { decodeImage } from "../stages/prepare/coco/images.ts";
import { jpeg, KARPATHY, makeZip, name2017 } from "./fixtures/coco/make.ts";

/** Cases per reader: a CI-sized default; `KME_FUZZ_DATA_RUNS=5000` fuzzes for real. */
const RUNS = Number(Deno.env.get("KME_FUZZ_DATA_RUNS") ?? 100);

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const s = new Blob([bytes as BlobPart]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(s).arrayBuffer());
}

/** A mutation of `bytes`: flips, a cut, an extension, or a splice of random bytes. */
const mutated = (bytes: Uint8Array) =>
  fc.oneof(
    fc.array(fc.tuple(fc.nat(bytes.length - 1), fc.integer({ min: 1, max: 255 })), {
      minLength: 1,
      maxLength: 6,
    }).map((flips) => {
      const b = bytes.slice();
      for (const [i, x] of flips) b[i] ^= x;
      return b;
    }),
    fc.nat(bytes.length - 1).map((n) => bytes.slice(0, n)),
    fc.uint8Array({ minLength: 1, maxLength: 64 }).map((x) => new Uint8Array([...bytes, ...x])),
    fc.tuple(fc.nat(bytes.length), fc.uint8Array({ maxLength: 32 }), fc.nat(64)).map(
      ([at, ins, del]) => new Uint8Array([...bytes.slice(0, at), ...ins, ...bytes.slice(at + del)]),
    ),
  );

/** Passes when `f` succeeds or throws a DataError that names `file`; fails on anything else. */
async function readsOrRefuses(file: string, f: () => unknown | Promise<unknown>) {
  try {
    await f();
  } catch (e) {
    if (!(e instanceof DataError)) {
      throw new Error(`${(e as Error)?.name}: ${(e as Error)?.message} (not a DataError)`);
    }
    assert.ok(e.message.startsWith(file), `the message names the file: ${e.message}`);
  }
}

function idx(ndim: number, dims: number[]): Uint8Array {
  const n = dims.reduce((a, b) => a * b, 1);
  const b = new Uint8Array(4 + 4 * ndim + n);
  const v = new DataView(b.buffer);
  b.set([0, 0, 8, ndim]);
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d, false));
  for (let i = 0; i < n; i++) b[4 + 4 * ndim + i] = (i * 37) & 255;
  return b;
}

Deno.test("fuzz: mutated IDX files read whole or are refused naming the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const images = idx(3, [4, 5, 6]), labels = idx(1, [7]);
    for (const [ndim, valid] of [[3, images], [1, labels]] as const) {
      for (const gz of [false, true]) {
        await fc.assert(
          fc.asyncProperty(mutated(valid), async (bytes) => {
            const path = join(dir, gz ? "x-idx.gz" : "x-idx");
            const stored = gz ? await gzip(bytes) : bytes;
            await Deno.writeFile(path, stored);
            await readsOrRefuses(path, async () => {
              const a = await readIdx(path, ndim);
              assert.equal(a.data.length, a.dims.reduce((x, y) => x * y, 1));
            });
            await readsOrRefuses(path, () => parseIdx(path, bytes, ndim));
          }),
          { numRuns: Math.ceil(RUNS / 2) },
        );
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const CAPTIONS = JSON.stringify({
  info: {},
  images: [9, 25].map((id) => ({ id, file_name: name2017(id), width: 32, height: 32 })),
  annotations: [
    { id: 1, image_id: 9, caption: "A cat on a mat." },
    { id: 2, image_id: 25, caption: "Two dogs." },
  ],
});

Deno.test("fuzz: mutated COCO caption and Karpathy JSON are read or refused naming the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const enc = new TextEncoder();
    for (
      const [name, text, read] of [
        ["captions_train2017.json", CAPTIONS, (p: string) => readCaptionFile(p, "train2017")],
        ["dataset_coco.json", JSON.stringify(KARPATHY), (p: string) => readKarpathy(p)],
      ] as const
    ) {
      await fc.assert(
        fc.asyncProperty(mutated(enc.encode(text)), async (bytes) => {
          const path = join(dir, name);
          await Deno.writeFile(path, bytes);
          await readsOrRefuses(path, () => read(path));
        }),
        { numRuns: RUNS },
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fuzz: mutated ZIP archives are listed and extracted, or refused naming the archive", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const enc = new TextEncoder();
    const zip = makeZip([
      { name: "train2017/a.txt", data: enc.encode("hello ".repeat(40)) },
      { name: "train2017/b.txt", data: enc.encode("world") },
    ], { deflate: true });
    let n = 0;
    await fc.assert(
      fc.asyncProperty(mutated(zip), async (bytes) => {
        const path = join(dir, "a.zip"), dest = join(dir, `out${n++}`);
        await Deno.writeFile(path, bytes);
        await readsOrRefuses(path, async () => {
          const entries = await listZip(path);
          await extractZip(path, dest, entries);
        });
        // Whatever happened, nothing was written outside the target folder.
        const names = [...Deno.readDirSync(dir)].map((e) => e.name)
          .filter((x) => x !== "a.zip" && !x.startsWith("out"));
        assert.deepEqual(names, []);
      }),
      { numRuns: RUNS },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fuzz: mutated JPEGs decode to the requested size or are refused naming the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const valid = await jpeg(9);
    await fc.assert(
      fc.asyncProperty(
        mutated(valid),
        fc.constantFrom("error", "warning", "truncated", "none"),
        async (bytes, failOn) => {
          const path = join(dir, "x.jpg");
          await Deno.writeFile(path, bytes);
          await readsOrRefuses(path, async () => {
            const px = await decodeImage(path, {
              size: 8,
              resize: "center_crop",
              failOn: failOn as "error",
            });
            assert.equal(px.length, 8 * 8 * 3);
          });
        },
      ),
      { numRuns: RUNS },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("zip: the two archives the fuzzer found are refused with a message, not a crash", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const enc = new TextEncoder();
    // 1. A central directory entry whose extra-field length runs past the directory.
    const zip = makeZip([{ name: "a.txt", data: enc.encode("hello") }]);
    const cd = zip.findLastIndex((_, i) =>
      zip[i] === 0x50 && zip[i + 1] === 0x4b && zip[i + 2] === 1 && zip[i + 3] === 2
    );
    const long = zip.slice();
    new DataView(long.buffer).setUint16(cd + 30, 0x0300, true);
    const a = join(dir, "long-extra.zip");
    await Deno.writeFile(a, long);
    await assert.rejects(
      () => listZip(a),
      (e: Error) => e instanceof DataError && /entry 0 is damaged/.test(e.message),
    );
    // 2. An entry name with a NUL byte.
    const b = join(dir, "nul.zip");
    await Deno.writeFile(b, makeZip([{ name: "x\0y.txt", data: enc.encode("hi") }]));
    const entries = await listZip(b);
    await assert.rejects(
      () => extractZip(b, join(dir, "out"), entries),
      (e: Error) => e instanceof DataError && /contains a NUL byte/.test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
