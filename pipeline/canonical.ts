/** Canonical JSON (sorted keys, no whitespace) and its SHA-256: the basis of every cache key. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Serialises with object keys sorted so that equal values give equal bytes. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = sortKeys(v);
    }
    return out;
  }
  if (typeof value === "number" && !Number.isFinite(value)) {
    throw new TypeError(`cannot hash non-finite number ${value}`);
  }
  return value;
}

const utf8 = new TextEncoder();

/**
 * SHA-256, lowercase hex, by the runtime's WebCrypto. Native code matters here: a cached rerun
 * hashes ~300 KB (keys, plan checks), which JavaScript does ~20x slower in a fresh process,
 * before the JIT warms up (@noble/hashes: 16 ms for 15 keys of 8 KB against under 1 ms), and
 * node:crypto would start Deno's Node-compatibility layer (~15 ms). Files of any size are
 * hashed in hash.ts, streamed.
 */
export async function sha256Hex(data: string | Uint8Array<ArrayBuffer>): Promise<string> {
  const bytes = typeof data === "string" ? utf8.encode(data) : data;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function hashJson(value: unknown): Promise<string> {
  return sha256Hex(canonicalJson(value));
}
