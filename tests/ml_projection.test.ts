/** pretrain's projected training time: the arithmetic and how it reads. */
import assert from "node:assert/strict";
import { formatDuration, project } from "../stages/pretrain/projection.ts";

Deno.test("pretrain projection: coco.yaml's 20,000 steps of 256 at 711 samples/s take 2 hours", () => {
  const p = project(20_000, 100, 256, 711.1111);
  assert.ok(Math.abs(p.totalS - 7200) < 0.01, String(p.totalS));
  assert.ok(Math.abs(p.remainingS - 7200 * 19_900 / 20_000) < 0.01);
  assert.equal(formatDuration(p.totalS), "2h 0m");
  assert.equal(project(10, 12, 8, 100).remainingS, 0, "never negative past the end");
});

Deno.test("pretrain projection: durations read as a person would say them", () => {
  assert.equal(formatDuration(7.25), "7.3s");
  assert.equal(formatDuration(95), "1m 35s");
  assert.equal(formatDuration(119.7), "2m 0s");
  assert.equal(formatDuration(5400), "1h 30m");
  assert.equal(formatDuration(3 * 86400), "3.0 days");
  assert.equal(formatDuration(Infinity), "?");
});
