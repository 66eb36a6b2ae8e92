/** Running the real CLI as a subprocess, in a temporary folder with its own store. */
import { dirname, fromFileUrl, join } from "./path.ts";

export const ROOT = dirname(dirname(dirname(fromFileUrl(import.meta.url))));
export const TEST_STAGES = join(ROOT, "tests", "stages");
const MAIN = join(ROOT, "cli", "main.ts");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function command(args: string[], cwd: string, env?: Record<string, string>) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", `--config=${join(ROOT, "deno.json")}`, MAIN, ...args],
    cwd,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

export async function kme(args: string[], cwd: string, env?: Record<string, string>) {
  const out = await command(args, cwd, env).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

export function spawnKme(
  args: string[],
  cwd: string,
  env?: Record<string, string>,
): Deno.ChildProcess {
  return command(args, cwd, env).spawn();
}

export interface Sandbox {
  dir: string;
  store: string;
  write(name: string, text: string): Promise<string>;
  run(...args: string[]): Promise<CliResult>;
  /** Like run, with extra environment variables. */
  runEnv(env: Record<string, string>, ...args: string[]): Promise<CliResult>;
  trace(name: string): Promise<string[]>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** A temp folder with a store; experiment files written into it; removed on dispose. */
export async function sandbox(): Promise<Sandbox> {
  const dir = await Deno.makeTempDir({ prefix: "kme-test-" });
  const store = join(dir, "store");
  return {
    dir,
    store,
    async write(name, text) {
      const p = join(dir, name);
      await Deno.mkdir(dirname(p), { recursive: true });
      await Deno.writeTextFile(p, text.replaceAll("$STAGES", TEST_STAGES).replaceAll("$DIR", dir));
      return p;
    },
    run: (...args) => kme([...args, "--store", store], dir),
    runEnv: (env, ...args) => kme([...args, "--store", store], dir, env),
    async trace(name) {
      try {
        return (await Deno.readTextFile(join(dir, name))).split("\n").filter(Boolean);
      } catch {
        return [];
      }
    },
    async [Symbol.asyncDispose]() {
      await Deno.chmod(dir, 0o755).catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Every file under `dir` with its bytes, for byte-identity comparisons. */
export async function readTree(dir: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  async function walk(d: string, rel: string) {
    for await (const e of Deno.readDir(d)) {
      const p = join(d, e.name), r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) await walk(p, r);
      else out.set(r, await Deno.readFile(p));
    }
  }
  await walk(dir, "");
  return out;
}

/** The latest run record of `experiment` in `store` (parsed). */
// deno-lint-ignore no-explicit-any
export async function lastRecord(store: string, experiment: string): Promise<any> {
  const dir = join(store, "runs", experiment);
  const ids = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  return JSON.parse(await Deno.readTextFile(join(dir, ids.at(-1)!)));
}
