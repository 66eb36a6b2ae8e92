/** Mutants of the shipped experiment files, for the fuzz tests (tests/engine_fuzz.test.ts). */
import { join } from "node:path";
import fc from "fast-check";
import { ROOT } from "./cli.ts";

/** The files mutated: every shipped experiment but coco (which needs its data to resolve). */
export const SEEDS = ["tiny.yaml", "synthetic.yaml", "pmi-rank.yaml", "fashion-mnist.yaml"].map(
  (f) => Deno.readTextFileSync(join(ROOT, "experiments", f)),
);

/** YAML syntax and troublemakers inserted at random places. */
const SNIPPETS = [
  ":",
  "-",
  "- ",
  "[",
  "]",
  "{",
  "}",
  ",",
  "&a ",
  "*a",
  "<<: *a\n",
  "!!str ",
  "!!binary ",
  "---\n",
  "...\n",
  '"',
  "'",
  "#",
  "\t",
  " ",
  "  ",
  "\n",
  "? ",
  "|\n",
  ">\n",
  "%YAML 1.2\n",
  "@",
  "`",
  "\u00ff",
  "\u0000",
  "\ufeff",
  "null",
  "~",
  "1e999",
  "-1",
  "0x1F",
  ".nan",
  "true",
  "[]",
  "{}",
  "matrix: {seed: [0, 1]}\n",
  "kind: ../../x.ts\n",
  "extends: nowhere.yaml\n",
  "stages: null\n",
  "\\",
  "\\u",
  "a: &b [*b]\n",
];

type Mutation = (lines: string[]) => string[];

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.nat().map((i) => (l: string[]) => l.filter((_, j) => j !== i % l.length)),
  fc.nat().map((i) => (l: string[]) => l.flatMap((x, j) => (j === i % l.length ? [x, x] : [x]))),
  fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => (l: string[]) => {
    const out = [...l];
    const [i, j] = [a % l.length, b % l.length];
    [out[i], out[j]] = [out[j], out[i]];
    return out;
  }),
  fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => (l: string[]) => {
    const out = [...l];
    const i = a % l.length;
    const k = out[i].length ? b % out[i].length : 0;
    out[i] = out[i].slice(0, k) + out[i].slice(k + 1);
    return out;
  }),
  fc.tuple(fc.nat(), fc.nat(), fc.constantFrom(...SNIPPETS)).map(([a, b, s]) => (l: string[]) => {
    const out = [...l];
    const i = a % l.length;
    const k = b % (out[i].length + 1);
    out[i] = out[i].slice(0, k) + s + out[i].slice(k);
    return out;
  }),
);

/** A shipped experiment with 1 to 4 mutations, comments dropped (they hide most edits). */
export function mutantArbitrary(): fc.Arbitrary<string> {
  return fc.tuple(fc.constantFrom(...SEEDS), fc.array(mutation, { minLength: 1, maxLength: 4 }))
    .map(([seed, muts]) => {
      let lines = seed.split("\n").filter((l) => !/^\s*#/.test(l));
      for (const m of muts) lines = m(lines);
      return lines.join("\n");
    });
}
