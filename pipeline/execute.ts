/**
 * Runs one stage by key, in the worker process: lock, reuse-if-published, run into staging,
 * hash, publish, clean scratch. Whatever happens, published entries stay intact and the
 * stage's scratch (checkpoints, log) survives anything but success.
 */
import { InterruptedError } from "./errors.ts";
import type { Job, WorkerEvent } from "./job.ts";
import { KeyLock } from "./lock.ts";
import { toFileUrl } from "./paths.ts";
import type { InputHandle, Progress, Stage, StageContext, StageResult } from "./stage.ts";
import { type Manifest, openStore } from "./store.ts";
import { entryParts } from "./store_layout.ts";

export async function executeJob(
  job: Job,
  emit: (e: WorkerEvent) => void,
  signal: AbortSignal,
): Promise<{ reused: boolean; manifestPath: string }> {
  const store = openStore(job.store);
  await store.ensureLayout();
  const lock = await KeyLock.acquire(store.layout.lockPath(job.key), job.stage, (owner) => {
    const who = owner
      ? `pid ${owner.pid} on ${owner.host} (stage '${owner.stage}')`
      : "another run";
    emit({ t: "wait", message: `waiting for ${who}, which is computing the same entry` });
  }, signal);
  let staging: string | undefined;
  try {
    const manifestPath = store.layout.manifestPath(job.key);
    if (!job.force && (await store.has(job.key))) return { reused: true, manifestPath };

    const scratch = store.layout.scratchDir(job.key);
    await Deno.mkdir(scratch, { recursive: true });
    const logPath = store.layout.scratchLogPath(job.key);
    using logFile = await Deno.open(logPath, { append: true, create: true });
    const enc = new TextEncoder();
    const log = (line: string) => {
      logFile.writeSync(enc.encode(line + "\n"));
      emit({ t: "log", line });
    };
    // Which stage this scratch belongs to (a key says nothing): `kme ui` shows it while the
    // stage runs and after it stopped. Rewritten by every attempt; gone with the scratch.
    await Deno.writeTextFile(
      store.layout.attemptPath(job.key),
      JSON.stringify({ stage: job.stage, kind: job.kind, params: job.params }),
    );
    emit({ t: "start", logPath });
    logFile.writeSync(
      enc.encode(`--- ${new Date().toISOString()} ${job.stage} (${job.kind}) key ${job.key}\n`),
    );
    // A damaged entry (truncated manifest, a symbolic link) is in the way of the publish and
    // would fail every rerun: move it to quarantine (we hold the key's lock) and recompute.
    const damage = await store.damage(job.key);
    if (damage) {
      const moved = await store.quarantine(job.key);
      log(`warning: entry ${job.key.slice(0, 12)} is damaged (${damage}): moved to ${moved}`);
    }

    staging = await store.newStaging(job.key);
    const inputs: Record<string, InputHandle> = {};
    for (const [name, key] of Object.entries(job.inputs)) {
      const m = await store.readManifest(key);
      if (!m) throw new Error(`input '${name}': entry ${key} vanished from the store`);
      inputs[name] = {
        dir: store.layout.outDir(key),
        key,
        digest: m.digest,
        files: m.files,
        metrics: m.metrics,
      };
    }
    const mod = await import(toFileUrl(job.modulePath).href);
    const def = mod.default as Stage<unknown>;
    const ctx: StageContext<unknown> = {
      params: job.params,
      inputs,
      externals: job.externals,
      experimentDir: job.experimentDir,
      outDir: entryParts(staging).out,
      scratch,
      resumePoint: async (what) => {
        // Whole or not at all: a note cut by a kill must not be shown as the resume point.
        const note = store.layout.resumeNotePath(job.key);
        await Deno.writeTextFile(`${note}.tmp`, what.split("\n")[0]);
        await Deno.rename(`${note}.tmp`, note);
      },
      log,
      progress: progressEmitter(emit),
      signal,
      seed: job.seed,
      facets: job.facets,
      modules: job.modules ?? {},
    };
    const started = new Date();
    const result: StageResult = (await def.run(ctx)) ?? {};
    const finished = new Date();
    const { files, digest } = await store.hashOutputs(staging);
    const manifest: Manifest = {
      format: "kme-entry/1",
      key: job.key,
      kind: job.kind,
      stage: job.stage,
      components: job.components,
      files,
      digest,
      metrics: result.metrics ?? {},
      info: result.info ?? {},
      started: started.toISOString(),
      finished: finished.toISOString(),
      seconds: (finished.getTime() - started.getTime()) / 1000,
      host: Deno.hostname(),
    };
    log(
      `done in ${manifest.seconds.toFixed(1)} s; ${files.length} file${
        files.length === 1 ? "" : "s"
      }`,
    );
    await Deno.copyFile(logPath, entryParts(staging).log);
    await Deno.writeTextFile(entryParts(staging).manifest, JSON.stringify(manifest, null, 1));
    await store.publish(staging, job.key, job.force);
    staging = undefined;
    await Deno.remove(scratch, { recursive: true });
    return { reused: false, manifestPath };
  } catch (e) {
    if (signal.aborted) throw new InterruptedError(String(signal.reason ?? "interrupted"));
    throw e;
  } finally {
    if (staging) await Deno.remove(staging, { recursive: true }).catch(() => {});
    lock.release();
  }
}

function progressEmitter(emit: (e: WorkerEvent) => void): Progress {
  let last = 0;
  return {
    start: (total, label) => emit({ t: "progress", op: "start", total, label }),
    update: (value, info) => {
      // Throttled: a training loop may call this every step.
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      emit({ t: "progress", op: "update", value, info });
    },
    stop: () => emit({ t: "progress", op: "stop" }),
  };
}
