/** What the runner hands a worker: everything needed to run one stage by key. */
import type { KeyComponents } from "./key.ts";
import type { ModuleHandle } from "./stage.ts";
import type { StoreDescription } from "./store.ts";

export interface Job {
  store: StoreDescription;
  key: string;
  stage: string;
  kind: string;
  modulePath: string;
  params: Record<string, unknown>;
  /** Input name -> key of the upstream entry. */
  inputs: Record<string, string>;
  externals: Record<string, string>;
  experimentDir: string;
  facets: Record<string, string>;
  /** Modules named by params, by param (`StageContext.modules`). */
  modules: Record<string, ModuleHandle>;
  seed: number;
  components: KeyComponents;
  /** Run even if an entry exists (and replace it). */
  force: boolean;
}

/** Worker -> runner messages, one JSON object per stdout line. */
export type WorkerEvent =
  | { t: "log"; line: string }
  | { t: "wait"; message: string }
  | { t: "start"; logPath: string }
  | { t: "progress"; op: "start"; total: number; label?: string }
  | { t: "progress"; op: "update"; value: number; info?: Record<string, string | number> }
  | { t: "progress"; op: "stop" }
  | { t: "done"; reused: boolean; manifestPath: string }
  | { t: "error"; exit: number; message: string; logPath?: string };
