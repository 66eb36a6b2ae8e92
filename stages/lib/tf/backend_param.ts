/**
 * The `backend` param and its cache-key facet, shared by every stage that runs TensorFlow.js.
 * Light (zod only): stage definitions import it, cache hit or not.
 */
import { z } from "zod";
import { type BackendName, resolveBackendName } from "./backend.ts";

/** TensorFlow.js backend; `auto` = tensorflow (tfjs-node) if installed, else wasm. */
export const backendParam = z.enum(["auto", "tensorflow", "wasm", "cpu", "webgpu"]).default("auto");

/** The backend `auto` resolves to goes into the cache key (without importing TensorFlow.js). */
export const backendFacets = (p: { backend: BackendName }): Record<string, string> => ({
  backend: resolveBackendName(p.backend),
});
