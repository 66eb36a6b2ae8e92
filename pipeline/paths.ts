/** File URL helpers (node:url's versions, re-exported so modules share one spelling). */
import { fileURLToPath, pathToFileURL } from "node:url";

export const fromFileUrl = (u: string | URL): string => fileURLToPath(u);
export const toFileUrl = (p: string): URL => pathToFileURL(p);
