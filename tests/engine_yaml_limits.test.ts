/**
 * Hostile experiment files (issue 17): each ends in a ConfigError at a position, before any
 * expansion eats memory or time; through the CLI, exit 2 and no stack trace.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError } from "../pipeline/errors.ts";
import { YAML_LIMITS, YamlSource } from "../pipeline/yaml_source.ts";
import { kme } from "./helpers/cli.ts";

function bomb(levels: number): string {
  const lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]'];
  let prev = "a";
  for (let i = 1; i <= levels; i++) {
    lines.push(`b${i}: &b${i} [${Array(9).fill(`*${prev}`).join(", ")}]`);
    prev = `b${i}`;
  }
  return lines.join("\n") + "\n";
}

const CASES: [string, string | Uint8Array, RegExp][] = [
  ["alias bomb", bomb(12), /^bomb\.yaml:\d+:\d+: error: invalid YAML: expands to more than 200000/],
  [
    "900 aliases of a large template",
    `t: &t {${Array.from({ length: 3000 }, (_, i) => `k${i}: ${i}`).join(", ")}}\nstages:\n` +
    Array.from({ length: 900 }, (_, i) => `  s${i}: *t\n`).join(""),
    /expands to more than 200000 values/,
  ],
  ["deep nesting", `a: ${"[".repeat(5000)}${"]".repeat(5000)}\n`, /invalid YAML: nested/],
  [
    "self-referent alias",
    "a: &a [1, *a]\n",
    /:1:11: error: invalid YAML: alias \*a refers to itself/,
  ],
  [
    "several documents",
    "name: a\n---\nname: b\n",
    /:2:1: error: invalid YAML: .*multiple documents/,
  ],
  [
    "non-UTF-8 bytes",
    new Uint8Array([...new TextEncoder().encode("name: x\nstages:\n  a: {kind: "), 0xff, 0x7d]),
    /:3:13: error: not UTF-8 text \(byte 28/,
  ],
  [
    "a collection as a key",
    "name: x\n? [a, b]\n: 1\n",
    /:2:3: error: .*mapping key must be a plain value/,
  ],
  [
    "too many bytes",
    Array.from({ length: 80_000 }, (_, i) => `k${i}: ${i}`).join("\n"),
    /:1:1: error: experiment file is 1\.\d MiB; at most 1 MiB/,
  ],
];

Deno.test("hostile YAML: each case is a ConfigError at its position, before any expansion", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kme-yaml-" });
  try {
    for (const [what, body, want] of CASES) {
      const file = join(dir, "bomb.yaml");
      if (typeof body === "string") await Deno.writeTextFile(file, body);
      else await Deno.writeFile(file, body);
      const err = await YamlSource.read(file).then(() => undefined, (e) => e);
      assert.ok(err instanceof ConfigError, `${what}: ${err}`);
      assert.match(err.toString().replace(dir + "/", ""), want, what);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("hostile YAML through the CLI: exit 2, the message, no stack trace", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kme-yaml-" });
  try {
    await Deno.writeTextFile(join(dir, "bomb.yaml"), bomb(12));
    const r = await kme(["status", "bomb.yaml", "--store", join(dir, "store")], dir);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^bomb\.yaml:\d+:\d+: error: invalid YAML: expands to more than/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the limits leave room for real experiments", async () => {
  for await (const e of Deno.readDir(new URL("../experiments", import.meta.url))) {
    if (!e.name.endsWith(".yaml")) continue;
    const text = await Deno.readTextFile(new URL(`../experiments/${e.name}`, import.meta.url));
    assert.ok(text.length * 50 < YAML_LIMITS.bytes, e.name);
    YamlSource.parse(e.name, text);
  }
});
