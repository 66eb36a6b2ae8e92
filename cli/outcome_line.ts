/**
 * The last line of a run's summary. Its own module because a rerun answered by the no-op memo
 * prints it without the table code (run_summary.ts) and what that loads.
 */
import type { Outcome } from "../pipeline/records.ts";

/** "ok: 0 ran, 15 cached, 0.01 s": the status, counts of outcomes, and the wall time. */
export function summaryTail(status: string, outcomes: Outcome[], seconds: number): string {
  const n = (o: string[]) => outcomes.filter((x) => o.includes(x)).length;
  const parts = [
    `${n(["ran"])} ran`,
    `${n(["cached", "reused"])} cached`,
    ...(n(["failed"]) ? [`${n(["failed"])} failed`] : []),
    ...(n(["interrupted"]) ? [`${n(["interrupted"])} interrupted`] : []),
    ...(n(["not-run"]) ? [`${n(["not-run"])} not run`] : []),
  ];
  return `${status}: ${parts.join(", ")}, ${seconds.toFixed(2)} s`;
}
