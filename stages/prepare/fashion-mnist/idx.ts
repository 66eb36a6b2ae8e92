/**
 * Reader of (gzipped) IDX files, the MNIST family's format: a 4-byte magic (0, 0, type code,
 * number of dimensions), one big-endian uint32 per dimension, then the data. Only unsigned
 * bytes (type 0x08) are supported. Every problem is a DataError naming the file.
 */
import { gunzipSync } from "node:zlib";
import { DataError, isNotFound } from "../../lib/dataset/errors.ts";

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

/** Reads an IDX file (gunzipping when the name ends in .gz) and checks its dimensions count. */
export async function readIdx(path: string, ndim: number, missingHint = ""): Promise<IdxArray> {
  let raw: Uint8Array;
  try {
    raw = await Deno.readFile(path);
  } catch (err) {
    if (isNotFound(err)) throw new DataError(path, `missing${missingHint}`, { cause: err });
    throw new DataError(path, `cannot read: ${(err as Error).message}`, { cause: err });
  }
  let bytes: Uint8Array = raw;
  if (path.endsWith(".gz")) {
    try {
      const out = gunzipSync(raw);
      bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    } catch (err) {
      throw new DataError(
        path,
        `corrupt gzip data (${(err as Error).message}); the file is damaged or truncated`,
        { cause: err },
      );
    }
  }
  return parseIdx(path, bytes, ndim);
}

export function parseIdx(path: string, bytes: Uint8Array, ndim: number): IdxArray {
  if (bytes.length < 4) throw new DataError(path, "truncated: shorter than the IDX header");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  if (bytes[0] !== 0 || bytes[1] !== 0 || bytes[2] !== 0x08 || bytes[3] !== ndim) {
    throw new DataError(
      path,
      `bad IDX magic 0x${magic.toString(16).padStart(8, "0")}, expected 0x0000080${ndim} ` +
        `(unsigned bytes, ${ndim} dimension${ndim > 1 ? "s" : ""})`,
    );
  }
  const header = 4 + 4 * ndim;
  if (bytes.length < header) throw new DataError(path, "truncated: incomplete IDX header");
  const dims: number[] = [];
  for (let i = 0; i < ndim; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const expected = dims.reduce((a, b) => a * b, 1);
  const found = bytes.length - header;
  if (found < expected) {
    throw new DataError(
      path,
      `truncated: dimensions ${dims.join("x")} need ${expected} data bytes, found ${found}`,
    );
  }
  if (found > expected) {
    throw new DataError(
      path,
      `corrupt: ${found - expected} unexpected bytes after the ${dims.join("x")} data`,
    );
  }
  return { dims, data: bytes.subarray(header) };
}
