/**
 * What stage facets may depend on besides code (stage.ts, `facets`): the environment
 * variables named KME_* or *LIBRARY_PATH, and the system's library folders. The plan cache
 * (plan_cache.ts) and the no-op memo (noop_memo.ts) watch the same things.
 */

/** Where system libraries live (Linux, multiarch, Homebrew); facets may look for them. */
const LIBRARY_PLACES = [
  "/etc/ld.so.cache",
  "/lib",
  "/lib64",
  "/usr/lib",
  "/usr/lib64",
  "/usr/local/lib",
  "/lib/x86_64-linux-gnu",
  "/usr/lib/x86_64-linux-gnu",
  "/lib/aarch64-linux-gnu",
  "/usr/lib/aarch64-linux-gnu",
  "/opt/homebrew/opt",
  "/usr/local/opt",
];

/** The environment variables facets may read: KME_* and *LIBRARY_PATH, sorted by name. */
export function facetVariables(): [string, string][] {
  return Object.entries(Deno.env.toObject())
    .filter(([k]) => k.startsWith("KME_") || k.endsWith("LIBRARY_PATH"))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * The folders (and ld.so.cache) whose change may change a facet. A folder's mtime changes
 * when a file is added to it or removed from it: installing a library (with or without
 * ldconfig, Homebrew's opt/ links too) shows there.
 */
export function libraryPlaces(vars: [string, string][]): string[] {
  return [
    ...LIBRARY_PLACES,
    ...vars.filter(([k]) => k.endsWith("LIBRARY_PATH")).flatMap(([, v]) => v.split(":")),
  ].filter(Boolean);
}

/**
 * The node_modules folders facets may look in for optional packages (the TF.js node
 * backends): the project's and the working folder's, each with its @tensorflow scope
 * (stages/lib/tf/package_paths.ts searches the same two).
 */
export function packagePlaces(root: string): string[] {
  const places = [root, Deno.cwd()].flatMap((dir) => [
    `${dir}/node_modules`,
    `${dir}/node_modules/@tensorflow`,
  ]);
  return [...new Set(places)];
}
