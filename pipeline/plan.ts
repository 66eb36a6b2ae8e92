/**
 * Cache keys and what would run. A stage's key is known once every upstream entry exists
 * (the key hashes the upstream *output digests*); until then it "waits on" that upstream.
 */
import { explainChange, type KeyComponents, keyOf } from "./key.ts";
import { type ProjectResolver, stageFingerprint } from "./fingerprint.ts";
import { liveOwner } from "./lock.ts";
import type { StatMemo } from "./hash.ts";
import type { PlannedStage } from "./resolve.ts";
import type { Manifest, Store } from "./store.ts";

export interface KeyContext {
  store: Store;
  resolver: ProjectResolver;
  memo: StatMemo;
}

/** Components of `stage`'s key, given the manifests of its upstream entries. */
export async function componentsOf(
  stage: PlannedStage,
  upstream: Map<string, Manifest>,
  kc: KeyContext,
  /** Digests to assume for inputs whose upstream has no entry yet. */
  assumed: Record<string, string> = {},
): Promise<KeyComponents> {
  if (!stage.code || Object.values(stage.modules).some((m) => !m.digest)) {
    stage.code = await stageFingerprint(kc.resolver, stage);
  }
  const inputs: Record<string, string> = {};
  for (const [name, up] of Object.entries(stage.inputs)) {
    inputs[name] = upstream.get(up)?.digest ?? assumed[name] ?? "unknown";
  }
  const externals: Record<string, string> = {};
  for (const [name, path] of Object.entries(stage.externals)) {
    externals[name] = await kc.memo.hashPath(path);
  }
  return {
    kind: stage.kind,
    code: stage.code,
    params: stage.params,
    inputs,
    externals,
    facets: stage.facets,
    seed: stage.seed,
  };
}

export type PlanRow =
  | { stage: string; state: "cached"; key: string; manifest: Manifest }
  | { stage: string; state: "run"; key: string; reasons: string[] }
  | { stage: string; state: "waits"; upstream: string[]; reasons: string[] };

/**
 * What `run` would do now. `previous` gives the components a stage had in the last recorded
 * run, to say which component changed.
 */
export async function planStages(
  stages: PlannedStage[],
  kc: KeyContext,
  force: Set<string>,
  previous: (stage: string) => KeyComponents | undefined,
): Promise<PlanRow[]> {
  const rows: PlanRow[] = [];
  const manifests = new Map<string, Manifest>();
  const pending = new Set<string>();
  for (const s of stages) {
    const blocked = Object.values(s.inputs).filter((u) => pending.has(u));
    if (blocked.length) {
      pending.add(s.name);
      // Its own changes are known already: compare with the inputs it had last time.
      const prev = previous(s.name);
      let reasons: string[] = [];
      if (prev) {
        const known = new Map(manifests);
        const c = await componentsOf(s, known, kc, prev.inputs);
        reasons = explainChange(prev, c);
      }
      rows.push({ stage: s.name, state: "waits", upstream: [...new Set(blocked)], reasons });
      continue;
    }
    const c = await componentsOf(s, manifests, kc);
    const key = await keyOf(c);
    const m = (force.has(s.name) || force.has(s.base))
      ? undefined
      : await kc.store.readManifest(key);
    if (m) {
      manifests.set(s.name, m);
      rows.push({ stage: s.name, state: "cached", key, manifest: m });
      continue;
    }
    pending.add(s.name);
    const prev = previous(s.name);
    let reasons: string[];
    // An attempt that stopped (interrupted, failed, killed) leaves its scratch folder: the
    // stage picks up from what it kept there (a checkpoint), which is what to say first.
    const unfinished = await Deno.stat(kc.store.layout.scratchDir(key)).then(
      () => true,
      () => false,
    );
    if (force.has(s.name) || force.has(s.base)) reasons = ["forced (--force)"];
    else if (unfinished) {
      // The stage's own words when it left them (ctx.resumePoint), e.g. "checkpoint at step 120".
      const point = await Deno.readTextFile(kc.store.layout.resumeNotePath(key)).then(
        (t) => t.trim(),
        () => "",
      );
      const owner = await liveOwner(kc.store.layout.ownerPath(key));
      reasons = [
        owner
          ? `running now in another process (pid ${owner.pid} on ${owner.host}, since ` +
            `${owner.since.slice(11, 19)})${point ? `; last ${point}` : ""}: a run now waits for it`
          : point
          ? `unfinished: an earlier attempt stopped; it resumes from ${point} ` +
            `(scratch/${key.slice(0, 12)}…)`
          : "unfinished: an earlier attempt stopped; it resumes from what it kept in " +
            `scratch/${key.slice(0, 12)}… (checkpoints, log.txt)`,
      ];
    } else if (!prev) reasons = ["never run"];
    else if ((await keyOf(prev)) === key) {
      reasons = ["its entry is missing from the store (gc, verify)"];
    } else reasons = explainChange(prev, c);
    rows.push({ stage: s.name, state: "run", key, reasons });
  }
  return rows;
}
