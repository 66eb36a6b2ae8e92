/**
 * The `kme_engine` param of the retrieval stage and its cache-key facet. Light (zod and a
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

export function resolveKmeEngine(name: KmeEngineName): "wasm" | "blas" {
  if (name !== "auto") return name;
  try {
    return findOpenBlas() !== undefined ? "blas" : "wasm";
  } catch {
    return "blas"; // $KME_OPENBLAS names a missing file: the stage says so when it runs
  }
}

/** The engine `auto` resolves to goes into the cache key (without loading OpenBLAS). */
export const kmeEngineFacets = (p: { kme_engine: KmeEngineName }): Record<string, string> => ({
  kme_engine: resolveKmeEngine(p.kme_engine),
});
