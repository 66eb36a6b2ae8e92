/**
 * prepare/coco with `download: true` against a local HTTP server (Range support, dropped
 * connections, ignored ranges, wrong checksums), and the ZIP reader.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import stage from "../stages/prepare/coco/stage.ts";
import { entryPath, extractZip, listZip } from "../stages/prepare/coco/zip.ts";
import { DataError } from "../stages/lib/dataset/errors.ts";
import { openDataset } from "../stages/lib/dataset/read.ts";
import { makeContext } from "./fixtures/data/context.ts";
import {
  makeArchives,
  makeCocoRoot,
  makeZip,
  serveArchives,
  type TestServer,
  TRAIN_IDS,
  VAL_IDS,
} from "./fixtures/coco/make.ts";

const md5 = (b: Uint8Array) => `md5:${createHash("md5").update(b).digest("hex")}`;
const sha256 = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const TRAIN_ZIP = "/zips/train2017.zip";

interface Env {
  fixture: string;
  archives: Map<string, Uint8Array>;
  server: TestServer;
  root: string;
  checksums: Record<string, string>;
}

async function withServer(fn: (e: Env) => Promise<void>) {
  const f = await makeCocoRoot();
  const archives = makeArchives(f.files);
  const server = serveArchives(archives);
  const root = await Deno.makeTempDir({ prefix: "kme-coco-dl-" });
  const checksums = {
    annotations: md5(archives.get("/annotations/annotations_trainval2017.zip")!),
    train: sha256(archives.get(TRAIN_ZIP)!),
    val: md5(archives.get("/zips/val2017.zip")!),
  };
  try {
    await fn({ fixture: f.root, archives, server, root, checksums });
  } finally {
    await server.close();
    await Deno.remove(root, { recursive: true });
    await Deno.remove(f.root, { recursive: true });
  }
}

async function runStage(e: Env, params: Record<string, unknown> = {}, signal?: AbortSignal) {
  const logs: string[] = [];
  const ctx = await makeContext({
    params: stage.params.parse({
      root: e.root,
      download: true,
      mirror: e.server.url,
      checksums: e.checksums,
      image_size: 8,
      val_size: 2,
      retries: 2,
      ...params,
    }),
    signal,
    logs,
  });
  try {
    const result = (await stage.run(ctx)) ?? {};
    const meta = await Deno.readTextFile(join(ctx.outDir, "dataset.json"));
    return { result, meta, logs, ds: await openDataset(ctx.outDir, { verify: true }) };
  } finally {
    await ctx.cleanup();
  }
}

const trainRequests = (s: TestServer) => s.requests.filter((r) => r.path === TRAIN_ZIP);

Deno.test("coco download: fetch, verify, extract, prepare; a rerun fetches nothing", async () => {
  await withServer(async (e) => {
    const { result, ds, logs } = await runStage(e);
    assert.deepEqual(
      [result.metrics?.train, result.metrics?.val, result.metrics?.test],
      [TRAIN_IDS.length - 2, 2, VAL_IDS.length],
    );
    assert.equal(ds.split("test").numImages, 5);
    assert.equal(e.server.requests.length, 3);
    assert.ok(e.server.requests.every((r) => r.range === null && r.status === 200));
    // Archives kept and verified; only the caption annotations extracted.
    for (const name of ["annotations_trainval2017.zip", "train2017.zip", "val2017.zip"]) {
      await Deno.stat(join(e.root, "downloads", name));
      await Deno.stat(join(e.root, "downloads", `${name}.extracted.json`));
    }
    await assert.rejects(Deno.stat(join(e.root, "annotations", "instances_train2017.json")));
    const extracted = await Deno.readFile(join(e.root, "val2017", "000000000139.jpg"));
    assert.deepEqual(
      extracted,
      await makeCocoRoot().then(async (f) => {
        const b = f.files.get("val2017/000000000139.jpg")!;
        await Deno.remove(f.root, { recursive: true });
        return b;
      }),
    );
    assert.ok(logs.some((l) => /train2017\.zip verified/.test(l)));
    const coco = ds.meta.extra!.coco as { download: { mirror: string } };
    assert.equal(coco.download.mirror, e.server.url);

    // Same data as preparing the fixture folder directly (download: false).
    const direct = await makeContext({
      params: stage.params.parse({ root: e.fixture, image_size: 8, val_size: 2 }),
    });
    try {
      await stage.run(direct);
      const a = (await openDataset(direct.outDir)).meta.files;
      assert.deepEqual(ds.meta.files, a);
    } finally {
      await direct.cleanup();
    }

    const again = await runStage(e);
    assert.equal(e.server.requests.length, 3, "markers: nothing fetched again");
    assert.ok(again.logs.some((l) => /already downloaded and extracted/.test(l)));
  });
});

Deno.test("coco download: a dropped connection resumes with Range: bytes=N-", async () => {
  await withServer(async (e) => {
    e.server.failOnce.add(TRAIN_ZIP);
    const { result, logs } = await runStage(e);
    assert.equal(result.metrics?.train, TRAIN_IDS.length - 2);
    const reqs = trainRequests(e.server);
    assert.equal(reqs.length, 2);
    assert.equal(reqs[0].range, null);
    const n = Number(/^bytes=(\d+)-$/.exec(reqs[1].range ?? "")?.[1]);
    assert.ok(n > 0, `resumed at ${reqs[1].range}`);
    assert.equal(reqs[1].status, 206);
    assert.ok(logs.some((l) => /interrupted .*retrying/.test(l)));
    const got = await Deno.readFile(join(e.root, "downloads", "train2017.zip"));
    assert.equal(sha256(got), e.checksums.train);
  });
});

Deno.test("coco download: aborted through ctx.signal, the next run resumes the .part", async () => {
  await withServer(async (e) => {
    const ac = new AbortController();
    e.server.failOnce.add(TRAIN_ZIP);
    e.server.onPartialSent = () => ac.abort(new Error("test abort"));
    await assert.rejects(runStage(e, { retries: 0 }, ac.signal), /test abort/);
    const part = join(e.root, "downloads", "train2017.zip.part");
    const have = (await Deno.stat(part)).size;
    assert.ok(have > 0);
    e.server.onPartialSent = undefined;
    const { result } = await runStage(e, { retries: 0 });
    assert.equal(result.metrics?.test, VAL_IDS.length);
    const last = trainRequests(e.server).at(-1)!;
    assert.equal(last.range, `bytes=${have}-`);
    assert.equal(last.status, 206);
    await assert.rejects(Deno.stat(part));
  });
});

Deno.test("coco download: a server that ignores Range (200) makes the download restart", async () => {
  await withServer(async (e) => {
    e.server.failOnce.add(TRAIN_ZIP);
    e.server.ignoreRange = true;
    const { result, logs } = await runStage(e);
    assert.equal(result.metrics?.train, TRAIN_IDS.length - 2);
    const reqs = trainRequests(e.server);
    assert.equal(reqs.length, 2);
    assert.match(reqs[1].range ?? "", /^bytes=[1-9]\d*-$/);
    assert.equal(reqs[1].status, 200);
    assert.ok(logs.some((l) => /ignored the Range request; starting over/.test(l)));
    const got = await Deno.readFile(join(e.root, "downloads", "train2017.zip"));
    assert.equal(sha256(got), e.checksums.train);
  });
});

Deno.test("coco download: a wrong checksum is a DataError and the file is moved aside", async () => {
  await withServer(async (e) => {
    const wrong = { ...e.checksums, val: `md5:${"0".repeat(32)}` };
    const dest = join(e.root, "downloads", "val2017.zip");
    await assert.rejects(runStage({ ...e, checksums: wrong }), (err: unknown) => {
      assert.ok(err instanceof DataError, String(err));
      assert.equal(err.file, dest);
      assert.match(err.message, /checksum mismatch: .* expected md5:0{32}; .*moved to .*\.corrupt/);
      return true;
    });
    await assert.rejects(Deno.stat(dest));
    await assert.rejects(Deno.stat(`${dest}.part`));
    await Deno.stat(`${dest}.corrupt`);
    await assert.rejects(Deno.stat(join(e.root, "val2017")), "nothing extracted");
    // With the right checksum the next run downloads it again and succeeds.
    const { result } = await runStage(e);
    assert.equal(result.metrics?.test, VAL_IDS.length);
  });
});

Deno.test("coco download: HTTP 404 names the URL; offline without download names the files", async () => {
  await withServer(async (e) => {
    await assert.rejects(
      runStage(e, { mirror: `${e.server.url}/nothing` }),
      /downloading http:\/\/127\.0\.0\.1:\d+\/nothing\/annotations\/annotations_trainval2017\.zip failed: HTTP 404/,
    );
    await assert.rejects(runStage(e, { download: false }), (err: unknown) => {
      assert.ok(err instanceof DataError);
      assert.match(err.message, /captions_train2017\.json: file not found; put MS-COCO 2017/);
      return true;
    });
  });
});

Deno.test("zip reader: stored, deflate and ZIP64 round trips; damage is a DataError", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kme-zip-" });
  try {
    const enc = new TextEncoder();
    const big = new Uint8Array(3 << 20).map((_, i) => (i * 31) % 251); // > one read chunk
    const files = [
      { name: "a/one.txt", data: enc.encode("hello") },
      { name: "a/b/big.bin", data: big },
      { name: "empty.txt", data: new Uint8Array(0) },
    ];
    for (const opts of [{}, { deflate: true }, { zip64: true }, { deflate: true, zip64: true }]) {
      const zip = join(dir, "t.zip");
      await Deno.writeFile(zip, makeZip(files, opts));
      const entries = await listZip(zip);
      assert.deepEqual(
        entries.map((x) => [x.name, x.size]),
        files.map((f) => [f.name, f.data.length]),
      );
      const out = join(dir, `out-${JSON.stringify(opts).replace(/\W/g, "")}`);
      const r = await extractZip(zip, out, entries);
      assert.equal(r.written, 3);
      for (const f of files) assert.deepEqual(await Deno.readFile(join(out, f.name)), f.data);
      assert.equal((await extractZip(zip, out, entries)).skipped, 3, "existing files are kept");
    }
    // A flipped byte in deflated data: CRC or inflate error, naming the archive.
    const zip = join(dir, "bad.zip");
    const bytes = makeZip([{ name: "x.bin", data: big }], { deflate: true });
    bytes[1000] ^= 0xff;
    await Deno.writeFile(zip, bytes);
    await assert.rejects(extractZip(zip, join(dir, "bad"), await listZip(zip)), (err: unknown) => {
      assert.ok(err instanceof DataError);
      assert.equal(err.file, zip);
      assert.match(
        err.message,
        /entry x\.bin: (CRC-32 mismatch|corrupt compressed data|\d+ bytes)/,
      );
      return true;
    });
    await assert.rejects(Deno.stat(join(dir, "bad", "x.bin")), "no partial file left");
    // Truncated archive (no end record) and zip slip.
    await Deno.writeFile(zip, bytes.subarray(0, bytes.length - 30));
    await assert.rejects(listZip(zip), /not a valid ZIP archive/);
    await Deno.writeFile(zip, makeZip([{ name: "../evil.txt", data: enc.encode("x") }]));
    await assert.rejects(
      extractZip(zip, join(dir, "slip"), await listZip(zip)),
      /unsafe entry name/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const hasZipTool = await new Deno.Command("zip", { args: ["-v"], stdout: "null", stderr: "null" })
  .output().then((o) => o.success, () => false);

Deno.test({
  name: "zip reader: archives made by Info-ZIP `zip` (deflate, and forced ZIP64 with -fz)",
  ignore: !hasZipTool,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "kme-infozip-" });
    try {
      await Deno.mkdir(join(dir, "src", "train2017"), { recursive: true });
      const data = new Uint8Array(200_000).map((_, i) => (i * i) % 253);
      await Deno.writeFile(join(dir, "src", "train2017", "000000000009.jpg"), data);
      await Deno.writeTextFile(join(dir, "src", "train2017", "note.txt"), "caption ".repeat(500));
      for (const extra of [[], ["-fz"]]) {
        const zip = join(dir, `t${extra.length}.zip`);
        const r = await new Deno.Command("zip", {
          args: ["-q", "-r", ...extra, zip, "train2017"],
          cwd: join(dir, "src"),
        }).output();
        assert.ok(r.success);
        const out = join(dir, `out${extra.length}`);
        const entries = await listZip(zip);
        assert.ok(entries.some((x) => x.isDirectory));
        await extractZip(zip, out, entries);
        assert.deepEqual(await Deno.readFile(join(out, "train2017", "000000000009.jpg")), data);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("zip entry names can never escape the target folder", () => {
  const dest = "/data/coco";
  for (
    const name of ["../x", "a/../../x", "a\\..\\..\\x", "/etc/passwd", "C:\\x", "c:x", "..", "a/.."]
  ) {
    assert.throws(() => entryPath(dest, name, "a.zip"), /unsafe entry name/, name);
  }
  for (const [name, want] of [["a/b.jpg", "a/b.jpg"], ["./a//b", "a/b"], ["a\\b", "a/b"]]) {
    assert.equal(entryPath(dest, name, "a.zip"), `${dest}/${want}`);
  }
});
