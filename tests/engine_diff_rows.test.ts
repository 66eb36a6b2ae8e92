/** diff rows (pipeline/diff.ts): natural metric order, relative change only where it means something. */
import assert from "node:assert/strict";
import { diffRecords, naturalOrder } from "../pipeline/diff.ts";
import type { RunRecord } from "../pipeline/records.ts";

function record(metrics: Record<string, number>): RunRecord {
  return {
    format: "kme-run/1",
    id: "x",
    experiment: { name: "e", file: "e.yaml", sha256: {} },
    status: "ok",
    started: "",
    finished: "",
    seconds: 0,
    argv: [],
    seed: 0,
    env: {},
    stages: {
      r: {
        kind: "retrieval",
        base: "r",
        labels: {},
        outcome: "ran",
        seconds: 0,
        params: {},
        inputs: {},
        seed: 0,
        facets: {},
        metrics,
      },
    },
  };
}

Deno.test("diff: R@1, R@5, R@10 in natural order", () => {
  assert.deepEqual(["R@10", "R@5", "R@1", "a2", "a10"].sort(naturalOrder), [
    "a2",
    "a10",
    "R@1",
    "R@5",
    "R@10",
  ]);
  const rows = diffRecords(
    record({ "i2t_R@1": 1, "i2t_R@10": 3, "i2t_R@5": 2 }),
    record({ "i2t_R@1": 2, "i2t_R@10": 4, "i2t_R@5": 3 }),
    false,
  );
  const names = rows.map((r) => r.name).filter((n) => n.includes("R@"));
  assert.deepEqual(names.map((n) => n.replace(/^.*i2t_/, "")), ["R@1", "R@5", "R@10"]);
});

Deno.test("diff: relative change only between positive values of a comparable size", () => {
  const rows = diffRecords(
    record({ recall: 40, shift: -2, chosen_c: 0.01, same: 1 }),
    record({ recall: 50, shift: 1.6, chosen_c: 1.09, same: 1 }),
    false,
  );
  const rel = Object.fromEntries(rows.map((r) => [r.name.replace(/^.*\./, ""), r.rel]));
  assert.equal(rel.recall, 0.25);
  assert.equal(rel.shift, undefined, "a shift that crosses zero has no relative change");
  assert.equal(rel.chosen_c, undefined, "x109 is not a percentage anyone reads");
  assert.ok(!("same" in rel), "unchanged rows are hidden");
});
