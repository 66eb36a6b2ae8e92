/**
 * Runs an experiment: walks the stages in dependency order, reuses entries whose key is in
 * the store, and starts a worker process for each stage that must run (up to `jobs` at once).
 * The runner itself never imports a stage's heavy code: cache hits cost a key computation.
 */
import type { Execution, Executor } from "./executor.ts";
import { InterruptedError } from "./errors.ts";
import type { Job, WorkerEvent } from "./job.ts";
import { type KeyComponents, keyOf } from "./key.ts";
import { componentsOf, type KeyContext } from "./plan.ts";
import type { PlannedStage } from "./resolve.ts";
import type { Outcome, StageRecord } from "./records.ts";
import type { Manifest } from "./store.ts";
import type { ConsoleUI } from "./console_ui.ts";

export interface RunOptions {
  jobs: number;
  force: Set<string>;
  ui: ConsoleUI;
  executor: Executor;
  /** Folder of the experiment file, for stages that resolve relative paths themselves. */
  experimentDir: string;
  /**
   * After a stage fails, go on with every stage that does not depend on it (make -k); by
   * default nothing new starts once one has failed.
   */
  keepGoing?: boolean;
}

export interface RunOutcome {
  stages: Record<string, StageRecord>;
  status: "ok" | "failed" | "interrupted";
  /** 0 ok, 1 stage failed, 2 bad stage input, 130 interrupted. */
  exitCode: number;
  failure?: { stage: string; message: string; log?: string };
}

export async function runStages(
  stages: PlannedStage[],
  kc: KeyContext,
  opts: RunOptions,
): Promise<RunOutcome> {
  const ui = opts.ui;
  const records: Record<string, StageRecord> = {};
  const manifests = new Map<string, Manifest>();
  const done = new Set<string>();
  const running = new Map<string, Promise<void>>();
  const children = new Map<string, Execution>();
  let failure: RunOutcome["failure"];
  let failExit = 0;
  let interrupted = false;

  const base = (s: PlannedStage): StageRecord => ({
    kind: s.kind,
    base: s.base,
    labels: s.labels,
    outcome: "not-run",
    seconds: 0,
    params: s.params,
    inputs: s.inputs,
    seed: s.seed,
    facets: s.facets,
  });
  for (const s of stages) records[s.name] = base(s);

  const onSignal = (sig: "SIGINT" | "SIGTERM") => {
    if (interrupted) {
      for (const c of children.values()) c.kill();
      return;
    }
    interrupted = true;
    ui.error(
      `${sig === "SIGINT" ? "interrupt" : "SIGTERM"}: stopping running stages (their ` +
        "checkpoints are kept); again to kill",
    );
    for (const c of children.values()) c.terminate(sig);
  };
  const onInt = () => onSignal("SIGINT"), onTerm = () => onSignal("SIGTERM");

  // A stage that prints nothing for long may be stuck (or legitimately quiet): say so once,
  // with what to do, rather than leaving the user to guess.
  const stallMs = 1000 * Number(Deno.env.get("KME_STALL_WARN_SECONDS") ?? 600);
  const lastOutput = new Map<string, number>();
  const warned = new Set<string>();
  // Signal handlers and the watchdog start with the first worker: the first timer of a process
  // loads Deno's timer module (~10 ms) and signal listening its own loop, which a run that
  // finds everything cached must not pay. Until then Ctrl-C ends the process as it would any
  // command: nothing is running, and the record is written atomically or not at all.
  let watchdog: ReturnType<typeof setInterval> | undefined;
  const watch = () => {
    if (watchdog !== undefined) return;
    Deno.addSignalListener("SIGINT", onInt);
    Deno.addSignalListener("SIGTERM", onTerm);
    watchdog = setInterval(checkStalls, Math.max(100, Math.min(30_000, stallMs / 2)));
  };
  const checkStalls = () => {
    const now = Date.now();
    for (const name of children.keys()) {
      const quiet = now - (lastOutput.get(name) ?? now);
      if (quiet < stallMs || warned.has(name)) continue;
      warned.add(name);
      ui.error(
        `! ${name}: no output for ${Math.round(quiet / 1000)} s (log: ${
          records[name].log ?? "its scratch folder"
        }); if it is stuck, Ctrl-C keeps its checkpoint and a rerun resumes`,
      );
    }
  };

  const finishCached = (
    s: PlannedStage,
    key: string,
    c: KeyComponents,
    m: Manifest,
    o: Outcome,
  ) => {
    manifests.set(s.name, m);
    done.add(s.name);
    Object.assign(records[s.name], {
      key,
      outcome: o,
      metrics: m.metrics,
      info: m.info,
      components: c,
      computeSeconds: m.seconds,
      host: m.host,
    });
  };

  try {
    while (true) {
      if (!interrupted && (!failure || opts.keepGoing)) {
        for (const s of stages) {
          if (done.has(s.name) || running.has(s.name)) continue;
          if (records[s.name].outcome === "failed") continue; // once per run, even with -k
          if (!Object.values(s.inputs).every((u) => done.has(u))) continue;
          const c = await componentsOf(s, manifests, kc);
          const key = await keyOf(c);
          const force = opts.force.has(s.name) || opts.force.has(s.base);
          const m = force ? undefined : await kc.store.readManifest(key);
          if (m) {
            finishCached(s, key, c, m, "cached");
            ui.line(`· ${s.name}: cached`);
            continue;
          }
          if (running.size >= opts.jobs) continue;
          records[s.name].key = key;
          records[s.name].components = c;
          running.set(s.name, runWorker(s, key, c, force));
        }
      }
      if (running.size === 0) break;
      await Promise.race(running.values());
    }
  } finally {
    if (watchdog !== undefined) {
      clearInterval(watchdog);
      Deno.removeSignalListener("SIGINT", onInt);
      Deno.removeSignalListener("SIGTERM", onTerm);
    }
    ui.close();
  }
  await kc.memo.save();
  const status = interrupted ? "interrupted" : failure ? "failed" : "ok";
  return {
    stages: records,
    status,
    exitCode: interrupted ? 130 : failure ? failExit : 0,
    failure,
  };

  function runWorker(s: PlannedStage, key: string, c: KeyComponents, force: boolean) {
    const job: Job = {
      store: kc.store.description,
      key,
      stage: s.name,
      kind: s.kind,
      modulePath: s.modulePath,
      params: s.params,
      inputs: Object.fromEntries(
        Object.entries(s.inputs).map(([n, up]) => [n, manifests.get(up)!.key]),
      ),
      externals: s.externals,
      experimentDir: opts.experimentDir,
      facets: s.facets,
      modules: Object.fromEntries(
        Object.entries(s.modules).map(([p, m]) => [p, { path: m.path, digest: m.digest! }]),
      ),
      seed: s.seed,
      components: c,
      force,
    };
    const started = performance.now();
    ui.line(`▶ ${s.name}: running (${s.kind}, key ${key.slice(0, 12)})`);

    let last: WorkerEvent | undefined;
    let logPath: string | undefined;
    const stderrTail: string[] = [];
    const onEvent = async (e: WorkerEvent) => {
      switch (e.t) {
        case "log":
          ui.log(s.name, e.line);
          break;
        case "wait":
          ui.line(`… ${s.name}: ${e.message}`);
          break;
        case "start":
          logPath = e.logPath;
          records[s.name].log = e.logPath;
          break;
        case "progress":
          if (e.op === "start") await ui.progressStart(s.name, e.total, e.label);
          else if (e.op === "update") ui.progressUpdate(s.name, e.value, e.info);
          else ui.progressStop(s.name);
          break;
        default:
          last = e;
      }
    };
    lastOutput.set(s.name, Date.now());
    watch();
    const exec = opts.executor.start(job, async (line, stream) => {
      lastOutput.set(s.name, Date.now());
      if (stream === "out") {
        let e: WorkerEvent | undefined;
        try {
          e = JSON.parse(line);
        } catch { /* a stage printed directly */ }
        if (e && typeof e === "object" && "t" in e) return await onEvent(e);
      } else {
        stderrTail.push(line);
        if (stderrTail.length > 20) stderrTail.shift();
      }
      ui.log(s.name, line);
    });
    children.set(s.name, exec);
    return (async () => {
      const st = await exec.done;
      children.delete(s.name);
      ui.progressStop(s.name);
      const rec = records[s.name];
      rec.seconds = (performance.now() - started) / 1000;
      const done = st.code === 0 && last?.t === "done" ? last : undefined;
      // Published a moment ago (by this worker or another run): damage here is outside hands.
      const m = done ? await kc.store.readManifest(key) : undefined;
      const lost = done && !m
        ? `${done.manifestPath}: ${(await kc.store.damage(key)) ?? "entry vanished"} right ` +
          `after it was published (run 'verify', then rerun)`
        : undefined;
      if (m && done) {
        finishCached(s, key, c, m, done.reused ? "reused" : "ran");
        rec.seconds = (performance.now() - started) / 1000;
        ui.line(
          done.reused
            ? `· ${s.name}: reused (another run computed it)`
            : `✓ ${s.name}: done in ${rec.seconds.toFixed(1)} s`,
        );
      } else {
        const err = last?.t === "error" ? last : undefined;
        // A worker that a signal ended was interrupted only if someone asked (Ctrl-C, a
        // scheduler's SIGTERM); anything else (the OOM killer's SIGKILL, a crash) is a failure
        // that names the signal.
        const asked = interrupted || st.signal === "SIGINT" || st.signal === "SIGTERM";
        const code = err?.exit ?? (st.signal ? (asked ? 130 : 1) : st.code || 1);
        rec.log = err?.logPath ?? logPath;
        if (st.node) rec.host = st.node;
        if (code === 130 || interrupted) {
          rec.outcome = "interrupted";
          interrupted = true;
          ui.line(`■ ${s.name}: interrupted (scratch kept for resume)`);
        } else {
          rec.outcome = "failed";
          const msg = lost ?? err?.message ??
            (st.detail ??
                (st.signal
                  ? `worker killed by signal ${st.signal}` +
                    (st.signal === "SIGKILL" ? " (often the out-of-memory killer: see dmesg)" : "")
                  : `worker exited with code ${st.code}`)) +
              (stderrTail.length ? `: ${stderrTail.slice(-3).join(" / ")}` : "");
          rec.error = msg;
          if (!failure) {
            failure = { stage: s.name, message: msg, log: rec.log };
            failExit = code === 2 ? 2 : 1;
          }
          ui.error(`✗ ${s.name}: failed: ${msg}${rec.log ? `\n  log: ${rec.log}` : ""}`);
        }
      }
      running.delete(s.name);
    })();
  }
}

export { InterruptedError };
