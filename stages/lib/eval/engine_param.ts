/**
 * The engine params whose `auto` depends on the machine (is OpenBLAS installed?), and their
 * cache-key facets: retrieval's `kme_engine` and linear-probe's `engine`. Light (zod and a
 * file-existence check): stage definitions import it, cache hit or not.
 */
import { z } from "zod";
import { findOpenBlas } from "./openblas.ts";

/**
 * KME / WPSE scoring engine: `wasm` (the same bits on every machine), `blas` (OpenBLAS sgemm,
 * 1.5-1.8x faster end to end here, equal up to f32 rounding), `auto` = blas when OpenBLAS is found, else wasm.
 */
export const kmeEngineParam = z.enum(["auto", "wasm", "blas"]).default("auto");
export type KmeEngineName = z.output<typeof kmeEngineParam>;

/** Whether `auto` picks OpenBLAS here. */
function openBlasFound(): boolean {
  try {
    return findOpenBlas() !== undefined;
  } catch {
    return true; // $KME_OPENBLAS names a missing file: the stage says so when it runs
  }
}

export function resolveKmeEngine(name: KmeEngineName): "wasm" | "blas" {
  if (name !== "auto") return name;
  return openBlasFound() ? "blas" : "wasm";
}

/** The engine `auto` resolves to goes into the cache key (without loading OpenBLAS). */
export const kmeEngineFacets = (p: { kme_engine: KmeEngineName }): Record<string, string> => ({
  kme_engine: resolveKmeEngine(p.kme_engine),
});

/**
 * The linear probe's dense products: `js` (the same bits on every machine), `blas` (OpenBLAS
 * dgemm; equal up to f64 rounding), `auto` = blas when OpenBLAS is found, else js.
 */
export const probeEngineParam = z.enum(["auto", "js", "blas"]).default("auto");
export type ProbeEngineName = z.output<typeof probeEngineParam>;

export function resolveProbeEngine(name: ProbeEngineName): "js" | "blas" {
  if (name !== "auto") return name;
  return openBlasFound() ? "blas" : "js";
}

export const probeEngineFacets = (p: { engine: ProbeEngineName }): Record<string, string> => ({
  probe_engine: resolveProbeEngine(p.engine),
});
