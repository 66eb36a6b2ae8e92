/** Where the TF.js packages are on disk (node_modules of the project, or of the cwd). */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { BackendUnavailableError } from "./backend_error.ts";

/** Candidate node_modules folders: the project's (relative to this file) and the cwd's. */
export function nodeModulesDirs(): string[] {
  const dirs: string[] = [];
  try {
    const here = dirname(fileURLToPath(import.meta.url));
    dirs.push(join(here, "..", "..", "..", "node_modules"));
  } catch { /* non-file URL */ }
  try {
    dirs.push(join(Deno.cwd(), "node_modules"));
  } catch { /* no cwd permission */ }
  return dirs;
}

/** Folder of tfjs-backend-wasm's .wasm binaries, as a file path with a trailing slash. */
export function wasmBinaryDir(): string {
  for (const nm of nodeModulesDirs()) {
    const dir = join(nm, "@tensorflow", "tfjs-backend-wasm", "dist");
    if (existsSync(join(dir, "tfjs-backend-wasm-simd.wasm"))) return dir + "/";
  }
  throw new BackendUnavailableError(
    "Cannot find tfjs-backend-wasm's .wasm files under node_modules/@tensorflow/tfjs-backend-wasm/dist " +
      "(run `deno install` in the project root).",
  );
}
