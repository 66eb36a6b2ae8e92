/**
 * `run` of an experiment that nothing has changed since its last all-cached run: answered by
 * the no-op memo (pipeline/noop_memo.ts) with the same record the full path writes. This
 * module and what it imports are all a cached rerun loads (cli/main.ts loads the full path,
 * cli/prepare.ts and cli/run_status.ts, only when the memo does not hold).
 */
import { styleMark } from "../pipeline/console_style.ts";
import { hasNoopMemo, type NoopIdentity, readNoopMemo } from "../pipeline/noop_memo.ts";
import { environment, newRunRecord, writeRecord } from "../pipeline/records.ts";
import type { Store } from "../pipeline/store.ts";
import { useStore } from "../pipeline/store_lock.ts";
import { relative } from "../pipeline/paths.ts";
import { summaryTail } from "./outcome_line.ts";

/**
 * A rerun answered by the no-op memo (pipeline/noop_memo.ts): nothing is planned or keyed,
 * the record is written from the memo. Undefined when the memo does not hold.
 */
export async function rerunFromMemo(
  store: Store,
  id: NoopIdentity,
  f: { quiet: boolean; argv: string[]; root: string },
): Promise<number | undefined> {
  if (!hasNoopMemo(store.layout, id)) return undefined;
  const started = new Date();
  // Checked under the store's lock, as a run checks its entries: gc cannot delete them between
  // the check and the record that refers to them.
  using _use = await useStore(store.layout, () => {
    if (!f.quiet) console.error("waiting: 'gc' is cleaning this store");
  });
  const answer = readNoopMemo(store.layout, id);
  if (!answer) return undefined;
  // What the full path prints: a line per stage, then the table (its lines in one write).
  const names = answer.stageNames;
  if (!f.quiet) console.log(names.map((n) => styleMark(`· ${n}: cached`, "stdout")).join("\n"));
  const rec = newRunRecord(started, answer.experiment, answer.seed, "ok", {}, f.argv);
  rec.env = await environment(f.root, false);
  const path = await writeRecord(store, rec, answer.stagesText);
  if (!f.quiet) {
    console.log(`${answer.table}\n${summaryTail("ok", names.map(() => "cached"), rec.seconds)}`);
  }
  console.log(`run record: ${relative(Deno.cwd(), path)}`);
  return 0;
}
