/** `verify` and `gc`: keeping the store honest and small. */
import { loadExperiment } from "../pipeline/experiment_file.ts";
import { allRecordIds, latestRecord, listRecordIds, readRecord } from "../pipeline/records.ts";
import type { Store } from "../pipeline/store.ts";
import { ownStore } from "../pipeline/store_lock.ts";
import { pruneNoopMemos } from "../pipeline/noop_memo.ts";

export async function verifyCommand(store: Store, experimentFile?: string): Promise<number> {
  let keys = await store.listKeys();
  if (experimentFile) {
    const exp = await loadExperiment(experimentFile);
    const rec = await latestRecord(store, exp.name);
    const wanted = new Set(Object.values(rec?.stages ?? {}).map((s) => s.key).filter(Boolean));
    keys = keys.filter((k) => wanted.has(k));
  }
  let bad = 0;
  for (const key of keys) {
    const problems = await store.verify(key);
    if (problems.length === 0) continue;
    bad++;
    const moved = await store.quarantine(key);
    console.log(`damaged ${key.slice(0, 12)}: ${problems.join("; ")}`);
    console.log(`  moved to ${moved}; its stage will rerun`);
  }
  console.log(`verified ${keys.length} entries: ${bad ? `${bad} damaged` : "all intact"}`);
  return bad ? 1 : 0;
}

export async function gcCommand(store: Store, keep: number, dryRun: boolean): Promise<number> {
  // A run in progress has published entries that no record refers to yet, and its stages read
  // their inputs: wait for it (pipeline/store_lock.ts). A dry run deletes nothing and may look.
  using _own = dryRun ? undefined : await ownStore(store.layout, {
    wait: true,
    onWait: () => console.error("gc: waiting for the runs using this store to finish"),
  });
  const referenced = new Set<string>();
  const experiments = new Set((await allRecordIds(store)).map((r) => r.experiment));
  for (const exp of experiments) {
    const ids = await listRecordIds(store, exp);
    for (const id of ids.slice(-keep)) {
      const rec = await readRecord(store, exp, id);
      for (const s of Object.values(rec.stages)) if (s.key) referenced.add(s.key);
    }
  }
  let removed = 0, bytes = 0;
  for (const key of await store.listKeys()) {
    if (referenced.has(key)) continue;
    const m = await store.readManifest(key);
    bytes += (m?.files ?? []).reduce((n, f) => n + f.size, 0);
    removed++;
    console.log(`${dryRun ? "would remove" : "removing"} ${key.slice(0, 12)} (${m?.stage ?? "?"})`);
    if (!dryRun) await store.remove(key);
  }
  // Scratch of keys that are published is garbage; scratch of unpublished keys is a
  // checkpoint someone may resume, so it stays.
  for (const key of await store.listScratch()) {
    if (await store.has(key) && !dryRun) await store.removeScratch(key);
  }
  // No-op memos that no longer hold (entries just removed among what they rest on).
  const memos = dryRun ? 0 : pruneNoopMemos(store.layout);
  console.log(
    `${dryRun ? "would free" : "freed"} ${
      (bytes / 2 ** 20).toFixed(1)
    } MiB in ${removed} entries; ` +
      `kept ${referenced.size} referenced by the last ${keep} runs of ${experiments.size} experiments` +
      (memos ? `; ${memos} stale no-op memo${memos > 1 ? "s" : ""} removed` : ""),
  );
  return 0;
}
