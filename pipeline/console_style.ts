/**
 * Colour for the console, only where a person reads it: on a terminal, unless NO_COLOR is set
 * (https://no-color.org; Deno.noColor reads it). ansi-styles holds the escapes; whether to use
 * them is decided here per stream. (picocolors did this until it showed up in the no-op
 * rerun's profile: as a CommonJS module that reads `process` and node:tty it starts Deno's
 * Node-compatibility layer; ansi-styles is plain data in an ES module, vendored as
 * vendor/README.md says why.)
 */
// @ts-types="../vendor/ansi-styles@6.2.3/index.d.ts"
import styles from "../vendor/ansi-styles@6.2.3/index.js";

type Paint = (s: string) => string;
export interface Colours {
  red: Paint;
  green: Paint;
  yellow: Paint;
  cyan: Paint;
  dim: Paint;
  bold: Paint;
}

function palette(enabled: boolean): Colours {
  const paint = (style: { open: string; close: string }): Paint =>
    enabled ? (s) => style.open + s + style.close : String;
  return {
    red: paint(styles.red),
    green: paint(styles.green),
    yellow: paint(styles.yellow),
    cyan: paint(styles.cyan),
    dim: paint(styles.dim),
    bold: paint(styles.bold),
  };
}

const stdoutColours = palette(Deno.stdout.isTerminal() && !Deno.noColor);
const stderrColours = palette(Deno.stderr.isTerminal() && !Deno.noColor);

export const colours = (stream: "stdout" | "stderr") =>
  stream === "stdout" ? stdoutColours : stderrColours;

/** A console line's leading mark in the colour of what it says (· cached, ✗ failed, ...). */
export function styleMark(text: string, stream: "stdout" | "stderr"): string {
  const c = colours(stream);
  const paint: Record<string, Paint> = {
    "·": c.dim,
    "▶": c.cyan,
    "✓": c.green,
    "✗": c.red,
    "■": c.yellow,
    "…": c.dim,
    "!": c.yellow,
  };
  const f = paint[text[0]];
  return f ? f(text[0]) + text.slice(1) : text;
}
