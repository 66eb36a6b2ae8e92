/** `run --keep-going`: after a failure, the stages that do not depend on it still run. */
import assert from "node:assert/strict";
import { lastRecord, sandbox } from "./helpers/cli.ts";

const EXP = `
name: kgo
stages:
  bad: {kind: $STAGES/text.ts, params: {text: B, fail: true}}
  after: {kind: $STAGES/text.ts, inputs: {a: bad}, params: {text: X}}
  good: {kind: $STAGES/text.ts, params: {text: G}}
  good2: {kind: $STAGES/text.ts, inputs: {a: good}, params: {text: H}}
`;

Deno.test("run -k: a failure stops only what depends on it; without -k nothing new starts", async () => {
  await using sb = await sandbox();
  const f = await sb.write("e.yaml", EXP);
  const stop = await sb.run("run", f, "--no-report");
  assert.equal(stop.code, 1);
  let rec = await lastRecord(sb.store, "kgo");
  assert.equal(rec.stages.bad.outcome, "failed");
  assert.equal(rec.stages.good.outcome, "not-run");
  const go = await sb.run("run", f, "--no-report", "--keep-going");
  assert.equal(go.code, 1, "a failure is still a failure");
  rec = await lastRecord(sb.store, "kgo");
  assert.equal(rec.stages.bad.outcome, "failed");
  assert.equal(rec.stages.after.outcome, "not-run");
  assert.equal(rec.stages.good.outcome, "ran");
  assert.equal(rec.stages.good2.outcome, "ran");
  assert.match(go.stderr + go.stdout, /✗ bad: failed/);
});
