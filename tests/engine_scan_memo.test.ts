/**
 * The scan memo (pipeline/scan_memo.ts) that spares a no-op rerun from reading and lexing every
 * module: it is reused only for an unchanged file, a file changed just before its scan is not
 * memoized (git's "racy" case), and an edit that keeps the size after the memo was written is
 * still seen by status and run.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ScanMemo } from "../pipeline/scan_memo.ts";
import { ROOT, sandbox } from "./helpers/cli.ts";

/** Files must be older than the memo's racy window (2 s) to be memoized. */
const pastRacyWindow = () => new Promise((r) => setTimeout(r, 2100));
const ROW = { sha: "x".repeat(64), imports: [{ spec: "./b.ts", line: 1, col: 8 }], computed: [] };

Deno.test("scan memo: reused while the file is unchanged, across processes; not for a fresh file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "a.ts"), memoPath = join(dir, "memo", "code.json");
    await Deno.writeTextFile(file, 'import "./b.ts";\n');
    const fresh = ScanMemo.load(memoPath);
    fresh.set(file, await Deno.stat(file), ROW);
    assert.equal(fresh.get(file, await Deno.stat(file)), undefined, "a file just written is racy");
    await pastRacyWindow();
    const memo = ScanMemo.load(memoPath);
    memo.set(file, await Deno.stat(file), ROW);
    assert.deepEqual(memo.get(file, await Deno.stat(file)), ROW);
    memo.save();
    assert.deepEqual(ScanMemo.load(memoPath).get(file, await Deno.stat(file)), ROW);
    // Same size, new content: stat differs, the row is not used.
    await Deno.writeTextFile(file, 'import "./c.ts";\n');
    assert.equal(ScanMemo.load(memoPath).get(file, await Deno.stat(file)), undefined);
    // A damaged memo is an empty one.
    await Deno.writeTextFile(memoPath, "{not json");
    assert.equal(ScanMemo.load(memoPath).get(file, await Deno.stat(file)), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const STAGE = `import { join } from "node:path";
import { z } from "zod";
import { defineStage } from "${ROOT}/pipeline/stage.ts";
import { MARK } from "./helper.ts";
export default defineStage({
  kind: "test/mark",
  description: "writes the helper's mark",
  params: z.strictObject({}),
  inputs: {},
  async run(ctx) {
    await Deno.writeTextFile(join(ctx.outDir, "mark.txt"), MARK);
    return { metrics: {} };
  },
});
`;

Deno.test("scan memo: a same-size edit of a memoized helper still reruns its stage", async () => {
  await using sb = await sandbox();
  await sb.write("stage.ts", STAGE);
  await sb.write("helper.ts", 'export const MARK = "A";\n');
  const exp = await sb.write("e.yaml", "name: memo\nstages:\n  mark: {kind: ./stage.ts}\n");
  await pastRacyWindow();
  assert.equal((await sb.run("run", exp, "--no-report")).code, 0);
  assert.equal((await sb.run("run", exp, "--no-report")).code, 0); // a no-op: plan from cache
  const memo = JSON.parse(await Deno.readTextFile(join(sb.store, "memo", "code.json")));
  assert.ok(join(sb.dir, "helper.ts") in memo, "the helper's scan is memoized");
  await sb.write("helper.ts", 'export const MARK = "B";\n');
  const status = await sb.run("status", exp);
  assert.match(status.stdout, /mark\s+run\b/, status.stdout);
  assert.equal((await sb.run("run", exp, "--no-report")).code, 0);
  const rec = JSON.parse(
    await Deno.readTextFile(
      join(
        sb.store,
        "runs",
        "memo",
        [...Deno.readDirSync(join(sb.store, "runs", "memo"))]
          .map((e) => e.name).sort().at(-1)!,
      ),
    ),
  );
  const out = join(sb.store, "entries", rec.stages.mark.key, "out", "mark.txt");
  assert.equal(await Deno.readTextFile(out), "B");
});
