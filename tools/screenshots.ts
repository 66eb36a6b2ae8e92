/**
 * The screenshots under docs/figures/ that the README shows: a run's report and the dashboard's
 * pages, taken in headless Chromium (playwright-core, Debian's `chromium`) from a real store.
 *
 *   deno run -A tools/screenshots.ts STORE EXPERIMENT [OUT_DIR]
 *
 * takes the latest run of EXPERIMENT in STORE and writes OUT_DIR (default docs/figures)/
 * report.png (the report's first screen and a half: run, answer, first figures) and
 * dashboard_run.png (the run's dashboard page: comparison and curves). The report is rendered
 * with `kme report`; the dashboard is a real `kme ui` on a free port. Nothing is written to the
 * store but the report file.
 */
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));
const MAIN = join(ROOT, "cli", "main.ts");
const CHROMIUM = Deno.env.get("KME_CHROMIUM") ?? "/usr/bin/chromium";

async function kme(...args: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, ...args],
    env: { NO_COLOR: "1" },
  }).output();
  if (!out.success) {
    throw new Error(`kme ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout).trim();
}

const [store, experiment, outDir = join(ROOT, "docs", "figures")] = Deno.args;
if (!store || !experiment) {
  console.error("usage: deno run -A tools/screenshots.ts STORE EXPERIMENT [OUT_DIR]");
  Deno.exit(2);
}
const runs = JSON.parse(await kme("runs", experiment, "--json", "--no-noop", "--store", store));
const last = runs.runs.at(-1);
if (!last) throw new Error(`no run of ${experiment} that computed something in ${store}`);
const report = await kme("report", `${last.experiment}/${last.id}`, "--store", store, "--quiet");

const ui = new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", "--quiet", MAIN, "ui", "--port", "0", "--store", store, "--quiet"],
  stdout: "piped",
  env: { NO_COLOR: "1" },
}).spawn();
const reader = ui.stdout.pipeThrough(new TextDecoderStream()).getReader();
let url = "";
while (!url.includes("\n")) url += (await reader.read()).value ?? "";
url = url.trim();

const { chromium } = await import("playwright-core");
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 1400 } });
  await page.goto(new URL(`file://${report}`).href);
  await page.screenshot({ path: join(outDir, "report.png") });
  await page.goto(new URL(`/run/${last.experiment}/${last.id}`, url).href);
  await page.screenshot({ path: join(outDir, "dashboard_run.png") });
  console.log(`${join(outDir, "report.png")}\n${join(outDir, "dashboard_run.png")}`);
} finally {
  await browser.close();
  ui.kill("SIGINT");
  await ui.status;
}
