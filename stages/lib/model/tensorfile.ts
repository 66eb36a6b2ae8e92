/**
 * Tensor bundles on disk: a JSON header plus one raw little-endian float32 binary.
 *
 * The header lists every tensor as {name, shape, offset, length} (offset and length in float32
 * elements) together with the binary's file name, byte size and SHA-256, so a header never
 * silently pairs with the wrong binary. Every file is written to a temporary name, fsynced and
 * renamed into place (atomic on POSIX file systems).
 */
import { createHash } from "node:crypto";
import { basename, dirname, join } from "node:path";

export interface TensorEntry {
  name: string;
  shape: number[];
  offset: number;
  length: number;
}

export interface BundleHeader {
  format: string;
  version: number;
  binary: { file: string; bytes: number; sha256: string; dtype: "float32"; byteOrder: "little" };
  tensors: TensorEntry[];
}

export interface NamedTensor {
  name: string;
  shape: number[];
  values: Float32Array;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function assertLittleEndian() {
  if (!LITTLE_ENDIAN) {
    throw new Error("tensor files are little-endian; big-endian hosts are unsupported");
  }
}

/** Writes `data` to `path` atomically (temp file in the same folder, fsync, rename). */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${Deno.pid}-${crypto.randomUUID()}`);
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const f = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    let off = 0;
    while (off < bytes.length) off += await f.write(bytes.subarray(off));
    await f.sync();
  } finally {
    f.close();
  }
  try {
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  // Make the rename itself durable where the platform allows opening directories.
  try {
    const d = await Deno.open(dirname(path), { read: true });
    try {
      await d.sync();
    } finally {
      d.close();
    }
  } catch { /* not supported (e.g. Windows) */ }
}

/** Concatenates tensors into one binary and builds their index. */
export function packTensors(tensors: NamedTensor[]): { bytes: Uint8Array; index: TensorEntry[] } {
  assertLittleEndian();
  const total = tensors.reduce((a, t) => a + t.values.length, 0);
  const all = new Float32Array(total);
  const index: TensorEntry[] = [];
  let off = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.values.length) {
      throw new Error(`tensor ${t.name}: shape ${t.shape} vs ${t.values.length} values`);
    }
    all.set(t.values, off);
    index.push({ name: t.name, shape: t.shape, offset: off, length: n });
    off += n;
  }
  return { bytes: new Uint8Array(all.buffer), index };
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * Writes `<dir>/<binFile>` then `<dir>/<headerFile>` (header last: it is the commit point).
 * `extra` fields are merged into the header JSON.
 */
export async function writeBundle(
  dir: string,
  headerFile: string,
  binFile: string,
  format: string,
  tensors: NamedTensor[],
  extra: Record<string, unknown>,
): Promise<BundleHeader & Record<string, unknown>> {
  const { bytes, index } = packTensors(tensors);
  await writeFileAtomic(join(dir, binFile), bytes);
  const header = {
    format,
    version: 1,
    ...extra,
    binary: {
      file: binFile,
      bytes: bytes.length,
      sha256: sha256Hex(bytes),
      dtype: "float32" as const,
      byteOrder: "little" as const,
    },
    tensors: index,
  };
  await writeFileAtomic(join(dir, headerFile), JSON.stringify(header, null, 1) + "\n");
  return header;
}

/** Reads a header and its binary, verifying size and SHA-256. */
export async function readBundle<H extends BundleHeader>(
  dir: string,
  headerFile: string,
  format: string,
): Promise<{ header: H; tensors: Map<string, NamedTensor> }> {
  assertLittleEndian();
  const header = JSON.parse(await Deno.readTextFile(join(dir, headerFile))) as H;
  if (header.format !== format) {
    throw new Error(`${join(dir, headerFile)}: format '${header.format}', expected '${format}'`);
  }
  const bytes = await Deno.readFile(join(dir, header.binary.file));
  if (bytes.length !== header.binary.bytes || sha256Hex(bytes) !== header.binary.sha256) {
    throw new Error(`${join(dir, header.binary.file)}: size or SHA-256 does not match its header`);
  }
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  const all = new Float32Array(aligned.buffer, aligned.byteOffset, aligned.length / 4);
  const tensors = new Map<string, NamedTensor>();
  for (const e of header.tensors) {
    tensors.set(e.name, {
      name: e.name,
      shape: e.shape,
      values: all.slice(e.offset, e.offset + e.length),
    });
  }
  return { header, tensors };
}
