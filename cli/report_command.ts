/**
 * `report RUN|EXPERIMENT.yaml [B] [--out FILE] [--png DIR]`: a self-contained HTML report of a
 * run (an experiment file means its latest run), or of two runs side by side.
 *
 * Also runnable on its own: deno run -A cli/report_command.ts [--store DIR] A [B] [--out F] [--png D]
 */
import { parseArgs } from "node:util";
import { resolve } from "../pipeline/paths.ts";
import { recordFor } from "./record_ref.ts";
import { ConfigError, UsageError } from "../pipeline/errors.ts";
import type { RunRecord } from "../pipeline/records.ts";
import { openStore, type Store } from "../pipeline/store.ts";
import { lazyImport } from "../pipeline/lazy_import.ts";

export async function reportCommand(
  store: Store,
  refs: string[],
  o: { out?: string; png?: string; quiet?: boolean } = {},
): Promise<number> {
  if (refs.length < 1 || refs.length > 2) {
    throw new UsageError("report needs a run (experiment file or run id), or two to compare");
  }
  const records: RunRecord[] = [];
  for (const r of refs) records.push(await recordFor(store, r));
  const { writeReport } = await lazyImport<typeof import("../report/mod.ts")>(
    new URL("../report/mod.ts", import.meta.url),
  );
  const rep = await writeReport(store, records, {
    out: o.out === undefined ? undefined : resolve(o.out),
    png: o.png === undefined ? undefined : resolve(o.png),
  });
  if (!o.quiet) {
    for (const w of rep.warnings) console.error(`warning: ${w}`);
    for (const p of rep.pngs) console.error(`png: ${p}`);
  }
  console.log(rep.path);
  return 0;
}

if (import.meta.main) {
  let code = 0;
  try {
    const { values: o, positionals } = parseArgs({
      args: Deno.args,
      allowPositionals: true,
      options: {
        store: { type: "string" },
        out: { type: "string" },
        png: { type: "string" },
        quiet: { type: "boolean", default: false },
      },
    });
    const store = openStore(resolve(o.store ?? Deno.env.get("KME_STORE") ?? "artifacts"));
    code = await reportCommand(store, positionals, o);
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.toString());
      code = 2;
    } else if (
      e instanceof UsageError || (e as { code?: string })?.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION"
    ) {
      console.error(`error: ${(e as Error).message}`);
      code = 2;
    } else throw e;
  }
  Deno.exit(code);
}
