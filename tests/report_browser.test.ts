/**
 * `report` in a real browser: the page opens in headless Chromium (Debian's `chromium`, driven by
 * playwright-core), every figure renders with a non-empty box, the page makes no request that
 * leaves the machine (only file: and data: URLs), and a screenshot is kept as an artifact in
 * tests/artifacts/ (git-ignored). Skipped, with the reason, when Chromium is not installed
 * (`apt-get install -y chromium`; .ci/run installs it). KME_CHROMIUM overrides the binary.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { openStore } from "../pipeline/store.ts";
import { writeReport } from "../report/mod.ts";
import { buildFixtureStore } from "./fixtures/report/fixture.ts";
import { ARTIFACTS, chromiumMissing, launchChromium } from "./helpers/chromium.ts";
import { toFileUrl } from "../pipeline/paths.ts";

const missing = chromiumMissing();
if (missing) console.warn(`report_browser: skipped: ${missing}`);

interface FigureBox {
  id: string;
  width: number;
  height: number;
  /** Marks (path, rect, line, text) with a non-empty box. */
  visibleMarks: number;
}

async function inBrowser(
  files: { html: string; screenshot: string }[],
): Promise<{ requests: string[]; errors: string[][]; figures: FigureBox[][] }> {
  const requests: string[] = [];
  // Console errors (CSP violations among them) and script errors, per page.
  const errors: string[][] = files.map(() => []);
  let current = 0;
  const figures: FigureBox[][] = [];
  let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;
  try {
    browser = await launchChromium();
    const context = browser.context;
    // Every request of every page, service worker or frame of the context, whatever its scheme.
    context.on("request", (r) => requests.push(r.url()));
    const page = await context.newPage();
    page.on("console", (m) => {
      if (m.type() === "error") errors[current].push(m.text());
    });
    page.on("pageerror", (e) => errors[current].push(String(e)));
    page.on("websocket", (w) => requests.push(w.url()));
    for (const [i, f] of files.entries()) {
      current = i;
      await page.goto(toFileUrl(f.html).href, { waitUntil: "load" });
      figures.push(
        await page.$$eval("figure", (els) =>
          els.map((fig) => {
            const svg = fig.querySelector("svg");
            const b = svg?.getBoundingClientRect();
            let visibleMarks = 0;
            for (
              const m of svg?.querySelectorAll(
                ".role-mark path, .role-mark rect, .role-mark line, .role-mark circle",
              ) ?? []
            ) {
              const r = m.getBoundingClientRect();
              if (r.width > 0 || r.height > 0) visibleMarks++;
            }
            return { id: fig.id, width: b?.width ?? 0, height: b?.height ?? 0, visibleMarks };
          })),
      );
      await page.screenshot({ path: f.screenshot, fullPage: true });
      console.log(`report_browser: screenshot ${f.screenshot}`);
    }
  } finally {
    await browser?.close();
  }
  return { requests, errors, figures };
}

Deno.test({
  name: `report in headless Chromium: figures render, no network${
    missing ? ` (skipped: ${missing})` : ""
  }`,
  ignore: missing !== undefined,
  // playwright-core keeps a few timers and pipes of its own until the process exits.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "kme-report-browser-" });
    try {
      const fx = await buildFixtureStore(join(tmp, "store"), 6000);
      const store = openStore(fx.root);
      const one = await writeReport(store, [fx.a]);
      const two = await writeReport(store, [fx.a, fx.b]);
      await Deno.mkdir(ARTIFACTS, { recursive: true });
      // Control: a page that does reach out, to show the recorder sees such requests.
      const control = join(tmp, "control.html");
      await Deno.writeTextFile(
        control,
        '<!DOCTYPE html><img src="http://192.0.2.1/x.png" alt="">',
      );
      const { requests: all, errors, figures } = await inBrowser([
        { html: one.path, screenshot: join(ARTIFACTS, "report_run.png") },
        { html: two.path, screenshot: join(ARTIFACTS, "report_compare.png") },
        { html: control, screenshot: join(tmp, "control.png") },
      ]);
      const cut = all.indexOf(toFileUrl(control).href);
      assert.ok(cut > 0, "control page not loaded");
      assert.ok(all.slice(cut).includes("http://192.0.2.1/x.png"), "recorder missed a request");
      const requests = all.slice(0, cut);

      // Nothing left the machine: the two pages themselves (file:) and nothing else but data:.
      const offMachine = requests.filter((u) => !/^(file|data):/.test(u));
      assert.deepEqual(offMachine, [], `requests that left the machine: ${offMachine.join(", ")}`);
      assert.deepEqual(
        requests.filter((u) => u.startsWith("file:")),
        [toFileUrl(one.path).href, toFileUrl(two.path).href],
      );
      // No CSP violation or script error.
      assert.deepEqual(errors.slice(0, 2), [[], []]);

      for (const [i, rep] of [one, two].entries()) {
        const boxes = figures[i];
        assert.deepEqual(boxes.map((b) => b.id), rep.figures.map((f) => `fig-${f.id}`));
        for (const b of boxes) {
          assert.ok(b.width > 100 && b.height > 100, `${b.id}: box ${b.width}x${b.height}`);
          assert.ok(b.visibleMarks > 0, `${b.id}: no visible marks`);
        }
        // The page's share of the 8,000 points drawn over its PMI panels (report/figures.ts).
        const pmi = boxes.find((b) => b.id.endsWith("pmi-similarity-kme-seed-0"))!;
        const panels = rep.figures.filter((f) => f.id.startsWith("pmi-")).length;
        const drawn = Math.ceil(5000 / Math.ceil(5000 / Math.max(200, Math.floor(8000 / panels))));
        assert.ok(
          pmi.visibleMarks >= drawn,
          `scatter shows ${pmi.visibleMarks} marks, ${drawn} drawn`,
        );
      }
      for (const f of ["report_run.png", "report_compare.png"]) {
        const st = await Deno.stat(join(ARTIFACTS, f));
        assert.ok(st.size > 10_000, `${f}: ${st.size} bytes`);
      }
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
