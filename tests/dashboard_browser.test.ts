/**
 * `kme ui` in real headless Chromium (playwright-core), beside a real training run:
 * - a stage that trains shows up under "Training now", and its page's curve grows while the
 *   page is open (the points come from the stage's scratch train_log, polled by /app.js), with
 *   the validation loss once the first validation step has passed;
 * - an interrupted stage is then listed as stopped;
 * - a run's comparison view renders its intervals (table and plot);
 * - no request leaves the machine, and no page has a script error or a CSP violation.
 * Screenshots go to tests/artifacts/ (git-ignored). Skipped, with the reason, without Chromium.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { buildFixtureStore } from "./fixtures/report/fixture.ts";
import { ROOT, spawnKme } from "./helpers/cli.ts";
import { ARTIFACTS, chromiumMissing, launchChromium } from "./helpers/chromium.ts";
import { startUi } from "./helpers/dashboard.ts";

const missing = chromiumMissing();
if (missing) console.warn(`dashboard_browser: skipped: ${missing}`);

/** A long kme training on tiny.yaml's data, logging every 2 steps and validating every 10. */
const LIVE = `
name: live
extends: ${join(ROOT, "experiments", "tiny.yaml")}
stages:
  train:
    matrix: null
    params: { similarity: kme, steps: 5000, log_every: 2, val_every: 10, checkpoint_every: 50 }
`;

/** Polls `cond` every 250 ms until it holds; fails after 2 minutes (a hang, not a timing). */
async function until(cond: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 480; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`gave up waiting: ${what}`);
}

Deno.test({
  name: `kme ui in headless Chromium: a live curve grows, intervals render, no network${
    missing ? ` (skipped: ${missing})` : ""
  }`,
  ignore: missing !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "kme-ui-browser-" });
    const fx = await buildFixtureStore(join(tmp, "store"), 600);
    const exp = join(tmp, "live.yaml");
    await Deno.writeTextFile(exp, LIVE);
    const training = spawnKme(["run", exp, "train", "--store", fx.root, "--no-report"], tmp);
    const ui = await startUi(fx.root, tmp);
    const browser = await launchChromium();
    const context = browser.context;
    const requests: string[] = [];
    const errors: string[] = [];
    try {
      context.on("request", (r) => requests.push(r.url()));
      const page = await context.newPage();
      page.on("console", (m) => {
        if (m.type() === "error") errors.push(`${page.url()}: ${m.text()}`);
      });
      page.on("pageerror", (e) => errors.push(`${page.url()}: ${e}`));
      await Deno.mkdir(ARTIFACTS, { recursive: true });

      // The runs page notices the stage training (data preparation comes first: wait for it).
      await page.goto(ui.url);
      // The list refreshes itself: first the data stage runs, then train.
      const running = page.locator("#attempts tr.running a", { hasText: /^train$/ });
      await running.first().waitFor({ timeout: 240_000 });
      await page.screenshot({ path: join(ARTIFACTS, "dashboard_runs.png"), fullPage: true });

      // Its page: the curve grows while we watch, without a reload.
      await running.first().click();
      await page.waitForURL(/\/attempt\/[0-9a-f]{64}$/);
      // How many logged steps the curve shows (set by /app.js; read from outside the page,
      // whose policy forbids evaluating strings).
      const points = async () => Number(await page.locator("#curve").getAttribute("data-points"));
      await until(async () => (await points()) >= 3, "the curve has 3 points");
      const first = await points();
      await until(async () => (await points()) > first, "the curve grows");
      assert.ok((await points()) > first);
      // The loss, the validation loss (after step 10) and the lr / bandwidth panel.
      await page.locator("#fig-attempt-val-loss svg").waitFor({ timeout: 120_000 });
      for (const id of ["attempt-loss", "attempt-val-loss", "attempt-scale"]) {
        const box = await page.locator(`#fig-${id} svg`).boundingBox();
        assert.ok(box && box.width > 100 && box.height > 100, `${id}: ${JSON.stringify(box)}`);
        const marks = await page.locator(`#fig-${id} .role-mark path`).count();
        assert.ok(marks > 0, `${id}: no marks`);
      }
      assert.match((await page.locator("#state").textContent())!, /training now/);
      await page.locator("#log").filter({ hasText: "backend wasm" }).waitFor({ timeout: 60_000 });
      await page.screenshot({ path: join(ARTIFACTS, "dashboard_live.png"), fullPage: true });

      // Interrupted (Ctrl-C): listed as stopped, to be resumed by the next run.
      training.kill("SIGINT");
      assert.equal((await training.status).code, 130);
      await page.goto(ui.url);
      const stopped = page.locator("#attempts tr.stopped");
      await stopped.first().waitFor({ timeout: 30_000 });
      assert.match(
        (await stopped.first().textContent())!,
        /resumes from checkpoint at step \d+ of 5000/,
      );
      assert.equal(await page.locator("#attempts tr.running").count(), 0);

      // A run's comparison: KME-CLIP - CLIP, intervals in the table and on the plot.
      await page.goto(new URL(`/run/synthetic-fx/${fx.a.id}`, ui.url).href);
      const cells = await page.locator("#comparison td.ci").allTextContents();
      assert.ok(cells.filter((c) => /95% CI \[.+\]/.test(c)).length >= 5, cells.join(" | "));
      const plot = await page.locator("#fig-comparison svg").boundingBox();
      assert.ok(plot && plot.width > 100 && plot.height > 100, JSON.stringify(plot));
      const rules = page.locator(
        "#fig-comparison .role-mark line, #fig-comparison .role-mark path",
      );
      assert.ok((await rules.count()) >= 5, "interval marks drawn");
      await page.screenshot({ path: join(ARTIFACTS, "dashboard_compare.png"), fullPage: true });

      // Control: a page that reaches out is seen by the recorder.
      const seen = requests.length, errorsSeen = errors.length;
      await page.goto("about:blank");
      await page.setContent('<img src="http://192.0.2.1/x.png" alt="">').catch(() => {});
      await page.waitForTimeout(200);
      assert.ok(requests.slice(seen).includes("http://192.0.2.1/x.png"), "recorder is blind");

      // Every request before the control went to the dashboard itself.
      const origin = new URL(ui.url).origin;
      const off = requests.slice(0, seen).filter((u) => !u.startsWith(origin + "/"));
      assert.deepEqual(off, [], `requests that left the dashboard: ${off.join(", ")}`);
      assert.deepEqual(errors.slice(0, errorsSeen), []);
    } finally {
      await browser.close();
      try {
        training.kill("SIGKILL");
      } catch { /* already ended */ }
      await training.status;
      await training.stdout.cancel().catch(() => {});
      await training.stderr.cancel().catch(() => {});
      await ui.stop();
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  },
});
