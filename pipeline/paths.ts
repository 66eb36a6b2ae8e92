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

/*
 * POSIX path arithmetic: the five functions of node:path the engine and the CLI use, with
 * node:path's results (tests/engine_units.test.ts checks them against it on random paths).
 * Written out for the same reason as the URL functions above: importing node:path starts
 * Deno's Node-compatibility layer, about 15 ms, which is a third of what a cached rerun may
 * cost above Deno's own start-up (issue 16); @std/path is on JSR, which is unreachable here.
 */

/** `path` with "." segments, repeated slashes and resolvable ".." removed; "." if empty. */
function normalize(path: string): string {
  const absolute = path.startsWith("/");
  const out: string[] = [];
  for (const seg of path.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg !== "..") out.push(seg);
    else if (out.length && out[out.length - 1] !== "..") out.pop();
    else if (!absolute) out.push("..");
  }
  const body = out.join("/");
  if (absolute) return "/" + body;
  return body || ".";
}

export function isAbsolute(path: string): boolean {
  return path.startsWith("/");
}

/** The segments joined with "/" and normalised ("." when all are empty). */
export function join(...paths: string[]): string {
  const joined = paths.filter((p) => p !== "").join("/");
  if (joined === "") return ".";
  const n = normalize(joined);
  // node:path keeps one trailing slash ("a/b/" stays a folder).
  return joined.endsWith("/") && !n.endsWith("/") ? `${n}/` : n;
}

/** The absolute path the segments name, right to left, from the working folder. */
export function resolve(...paths: string[]): string {
  let path = "";
  for (let i = paths.length - 1; i >= 0 && !path.startsWith("/"); i--) {
    if (paths[i] !== "") path = path ? `${paths[i]}/${path}` : paths[i];
  }
  if (!path.startsWith("/")) path = path ? `${Deno.cwd()}/${path}` : Deno.cwd();
  return normalize(path);
}

/** The folder part of `path` (node:path's rules, trailing slashes ignored). */
export function dirname(path: string): string {
  if (path === "") return ".";
  const rooted = path.startsWith("/");
  let end = -1;
  let inTrailingSlashes = true;
  for (let i = path.length - 1; i >= 1; i--) {
    if (path[i] === "/") {
      if (!inTrailingSlashes) {
        end = i;
        break;
      }
    } else inTrailingSlashes = false;
  }
  if (end === -1) return rooted ? "/" : ".";
  if (rooted && end === 1) return "//";
  return path.slice(0, end);
}

/** The path from `from` to `to` ("" when they are the same place). */
export function relative(from: string, to: string): string {
  const a = resolve(from).split("/").filter(Boolean);
  const b = resolve(to).split("/").filter(Boolean);
  let common = 0;
  while (common < a.length && common < b.length && a[common] === b[common]) common++;
  return [...a.slice(common).map(() => ".."), ...b.slice(common)].join("/");
}
