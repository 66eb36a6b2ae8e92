/** `kme ui` as a real subprocess on 127.0.0.1 and a free port, for the dashboard's tests. */
import { spawnKme } from "./cli.ts";

export interface RunningUi {
  url: string;
  child: Deno.ChildProcess;
  stop(): Promise<void>;
}

export async function startUi(store: string, cwd: string): Promise<RunningUi> {
  const child = spawnKme(["ui", "--port", "0", "--store", store], cwd);
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) {
      const err = await new Response(child.stderr).text();
      throw new Error(`kme ui exited before listening: ${text}${err}`);
    }
    text += value;
  }
  const url = text.split("\n")[0].trim();
  // Keep draining stdout so that the child never blocks on a full pipe.
  (async () => {
    while (!(await reader.read()).done) { /* discard */ }
  })().catch(() => {});
  return {
    url,
    child,
    async stop() {
      try {
        child.kill("SIGINT");
      } catch { /* already gone */ }
      await child.status;
      await child.stderr.cancel().catch(() => {});
    },
  };
}
