/**
 * A minimal, streaming ZIP reader: central directory (with ZIP64), stored and deflate entries
 * (deflate through DecompressionStream("deflate-raw")), CRC-32 and size checks. No npm
 * package and no `unzip` binary. Memory stays bounded by one read chunk per entry.
 */
import { crc32 } from "node:zlib";
import { dirname, join } from "node:path";
import { DataError } from "../../lib/dataset/errors.ts";

export interface ZipEntry {
  name: string;
  method: number;
  crc32: number;
  compressedSize: number;
  size: number;
  /** Offset of the local file header. */
  offset: number;
  isDirectory: boolean;
}

const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;
const CHUNK = 1 << 20;

async function readAt(f: Deno.FsFile, offset: number, length: number, path: string) {
  const buf = new Uint8Array(length);
  await f.seek(offset, Deno.SeekMode.Start);
  let got = 0;
  while (got < length) {
    const n = await f.read(buf.subarray(got));
    if (n === null) throw new DataError(path, "truncated ZIP archive (unexpected end of file)");
    got += n;
  }
  return buf;
}

function u64(v: DataView, off: number, path: string): number {
  const big = v.getBigUint64(off, true);
  if (big > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new DataError(path, `not a valid ZIP archive: a 64-bit size or offset of ${big}`);
  }
  return Number(big);
}

/** Lists the entries of a ZIP archive from its central directory. */
export async function listZip(path: string): Promise<ZipEntry[]> {
  using f = await Deno.open(path, { read: true });
  const size = (await f.stat()).size;
  const bad = (why: string) => new DataError(path, `not a valid ZIP archive: ${why}`);
  if (size < 22) throw bad("too short");
  const tailLen = Math.min(size, 22 + 0xffff + 20);
  const tail = await readAt(f, size - tailLen, tailLen, path);
  const tv = new DataView(tail.buffer);
  let eocd = -1;
  for (let i = tailLen - 22; i >= 0; i--) {
    if (tv.getUint32(i, true) === SIG_EOCD && i + 22 + tv.getUint16(i + 20, true) <= tailLen) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw bad("no end of central directory record (truncated download?)");
  let count = tv.getUint16(eocd + 10, true);
  let cdSize = tv.getUint32(eocd + 12, true);
  let cdOffset = tv.getUint32(eocd + 16, true);
  if (eocd >= 20 && tv.getUint32(eocd - 20, true) === SIG_EOCD64_LOCATOR) {
    const recOffset = u64(tv, eocd - 20 + 8, path);
    if (recOffset + 56 > size) throw bad("ZIP64 end record outside the file");
    const rec = await readAt(f, recOffset, 56, path);
    const rv = new DataView(rec.buffer);
    if (rv.getUint32(0, true) !== SIG_EOCD64) throw bad("bad ZIP64 end record");
    count = u64(rv, 32, path);
    cdSize = u64(rv, 40, path);
    cdOffset = u64(rv, 48, path);
  }
  if (cdOffset + cdSize > size) throw bad("central directory outside the file (truncated?)");
  const cd = await readAt(f, cdOffset, cdSize, path);
  const v = new DataView(cd.buffer);
  const utf8 = new TextDecoder("utf-8");
  const latin1 = new TextDecoder("latin1");
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let k = 0; k < count; k++) {
    if (p + 46 > cdSize || v.getUint32(p, true) !== SIG_CENTRAL) {
      throw bad(`central directory entry ${k} is damaged`);
    }
    const flags = v.getUint16(p + 8, true);
    const method = v.getUint16(p + 10, true);
    const crc = v.getUint32(p + 16, true);
    let compressedSize = v.getUint32(p + 20, true);
    let uncompressed = v.getUint32(p + 24, true);
    const nameLen = v.getUint16(p + 28, true);
    const extraLen = v.getUint16(p + 30, true);
    const commentLen = v.getUint16(p + 32, true);
    let offset = v.getUint32(p + 42, true);
    // The name, extra fields and comment must lie inside the central directory (a damaged
    // length would otherwise read past it: found by tests/data_fuzz.test.ts).
    if (p + 46 + nameLen + extraLen + commentLen > cdSize) {
      throw bad(`central directory entry ${k} is damaged (its fields run past the directory)`);
    }
    const nameBytes = cd.subarray(p + 46, p + 46 + nameLen);
    const name = (flags & 0x800 ? utf8 : latin1).decode(nameBytes);
    // ZIP64 extended information: present values replace the 0xffffffff placeholders, in order.
    let e = p + 46 + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = v.getUint16(e, true);
      const len = v.getUint16(e + 2, true);
      if (e + 4 + len > extraEnd) throw bad(`central directory entry ${k}: damaged extra field`);
      if (id === 0x0001) {
        let q = e + 4;
        const need = [uncompressed, compressedSize, offset].filter((x) => x === 0xffffffff).length;
        if (8 * need > len) throw bad(`entry ${name}: ZIP64 field too short`);
        if (uncompressed === 0xffffffff) (uncompressed = u64(v, q, path)), (q += 8);
        if (compressedSize === 0xffffffff) (compressedSize = u64(v, q, path)), (q += 8);
        if (offset === 0xffffffff) offset = u64(v, q, path);
      }
      e += 4 + len;
    }
    if (flags & 0x1) throw bad(`entry ${name} is encrypted`);
    entries.push({
      name,
      method,
      crc32: crc,
      compressedSize,
      size: uncompressed,
      offset,
      isDirectory: name.endsWith("/"),
    });
    p = extraEnd + commentLen;
  }
  return entries;
}

/** Entry name -> a path under `dest`, refusing absolute names and `..` (zip slip). */
export function entryPath(dest: string, name: string, archive: string): string {
  const parts = name.split(/[/\\]/).filter((s) => s !== "" && s !== ".");
  if (name.startsWith("/") || /^[a-zA-Z]:/.test(name) || parts.includes("..")) {
    throw new DataError(archive, `unsafe entry name ${JSON.stringify(name)}`);
  }
  // No file system takes a NUL in a name (a damaged archive: found by tests/data_fuzz.test.ts).
  if (name.includes("\0")) {
    throw new DataError(archive, `entry name ${JSON.stringify(name)} contains a NUL byte`);
  }
  return join(dest, ...parts);
}

/**
 * Extracts `entries` of the archive at `path` into `dest` (each file through `<name>.part` and a
 * rename, so a file that exists is complete). Files that already exist with the entry's size
 * are skipped, so an interrupted extraction resumes. CRC-32 and sizes are checked.
 */
export async function extractZip(
  path: string,
  dest: string,
  entries: ZipEntry[],
  onEntry?: (done: number) => void,
  signal?: AbortSignal,
): Promise<{ written: number; skipped: number }> {
  using f = await Deno.open(path, { read: true });
  const archiveSize = (await f.stat()).size;
  let written = 0;
  let skipped = 0;
  const sorted = [...entries].sort((a, b) => a.offset - b.offset);
  const made = new Set<string>();
  const mkdir = async (d: string) => {
    if (made.has(d)) return;
    await Deno.mkdir(d, { recursive: true });
    made.add(d);
  };
  for (let k = 0; k < sorted.length; k++) {
    signal?.throwIfAborted();
    const e = sorted[k];
    const out = entryPath(dest, e.name, path);
    if (e.isDirectory) {
      await mkdir(out);
      onEntry?.(k + 1);
      continue;
    }
    const existing = await Deno.stat(out).catch(() => null);
    if (existing?.isFile && existing.size === e.size) {
      skipped++;
      onEntry?.(k + 1);
      continue;
    }
    if (e.method !== 0 && e.method !== 8) {
      throw new DataError(path, `entry ${e.name}: unsupported compression method ${e.method}`);
    }
    const local = await readAt(f, e.offset, 30, path);
    const lv = new DataView(local.buffer);
    if (lv.getUint32(0, true) !== SIG_LOCAL) {
      throw new DataError(path, `entry ${e.name}: bad local header (damaged archive)`);
    }
    const dataStart = e.offset + 30 + lv.getUint16(26, true) + lv.getUint16(28, true);
    if (dataStart + e.compressedSize > archiveSize) {
      throw new DataError(path, `entry ${e.name}: data runs past the end (truncated archive)`);
    }
    await mkdir(dirname(out));
    const part = `${out}.part`;
    try {
      await writeEntry(f, path, e, dataStart, part);
      await Deno.rename(part, out);
    } catch (err) {
      await Deno.remove(part).catch(() => {});
      throw err;
    }
    written++;
    onEntry?.(k + 1);
  }
  return { written, skipped };
}

async function writeEntry(
  f: Deno.FsFile,
  path: string,
  e: ZipEntry,
  dataStart: number,
  part: string,
): Promise<void> {
  let pos = dataStart;
  const end = dataStart + e.compressedSize;
  const compressed = new ReadableStream<BufferSource>({
    async pull(controller) {
      if (pos >= end) return controller.close();
      const n = Math.min(CHUNK, end - pos);
      controller.enqueue(await readAt(f, pos, n, path));
      pos += n;
    },
  });
  const stream: ReadableStream<Uint8Array> = e.method === 8
    ? compressed.pipeThrough(new DecompressionStream("deflate-raw"))
    : (compressed as ReadableStream<Uint8Array>);
  using out = await Deno.open(part, { write: true, create: true, truncate: true });
  let crc = 0;
  let size = 0;
  try {
    for await (const chunk of stream) {
      crc = crc32(chunk, crc);
      size += chunk.length;
      if (size > e.size) break;
      let off = 0;
      while (off < chunk.length) off += await out.write(chunk.subarray(off));
    }
  } catch (err) {
    throw new DataError(
      path,
      `entry ${e.name}: corrupt compressed data (${(err as Error).message})`,
      { cause: err },
    );
  }
  if (size !== e.size) {
    throw new DataError(path, `entry ${e.name}: ${size} bytes, the directory says ${e.size}`);
  }
  if (crc >>> 0 !== e.crc32) {
    throw new DataError(path, `entry ${e.name}: CRC-32 mismatch (damaged archive)`);
  }
}
