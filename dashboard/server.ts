/**
 * `kme ui`: a read-only web dashboard over a store, on Deno.serve, bound to 127.0.0.1 unless
 * told otherwise. Every page is built on the server from the store; /app.js (same origin, no
 * external asset) polls the JSON API to keep live parts current while a stage trains.
 *
 * Safety, as a local tool that reads a folder must be:
 * - GET and HEAD only; nothing in the store is written, locked or moved;
 * - URLs never become paths: a run must be one the store lists, a key 64 hex digits that
 *   names an entry or scratch folder (dashboard/data.ts); anything else is 404;
 * - on a loopback address, a request whose Host is not that address is refused (403), so a web
 *   page elsewhere cannot reach the store through DNS rebinding;
 * - a Content-Security-Policy that lets pages load only this server's script and style.
 */
import { buildReport } from "../report/mod.ts";
import type { Store } from "../pipeline/store.ts";
import {
  comparableAxes,
  compare,
  findRun,
  fullKey,
  keyPlace,
  listAttempts,
  listRuns,
  logTail,
  trainPoints,
} from "./data.ts";
import { attemptCurves, comparisonPlot, runCurves } from "./figures.ts";
import {
  attemptPage,
  attemptsHtml,
  figuresHtml,
  notFoundPage,
  runPage,
  runsPage,
  STYLE,
} from "./pages.ts";

const APP_JS = new URL("./app.js", import.meta.url);

const CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
  "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; " +
  "frame-ancestors 'none'";
/** The report is one self-contained page: no script at all. */
const REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

function reply(body: string, type: string, status = 200, csp = CSP): Response {
  return new Response(body, {
    status,
    headers: {
      "content-type": `${type}; charset=utf-8`,
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      "content-security-policy": csp,
    },
  });
}

const html = (body: string, status = 200) => reply(body, "text/html", status);
const json = (v: unknown) => reply(JSON.stringify(v), "application/json");
const notFound = (what: string) => html(notFoundPage(what), 404);

/** The path's segments, decoded; undefined when one is not valid percent-encoding. */
function segments(pathname: string): string[] | undefined {
  try {
    return pathname.split("/").slice(1).map(decodeURIComponent);
  } catch {
    return undefined;
  }
}

/** Answers one request; exported for tests that need no socket. */
export async function handle(store: Store, req: Request): Promise<Response> {
  if (req.method !== "GET" && req.method !== "HEAD") {
    return new Response("read-only: GET and HEAD only\n", {
      status: 405,
      headers: { allow: "GET, HEAD" },
    });
  }
  const url = new URL(req.url);
  const seg = segments(url.pathname);
  if (!seg) return reply("bad percent-encoding in the path\n", "text/plain", 400);
  const [head, ...rest] = seg;

  if (seg.length === 1 && head === "") {
    return html(runsPage(await listRuns(store), await listAttempts(store)));
  }
  if (seg.length === 1 && head === "app.js") {
    return reply(await Deno.readTextFile(APP_JS), "text/javascript");
  }
  if (seg.length === 1 && head === "style.css") return reply(STYLE, "text/css");

  if (head === "run" && (rest.length === 2 || (rest.length === 3 && rest[2] === "report"))) {
    const rec = await findRun(store, rest[0], rest[1]);
    if (!rec) return notFound(`no run ${rest[0]}/${rest[1]} in this store`);
    if (rest[2] === "report") {
      return reply((await buildReport(store, [rec])).html, "text/html", 200, REPORT_CSP);
    }
    const axes = comparableAxes(rec);
    let by = url.searchParams.get("by") ?? undefined;
    let a = url.searchParams.get("a") ?? undefined, b = url.searchParams.get("b") ?? undefined;
    // Without a choice: KME-CLIP against CLIP when the run has both (what the project is
    // for), else the first axis that takes exactly two values.
    if (!by) {
      const sims = axes.get("similarity") ?? [];
      if (sims.includes("clip") && sims.includes("kme")) [by, a, b] = ["similarity", "clip", "kme"];
      else {
        const two = [...axes].find(([, vs]) => vs.length === 2);
        if (two) [by, a, b] = [two[0], two[1][0], two[1][1]];
      }
    }
    const values = by ? axes.get(by) : undefined;
    const chosen = by && values && a && b && a !== b && values.includes(a) && values.includes(b);
    const cmp = chosen ? await compare(store, rec, by!, a!, b!) : undefined;
    const plot = cmp ? await comparisonPlot(cmp) : "";
    return html(runPage(rec, await runCurves(store, rec), axes, cmp, plot));
  }

  if ((head === "attempt" || head === "log") && rest.length === 1) {
    const key = await fullKey(store, rest[0]);
    if (key && key !== rest[0]) {
      return new Response(null, { status: 302, headers: { location: `/${head}/${key}` } });
    }
    const place = key ? await keyPlace(store, key) : undefined;
    if (!place) return notFound(`no entry or unfinished attempt ${rest[0].slice(0, 80)}`);
    if (head === "log") {
      return reply((await logTail(place.log)) ?? "(no log yet)\n", "text/plain");
    }
    const attempt = (await listAttempts(store)).find((x) => x.key === rest[0]);
    return html(attemptPage(rest[0], attempt, place.published));
  }

  if (head === "api") {
    if (rest.length === 1 && rest[0] === "runs") return json(await listRuns(store));
    if (rest.length === 1 && rest[0] === "attempts") return json(await listAttempts(store));
    if (rest.length === 1 && rest[0] === "attempts.html") {
      return reply(attemptsHtml(await listAttempts(store)), "text/html");
    }
    if (rest.length === 2 && rest[0] === "curve") {
      const key = rest[1];
      const place = await keyPlace(store, key);
      if (!place) return reply(`no entry or unfinished attempt\n`, "text/plain", 404);
      const points = (await trainPoints(place.trainLog)) ?? [];
      // Published: the manifest names the stage (its similarity is in the run's page).
      const attempt = place.published
        ? { stage: (await store.readManifest(key))?.stage, similarity: undefined }
        : (await listAttempts(store)).find((x) => x.key === key);
      const figs = points.length
        ? await attemptCurves(attempt?.stage ?? key.slice(0, 12), attempt?.similarity, points)
        : [];
      return json({
        key,
        published: place.published,
        points: points.length,
        lastStep: points.at(-1)?.step,
        html: figs.length ? figuresHtml(figs) : `<p class="muted">No training log yet.</p>`,
      });
    }
  }
  return notFound(`nothing at ${url.pathname.slice(0, 200)}`);
}

export interface DashboardOptions {
  hostname: string;
  port: number;
  signal?: AbortSignal;
  onListen?(url: string): void;
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

/** Serves the dashboard until `signal` aborts; resolves when the server has closed. */
export async function serveDashboard(store: Store, o: DashboardOptions): Promise<void> {
  let allowedHosts: Set<string> | undefined;
  const server = Deno.serve({
    hostname: o.hostname,
    port: o.port,
    signal: o.signal,
    onListen: ({ port }) => {
      const host = o.hostname.includes(":") ? `[${o.hostname}]` : o.hostname;
      if (LOOPBACK.has(o.hostname)) {
        allowedHosts = new Set(
          ["127.0.0.1", "localhost", "[::1]", host].map((h) => `${h}:${port}`),
        );
      }
      o.onListen?.(`http://${host}:${port}/`);
    },
  }, async (req) => {
    if (allowedHosts && !allowedHosts.has(req.headers.get("host") ?? "")) {
      return new Response("this dashboard answers only on its loopback address\n", {
        status: 403,
      });
    }
    try {
      return await handle(store, req);
    } catch (e) {
      // A page that cannot be built says why; the server keeps serving the others.
      return reply(`error: ${(e as Error).message}\n`, "text/plain", 500);
    }
  });
  await server.finished;
}
