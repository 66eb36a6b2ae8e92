/** Shared bits of the test stages. */
export async function appendTrace(path: string, line: string): Promise<void> {
  await Deno.writeTextFile(path, `${line}\n`, { append: true });
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      reject(signal.reason);
    }, { once: true });
  });
}
