/**
 * CLI conventions (issue 18): --version, --help per command, options a command does not take,
 * and --force of a stage that does not exist: exit 2 with a message, nothing ignored silently.
 */
import assert from "node:assert/strict";
import { kme, sandbox } from "./helpers/cli.ts";

const EXP = `
name: opts
stages:
  data: {kind: $STAGES/text.ts, params: {text: D}}
  train: {kind: $STAGES/text.ts, inputs: {a: data}, matrix: {text: [x, y]}}
`;

Deno.test("--version names the commit and the runtime", async () => {
  await using sb = await sandbox();
  const r = await sb.run("--version");
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    /^kme-clip ([0-9a-f]{12}|unknown) \(deno \d+\.\d+\.\d+, v8 .*, typescript .*\)\n$/,
  );
});

Deno.test("--help after a command shows that command's options only", async () => {
  await using sb = await sandbox();
  const r = await sb.run("gc", "--help");
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^usage: kme gc \[--keep N\] \[--dry-run\]/);
  assert.doesNotMatch(r.stdout, /--jobs|--by|--png/);
  assert.match(r.stdout, /common: --store DIR/);
  const all = await sb.run("--help");
  assert.match(all.stdout, /--jobs[\s\S]*--by[\s\S]*--png/);
});

Deno.test("an option the command does not take exits 2 and says whose it is", async () => {
  await using sb = await sandbox();
  const f = await sb.write("e.yaml", EXP);
  for (
    const [args, whose] of [[["status", f, "--md"], "diff, runs"], [
      ["run", f, "--by", "x"],
      "diff",
    ]]
  ) {
    const r = await sb.run(...(args as string[]));
    assert.equal(r.code, 2, r.stdout);
    assert.match(
      r.stderr,
      new RegExp(
        `^error: '${(args as string[])[0]}' takes no --\\w+ \\(it is an option of ${whose}\\)`,
      ),
    );
  }
  assert.equal((await sb.run("status", f)).code, 0);
  // Typos of a command, of an option and of a stage in -S get a suggestion.
  const cmd = await sb.run("runn", f);
  assert.equal(cmd.code, 2);
  assert.match(cmd.stderr, /^error: unknown command 'runn' \(did you mean 'run'\?\)/);
  const opt = await sb.run("status", f, "--jsn");
  assert.equal(opt.code, 2);
  assert.match(opt.stderr, /^error: 'status' takes no --jsn \(did you mean '--json'\?\)/);
  const stage = await sb.run("status", f, "-S", "stages.trian.params.text=z");
  assert.equal(stage.code, 2);
  assert.match(stage.stderr, /stage 'trian' has no 'kind' .*\(did you mean 'train'\?\)/);
  // An option with a value before the command: the value is not taken for the command.
  const before = await kme(
    ["-S", "stages.trian.params.text=z", "status", f, "--store", sb.store],
    sb.dir,
  );
  assert.equal(before.code, 2);
  assert.match(before.stderr, /stage 'trian' has no 'kind'/);
});

Deno.test("--force of no stage exits 2 with a suggestion; a swept stage by its base name works", async () => {
  await using sb = await sandbox();
  const f = await sb.write("e.yaml", EXP);
  const typo = await sb.run("run", f, "--force", "trian");
  assert.equal(typo.code, 2);
  assert.match(
    typo.stderr,
    /^error: --force trian: no such stage \(did you mean 'train'\?\); stages: data, train/,
  );
  assert.ok(!(await Deno.stat(`${sb.store}/runs`).then(() => true, () => false)), "nothing ran");
  assert.equal((await sb.run("run", f, "--force", "train", "--no-report")).code, 0);
  assert.equal((await sb.run("run", f, "--force", "train[text=x]", "--no-report")).code, 0);
});
