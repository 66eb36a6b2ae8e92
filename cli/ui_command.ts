/**
 * `kme ui [--port N] [--host H]`: serves the dashboard (dashboard/server.ts) over the store
 * until Ctrl-C. Loopback by default; another address is served as asked, with a warning, since
 * anyone who can reach it can read every run, log and report in the store.
 */
import { UsageError } from "../pipeline/errors.ts";
import type { Store } from "../pipeline/store.ts";
import { lazyImport } from "../pipeline/lazy_import.ts";

export async function uiCommand(
  store: Store,
  o: { host: string; port: number; quiet: boolean },
): Promise<number> {
  const { serveDashboard } = await lazyImport<typeof import("../dashboard/server.ts")>(
    new URL("../dashboard/server.ts", import.meta.url),
  );
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  if (!["127.0.0.1", "localhost", "::1"].includes(o.host)) {
    console.error(
      `warning: serving on ${o.host}: anyone who can reach it can read the store's runs and logs`,
    );
  }
  try {
    await serveDashboard(store, {
      hostname: o.host,
      port: o.port,
      signal: stop.signal,
      onListen: (url) => {
        // The first line is the address, alone, for scripts (and tests) that read it.
        console.log(url);
        if (!o.quiet) console.log(`dashboard of ${store.layout.root} (read-only); Ctrl-C stops it`);
      },
    });
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) {
      throw new UsageError(`port ${o.port} is in use; --port N picks another (0: any free port)`);
    }
    if (e instanceof Deno.errors.AddrNotAvailable) {
      throw new UsageError(`cannot listen on ${o.host}: not an address of this machine`);
    }
    throw e;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
  return 0;
}
