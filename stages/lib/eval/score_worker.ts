/// <reference lib="deno.worker" />
/**
 * Web Worker side of `createParallelScorer` (scoring.ts): builds the scorer from the spec sent
 * by "init", then answers "block" and "pairs" requests, transferring the result buffers.
 */
import { createScorer, type ScorerSpec, type SyncScorer } from "./scoring.ts";

let scorer: SyncScorer | undefined;

self.onmessage = (e: MessageEvent) => {
  const m = e.data;
  try {
    if (m.type === "init") {
      scorer = createScorer(m.spec as ScorerSpec);
      m.spec = undefined; // the wasm scorer keeps a packed copy: let the clone be collected
      self.postMessage({
        type: "ready",
        nImages: scorer.nImages,
        nCaptions: scorer.nCaptions,
        description: scorer.description,
      });
      return;
    }
    if (!scorer) throw new Error("worker not initialised");
    const out = m.type === "block"
      ? scorer.scoreBlock(m.i0, m.ni, m.c0, m.nc)
      : scorer.scorePairs(m.images, m.captions);
    self.postMessage({ type: "result", id: m.id, out }, [out.buffer as ArrayBuffer]);
  } catch (err) {
    self.postMessage({
      type: "error",
      id: m.id,
      message: err instanceof Error ? err.message : String(err),
    });
  }
};
