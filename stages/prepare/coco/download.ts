/**
 * Resumable HTTP download with checksum verification: bytes go to `<file>.part`; a retry or a
 * later run continues it with `Range: bytes=N-` (a server that answers 200 instead of 206 makes
 * it start over). The finished file is verified against `md5:`/`sha1:`/`sha256:` hex; a
 * mismatch moves it aside to `<file>.corrupt` and raises a DataError naming it.
 */
import { createHash } from "node:crypto";
import { DataError } from "../../lib/dataset/errors.ts";
import type { Progress } from "../../../pipeline/stage.ts";

export interface DownloadOptions {
  url: string;
  dest: string;
  /** `algo:hex` */
  checksum: string;
  retries: number;
  signal: AbortSignal;
  progress: Progress;
  log(message: string): void;
  /** Delay before retry `attempt` (1-based), in ms. */
  retryDelay?: (attempt: number) => number;
}

const CHUNK = 4 << 20;

const defaultDelay = (attempt: number) =>
  attempt === 1 ? 0 : Math.min(30_000, 1000 * 2 ** (attempt - 2));

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    const st = await Deno.stat(path);
    return st.isFile ? st.size : undefined;
  } catch {
    return undefined;
  }
}

/** `algo:hex` digest of a file, streamed. */
export async function fileChecksum(
  path: string,
  algo: string,
  progress?: Progress,
  signal?: AbortSignal,
): Promise<string> {
  const h = createHash(algo);
  using f = await Deno.open(path, { read: true });
  const total = (await f.stat()).size;
  progress?.start(total, `verify ${path.split("/").pop()}`);
  const buf = new Uint8Array(CHUNK);
  let done = 0;
  for (;;) {
    signal?.throwIfAborted();
    const n = await f.read(buf);
    if (n === null) break;
    h.update(buf.subarray(0, n));
    done += n;
    progress?.update(done);
  }
  progress?.stop();
  return `${algo}:${h.digest("hex")}`;
}

class HttpStatusError extends Error {}

/**
 * Makes `dest` a verified copy of `url`. An existing `dest` is verified first (and moved aside
 * and fetched again when it does not match). Returns the number of bytes fetched this call.
 */
export async function download(o: DownloadOptions): Promise<number> {
  const [algo] = o.checksum.split(":");
  const part = `${o.dest}.part`;
  if ((await sizeOf(o.dest)) !== undefined) {
    const got = await fileChecksum(o.dest, algo, o.progress, o.signal);
    if (got === o.checksum) return 0;
    await Deno.rename(o.dest, `${o.dest}.corrupt`);
    o.log(`${o.dest}: checksum ${got}, expected ${o.checksum}: moved to ${o.dest}.corrupt`);
  }
  const delay = o.retryDelay ?? defaultDelay;
  let fetched = 0;
  for (let attempt = 0;; attempt++) {
    try {
      fetched += await fetchOnce(o, part);
      break;
    } catch (err) {
      if (o.signal.aborted) throw o.signal.reason ?? err;
      const msg = (err as Error).message;
      if (err instanceof HttpStatusError || attempt >= o.retries) {
        const have = (await sizeOf(part)) ?? 0;
        throw new Error(
          `downloading ${o.url} failed${
            err instanceof HttpStatusError ? "" : ` after ${attempt + 1} attempts`
          }: ${msg}` +
            (have > 0 ? `; ${have} bytes are kept in ${part} and the next run resumes them` : ""),
          { cause: err },
        );
      }
      const wait = delay(attempt + 1);
      o.log(`download of ${o.url} interrupted (${msg}); retrying in ${wait / 1000} s`);
      if (wait > 0) await sleep(wait, o.signal);
    }
  }
  const got = await fileChecksum(part, algo, o.progress, o.signal);
  if (got !== o.checksum) {
    const aside = `${o.dest}.corrupt`;
    await Deno.rename(part, aside);
    throw new DataError(
      o.dest,
      `checksum mismatch: the download of ${o.url} has ${got}, expected ${o.checksum}; the ` +
        `file was moved to ${aside} (the next run downloads it again; set \`checksums\` if ` +
        `the mirror serves other bytes)`,
    );
  }
  await Deno.rename(part, o.dest);
  return fetched;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** One HTTP request: continues `part` (Range) or restarts it. Returns the bytes received. */
async function fetchOnce(o: DownloadOptions, part: string): Promise<number> {
  let have = (await sizeOf(part)) ?? 0;
  const headers: Record<string, string> = { "accept-encoding": "identity" };
  if (have > 0) headers["range"] = `bytes=${have}-`;
  const res = await fetch(o.url, { headers, signal: o.signal });
  try {
    if (res.status === 416 && have > 0) {
      // Range not satisfiable: the part is complete already, or longer than the file.
      const total = Number(/\/(\d+)$/.exec(res.headers.get("content-range") ?? "")?.[1]);
      if (total === have) return 0;
      await Deno.truncate(part, 0);
      throw new Error(`the server refused to resume (HTTP 416); starting over`);
    }
    let append = false;
    if (res.status === 206) {
      const m = /^bytes (\d+)-/.exec(res.headers.get("content-range") ?? "");
      if (!m || Number(m[1]) !== have) {
        if (have > 0) await Deno.truncate(part, 0);
        throw new Error(`the server resumed at the wrong offset (${m?.[1]}); starting over`);
      }
      append = have > 0;
    } else if (res.status === 200) {
      if (have > 0) o.log(`${o.url}: the server ignored the Range request; starting over`);
      have = 0;
    } else {
      throw new HttpStatusError(`HTTP ${res.status} ${res.statusText}`);
    }
    const length = Number(res.headers.get("content-length") ?? NaN);
    const total = Number.isFinite(length) ? have + length : 0;
    const label = `download ${o.url.split("/").pop()}`;
    o.progress.start(total, label);
    using f = await Deno.open(part, {
      write: true,
      create: true,
      append,
      truncate: !append,
    });
    let got = 0;
    const started = Date.now();
    for await (const chunk of res.body!) {
      let off = 0;
      while (off < chunk.length) off += await f.write(chunk.subarray(off));
      got += chunk.length;
      const s = (Date.now() - started) / 1000;
      o.progress.update(have + got, { "MiB/s": s > 0 ? (got / 2 ** 20 / s).toFixed(1) : "-" });
    }
    o.progress.stop();
    if (total > 0 && have + got !== total) {
      throw new Error(`connection closed after ${have + got} of ${total} bytes`);
    }
    return got;
  } finally {
    if (!res.bodyUsed) await res.body?.cancel().catch(() => {});
  }
}
