/**
 * File URL <-> path, for POSIX paths (the engine is POSIX-only: flock, rename(2) semantics).
 *
 * Written out rather than taken from node:url because loading Deno's node:url polyfill costs
 * ~17 ms, a tenth of a no-op rerun (profile of `kme run experiments/tiny.yaml`, all cached, with
 * `deno run --cpu-prof`). The rules are those of Deno's std/path posix `fromFileUrl` and
 * `toFileUrl` (JSR, unreachable here); tests/engine_units.test.ts checks them against node:url.
 */

/** The path of a `file:` URL (percent-decoded). */
export function fromFileUrl(u: string | URL): string {
  const url = u instanceof URL ? u : new URL(u);
  if (url.protocol !== "file:") throw new TypeError(`not a file URL: ${url.href}`);
  return decodeURIComponent(url.pathname.replace(/%(?![0-9A-Fa-f]{2})/g, "%25"));
}

const WHITESPACE: Record<string, string> = {
  "\t": "%09",
  "\n": "%0A",
  "\v": "%0B",
  "\f": "%0C",
  "\r": "%0D",
};

/** The `file:` URL of an absolute path. */
export function toFileUrl(path: string): URL {
  if (!path.startsWith("/")) throw new TypeError(`not an absolute path: ${path}`);
  const url = new URL("file:///");
  url.pathname = path.replace(/%/g, "%25").replace(/\\/g, "%5C")
    .replace(/[\t\n\v\f\r]/g, (c) => WHITESPACE[c]);
  return url;
}
