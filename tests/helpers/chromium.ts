/**
 * Headless Chromium for the tests that open pages (report, dashboard): Debian's `chromium`
 * (`KME_CHROMIUM` names another binary), driven by playwright-core, on a fresh profile folder
 * with background networking off, so that every request the test records is the page's own.
 */
import { join } from "node:path";
import { ROOT } from "./cli.ts";

export const CHROMIUM = Deno.env.get("KME_CHROMIUM") ?? "/usr/bin/chromium";
export const ARTIFACTS = join(ROOT, "tests", "artifacts");

/** Why the browser tests are skipped here, or undefined when Chromium is installed. */
export function chromiumMissing(): string | undefined {
  try {
    Deno.statSync(CHROMIUM);
    return undefined;
  } catch {
    return `${CHROMIUM} not found (apt-get install -y chromium, or set KME_CHROMIUM)`;
  }
}

/** A persistent context on a fresh folder; `close()` also removes the folder. */
export async function launchChromium() {
  const { chromium } = await import("playwright-core");
  const userDataDir = await Deno.makeTempDir({ prefix: "kme-chromium-" });
  // A persistent context: playwright passes the folder as --user-data-dir.
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
    viewport: { width: 1280, height: 900 },
    timeout: 60_000,
  });
  return {
    context,
    async close() {
      await context.close();
      await Deno.remove(userDataDir, { recursive: true }).catch(() => {});
    },
  };
}
