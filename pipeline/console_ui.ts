/**
 * What a run shows on the console: one line per stage event, stage logs prefixed with the
 * stage name, and progress as bars on a TTY (cli-progress, loaded only then) or as plain
 * throttled lines otherwise (logs and CI).
 */
import { styleMark } from "./console_style.ts";
import { lazyImport } from "./lazy_import.ts";

type Info = Record<string, string | number>;

interface Bar {
  total: number;
  label: string;
  value: number;
  lastPrinted: number;
  started: number;
  // deno-lint-ignore no-explicit-any
  tty?: any;
}

export class ConsoleUI {
  readonly tty: boolean;
  #bars = new Map<string, Bar>();
  // deno-lint-ignore no-explicit-any
  #multi: any;
  // deno-lint-ignore no-explicit-any
  #cliProgress: any;

  constructor(private quiet = false, tty?: boolean) {
    this.tty = tty ?? Deno.stdout.isTerminal();
  }

  line(text: string): void {
    if (this.quiet) return;
    if (this.#multi) this.#multi.log(styleMark(text, "stdout") + "\n");
    else console.log(styleMark(text, "stdout"));
  }

  error(text: string): void {
    if (this.#multi) this.#multi.log(styleMark(text, "stdout") + "\n");
    else console.error(styleMark(text, "stderr"));
  }

  log(stage: string, text: string): void {
    this.line(`  ${stage} | ${text}`);
  }

  async progressStart(stage: string, total: number, label = ""): Promise<void> {
    const bar: Bar = { total, label, value: 0, lastPrinted: 0, started: Date.now() };
    this.#bars.set(stage, bar);
    if (this.quiet || !this.tty) return;
    if (!this.#cliProgress) {
      this.#cliProgress = (await lazyImport<typeof import("cli-progress")>("cli-progress")).default;
    }
    if (!this.#multi) {
      this.#multi = new this.#cliProgress.MultiBar({
        format: "  {stage} |{bar}| {percentage}% {value}/{total} eta {eta_formatted} {info}",
        hideCursor: true,
        clearOnComplete: true,
        stopOnComplete: false,
      }, this.#cliProgress.Presets.shades_classic);
    }
    bar.tty = this.#multi.create(total, 0, { stage, info: label });
  }

  progressUpdate(stage: string, value: number, info?: Info): void {
    const bar = this.#bars.get(stage);
    if (!bar || this.quiet) return;
    bar.value = value;
    const text = info ? Object.entries(info).map(([k, v]) => `${k}=${fmt(v)}`).join(" ") : "";
    if (bar.tty) {
      bar.tty.update(value, { stage, info: text });
      return;
    }
    const now = Date.now();
    if (now - bar.lastPrinted < 10_000) return;
    bar.lastPrinted = now;
    const pct = bar.total ? ((100 * value) / bar.total).toFixed(0) : "?";
    const rate = value / Math.max(1e-3, (now - bar.started) / 1000);
    const eta = rate > 0 ? ((bar.total - value) / rate).toFixed(0) + "s" : "?";
    this.log(
      stage,
      `${bar.label ? bar.label + " " : ""}${pct}% ${value}/${bar.total} eta ${eta} ${text}`,
    );
  }

  progressStop(stage: string): void {
    const bar = this.#bars.get(stage);
    if (!bar) return;
    if (bar.tty) this.#multi.remove(bar.tty);
    this.#bars.delete(stage);
    if (this.#multi && this.#bars.size === 0) {
      this.#multi.stop();
      this.#multi = undefined;
    }
  }

  close(): void {
    for (const s of [...this.#bars.keys()]) this.progressStop(s);
  }
}

function fmt(v: string | number): string {
  if (typeof v === "string" || Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(4);
}
