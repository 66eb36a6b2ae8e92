export { dirname, join } from "node:path";
export { fileURLToPath as fromFileUrl } from "node:url";
