/**
 * Colour for the console, only where a person reads it: on a terminal, unless NO_COLOR is set
 * (https://no-color.org; Deno.noColor reads it). picocolors does the escapes; whether to use
 * them is decided here per stream, not from the environment picocolors would guess from.
 */
import { createColors } from "picocolors";

const stdoutColours = createColors(Deno.stdout.isTerminal() && !Deno.noColor);
const stderrColours = createColors(Deno.stderr.isTerminal() && !Deno.noColor);

export const colours = (stream: "stdout" | "stderr") =>
  stream === "stdout" ? stdoutColours : stderrColours;

/** A console line's leading mark in the colour of what it says (· cached, ✗ failed, ...). */
export function styleMark(text: string, stream: "stdout" | "stderr"): string {
  const c = colours(stream);
  const paint: Record<string, (s: string) => string> = {
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
