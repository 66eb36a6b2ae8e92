/// <reference lib="deno.worker" />
/**
 * Web Worker side of `createParallelScorer` (scoring.ts): loads the similarity named by the
 * spec sent with "init" (a built-in, or a plugin module by path), builds its KernelScorer, then
 * answers "block" and "pairs" requests, transferring the result buffers.
 */
import type { KernelWorkerSpec, SyncScorer } from "./scoring.ts";
import { loadSimilarity } from "../similarity/registry.ts";
import { kernelScorer } from "./similarity_scoring.ts";

let scorer: SyncScorer | undefined;

async function init(spec: KernelWorkerSpec): Promise<SyncScorer> {
  const l = await loadSimilarity(spec.similarity);
  return kernelScorer(l, spec.images, spec.captions, spec.backend);
}

self.onmessage = async (e: MessageEvent) => {
  const m = e.data;
  try {
    if (m.type === "init") {
      scorer = await init(m.spec as KernelWorkerSpec);
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
