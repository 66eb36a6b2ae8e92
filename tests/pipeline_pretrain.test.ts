/**
 * The pretrain stage through the real engine on the embedded synthetic data (experiments/
 * tiny.yaml): loss falls well below log(batch) for clip and kme, and a run killed with
 * SIGKILL mid-training resumes from its checkpoint to bit-identical weights.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { lastRecord, ROOT, sandbox, spawnKme } from "./helpers/cli.ts";

const TINY = join(ROOT, "experiments", "tiny.yaml");

Deno.test("tiny clip and kme models learn the synthetic world: loss well below log(batch)", async () => {
  await using sb = await sandbox();
  const r = await sb.run("run", TINY, "train");
  assert.equal(r.code, 0, r.stderr);
  const rec = await lastRecord(sb.store, "tiny");
  for (const sim of ["clip", "kme"]) {
    const s = rec.stages[`train[similarity=${sim}]`];
    assert.equal(s.outcome, "ran");
    assert.equal(s.facets.backend, "wasm");
    assert.equal(s.info.backend, "wasm");
    // log(32) = 3.47; at least half a nat below it (the data's own floor is far lower).
    assert.ok(s.metrics.val_loss < Math.log(32) - 0.5, `${sim}: val_loss ${s.metrics.val_loss}`);
  }
});

Deno.test("pretrain killed with SIGKILL mid-run resumes to bit-identical weights", async () => {
  const variant = () => `
name: kill
extends: ${TINY}
stages:
  train:
    matrix: null
    params: {similarity: clip, steps: 120}
`;
  await using ref = await sandbox();
  const refFile = await ref.write("kill.yaml", variant());
  assert.equal((await ref.run("run", refFile)).code, 0);
  const refRec = await lastRecord(ref.store, "kill");
  const refModel = await Deno.readFile(
    join(ref.store, "entries", refRec.stages.train.key, "out", "model.bin"),
  );

  await using sb = await sandbox();
  const f = await sb.write("kill.yaml", variant());
  const child = spawnKme(["run", f, "--store", sb.store], sb.dir);
  // Wait for a checkpoint of the training stage to appear in scratch, then kill the run.
  const scratch = join(sb.store, "scratch");
  let found = false;
  for (let i = 0; i < 600 && !found; i++) {
    await new Promise((r) => setTimeout(r, 100));
    try {
      for (const k of Deno.readDirSync(scratch)) {
        if (
          [...Deno.readDirSync(join(scratch, k.name))].some((e) => /ckpt|checkpoint/.test(e.name))
        ) {
          found = true;
        }
      }
    } catch { /* not there yet */ }
  }
  assert.ok(found, "a checkpoint appeared");
  child.kill("SIGKILL");
  await child.status;
  await child.stdout.cancel().catch(() => {});
  await child.stderr.cancel().catch(() => {});

  // status says where the rerun picks up, in the stage's words.
  const st = await sb.run("status", f);
  assert.match(st.stdout, /train\s+run\s+unfinished: .*resumes from checkpoint at step \d+ of 120/);
  const r = await sb.run("run", f);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /resum/i);
  const rec = await lastRecord(sb.store, "kill");
  const model = await Deno.readFile(
    join(sb.store, "entries", rec.stages.train.key, "out", "model.bin"),
  );
  assert.equal(rec.stages.train.key, refRec.stages.train.key);
  assert.deepEqual(model, refModel);
});

Deno.test("a forced retrain publishes the same bytes, so everything below it stays cached", async () => {
  await using sb = await sandbox();
  const f = await sb.write(
    "cutoff.yaml",
    `
name: cutoff
extends: ${TINY}
stages:
  train:
    matrix: null
    params: {similarity: kme, steps: 30}
  embed_train: null
  linear_probe: null
`,
  );
  const first = await sb.run("run", f, "embed", "--no-report");
  assert.equal(first.code, 0, first.stderr);
  const again = await sb.run("run", f, "embed", "--force", "train", "--no-report");
  assert.equal(again.code, 0, again.stderr);
  const rec = await lastRecord(sb.store, "cutoff");
  assert.equal(rec.stages.train.outcome, "ran");
  assert.equal(rec.stages.embed.outcome, "cached", "embed reran: the retrain's bytes differ");
});
