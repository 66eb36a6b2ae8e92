/** What a cache key is made of, and how two keys' components differ (for `status`). */
import { hashJson } from "./canonical.ts";
import type { CodeFingerprint } from "./fingerprint.ts";

export interface KeyComponents {
  kind: string;
  code: CodeFingerprint;
  params: Record<string, unknown>;
  /** Input name -> content digest of the upstream entry's outputs (not its key). */
  inputs: Record<string, string>;
  /** External name -> content digest of the file or folder. */
  externals: Record<string, string>;
  facets: Record<string, string>;
  seed: number;
}

export function keyOf(c: KeyComponents): Promise<string> {
  return hashJson(c);
}

/** Human-readable reasons why `next` differs from `prev`, most important first. */
export function explainChange(prev: KeyComponents, next: KeyComponents): string[] {
  const out: string[] = [];
  if (prev.kind !== next.kind) out.push(`kind: ${prev.kind} -> ${next.kind}`);
  for (const d of leafDiff(prev.params, next.params, "params")) out.push(d);
  if (prev.seed !== next.seed) out.push(`seed: ${prev.seed} -> ${next.seed}`);
  for (const name of union(prev.inputs, next.inputs)) {
    if (prev.inputs[name] !== next.inputs[name]) out.push(`input '${name}': content changed`);
  }
  for (const name of union(prev.externals, next.externals)) {
    const [a, b] = [prev.externals[name], next.externals[name]];
    if (a !== b) {
      out.push(`external '${name}': ${a && b ? "content changed" : a ? "removed" : "added"}`);
    }
  }
  for (const f of union(prev.code.files, next.code.files)) {
    const [a, b] = [prev.code.files[f], next.code.files[f]];
    if (a !== b) {
      out.push(`code: ${f}${a && b ? "" : a ? " (no longer imported)" : " (newly imported)"}`);
    }
  }
  for (const p of union(prev.code.npm, next.code.npm)) {
    if (prev.code.npm[p] !== next.code.npm[p]) out.push(`npm package: ${p}`);
  }
  for (const d of leafDiff(prev.facets, next.facets, "env")) out.push(d);
  return out;
}

function union(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  return [...new Set([...Object.keys(a ?? {}), ...Object.keys(b ?? {})])].sort();
}

/** "prefix.a.b old -> new" for every leaf that differs. */
export function leafDiff(a: unknown, b: unknown, prefix: string): string[] {
  const fa = flatten(a, prefix);
  const fb = flatten(b, prefix);
  const out: string[] = [];
  for (const k of [...new Set([...fa.keys(), ...fb.keys()])].sort()) {
    const [x, y] = [fa.get(k), fb.get(k)];
    if (x !== y) out.push(`${k} ${x ?? "(unset)"} -> ${y ?? "(unset)"}`);
  }
  return out;
}

/** Flattens nested objects to dotted paths with JSON-ish leaf text. */
export function flatten(v: unknown, prefix: string, out = new Map<string, string>()) {
  if (v !== null && typeof v === "object" && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v)) flatten(x, prefix ? `${prefix}.${k}` : k, out);
  } else if (v !== undefined) {
    out.set(prefix, typeof v === "string" ? v : JSON.stringify(v));
  }
  return out;
}
