/**
 * The content-addressed store as the engine sees it: published entries by key, staging
 * folders that become entries in one step, run records and scratch. `LocalStore`
 * (pipeline/local_store.ts) is the first implementation; `StoreLayout` is the one place that
 * knows the folders.
 *
 * Stages read inputs and write outputs as local files, so every implementation presents its
 * entries as local folders (`layout`). A remote cache would be a Store that wraps a local one:
 * on a miss in `readManifest` it fetches the entry into the local layout, and after `publish`
 * it pushes it. Workers and Slurm jobs receive a `StoreDescription` and call `openStore`, so
 * such a store reaches them without other changes.
 */
import type { FileRecord, Metric } from "./stage.ts";
import type { KeyComponents } from "./key.ts";
import type { StoreLayout } from "./store_layout.ts";
import { LocalStore } from "./local_store.ts";

export interface Manifest {
  format: "kme-entry/1";
  key: string;
  kind: string;
  /** Name of the stage that produced it (entries are shared by any stage with the same key). */
  stage: string;
  components: KeyComponents;
  files: FileRecord[];
  digest: string;
  metrics: Record<string, Metric>;
  info: Record<string, unknown>;
  started: string;
  finished: string;
  seconds: number;
  host: string;
}

/** What a worker or a Slurm job needs to open the same store (it travels as JSON). */
export type StoreDescription = { kind: "local"; root: string };

export interface Store {
  readonly description: StoreDescription;
  readonly layout: StoreLayout;
  ensureLayout(): Promise<void>;
  /**
   * The manifest of a published entry, or undefined when there is none or it is damaged
   * (truncated, not JSON, or not the shape the store writes): a damaged entry counts as
   * absent, so its stage recomputes it (`damage` says why; `verify` reports it).
   */
  readManifest(key: string): Promise<Manifest | undefined>;
  /** Why entries/<key> is not a usable entry although something is there; undefined if fine or absent. */
  damage(key: string): Promise<string | undefined>;
  /** Whether a usable entry exists (a damaged one does not count). */
  has(key: string): Promise<boolean>;
  /** A fresh staging folder for `key`; call only while holding the key's lock. */
  newStaging(key: string): Promise<string>;
  /** Hashes a staging folder's outputs. */
  hashOutputs(staging: string): Promise<{ files: FileRecord[]; digest: string }>;
  /**
   * Publishes a staging folder (which already holds manifest.json) as the entry of `key`,
   * replacing an existing entry only when `replace` is set. Returns false when an entry already
   * existed and was kept.
   */
  publish(staging: string, key: string, replace: boolean): Promise<boolean>;
  /** Re-hashes an entry; returns the problems found (empty when intact). */
  verify(key: string): Promise<string[]>;
  /** Moves an entry out of the way so that its stage reruns; returns where it went. */
  quarantine(key: string): Promise<string>;
  /** Deletes an entry (gc). */
  remove(key: string): Promise<void>;
  /** Keys of published entries, damaged ones included (verify reports them, gc may remove them). */
  listKeys(): Promise<string[]>;
  /** Keys with scratch (checkpoints, logs of unpublished attempts). */
  listScratch(): Promise<string[]>;
  removeScratch(key: string): Promise<void>;
}

/** Opens the store a description names; a root path means a local store there. */
export function openStore(d: StoreDescription | string): Store {
  if (typeof d === "string") return new LocalStore(d);
  if (d.kind === "local") return new LocalStore(d.root);
  throw new Error(`unknown store kind ${JSON.stringify((d as { kind: unknown }).kind)}`);
}
