/**
 * Colour only where a person reads it: on a terminal (a real pseudo-terminal, through
 * util-linux's `script`), never in a pipe, and never with NO_COLOR set.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, sandbox } from "./helpers/cli.ts";

const EXP = "name: col\nstages:\n  a: {kind: $STAGES/text.ts, params: {text: A}}\n";
const ESC = "\x1b[";

/** `kme ARGS` on a pseudo-terminal; its output as the terminal got it. */
async function onTerminal(args: string[], cwd: string, env: Record<string, string> = {}) {
  const cmd = [
    Deno.execPath(),
    "run",
    "--allow-all",
    "--quiet",
    `--config=${join(ROOT, "deno.json")}`,
  ]
    .concat(join(ROOT, "cli", "main.ts"), args).map((a) => `'${a}'`).join(" ");
  const out = await new Deno.Command("script", {
    args: ["-qec", cmd, "/dev/null"],
    cwd,
    env: { TERM: "xterm", ...env },
    clearEnv: false,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout);
}

Deno.test("status: coloured on a terminal, plain in a pipe and with NO_COLOR", async () => {
  await using sb = await sandbox();
  const f = await sb.write("e.yaml", EXP);
  assert.equal((await sb.run("run", f, "--no-report")).code, 0);
  const tty = await onTerminal(["status", f, "--store", sb.store], sb.dir, { NO_COLOR: "" });
  assert.match(tty, new RegExp(`a\\s+${ESC.replace("[", "\\[")}32mcached`), JSON.stringify(tty));
  const plain = await onTerminal(["status", f, "--store", sb.store], sb.dir, { NO_COLOR: "1" });
  assert.ok(!plain.includes(ESC), JSON.stringify(plain));
  assert.match(plain, /a\s+cached/);
  const piped = await sb.runEnv({ NO_COLOR: "" }, "status", f);
  assert.ok(!piped.stdout.includes(ESC), JSON.stringify(piped.stdout));
});
