/**
 * A webgpu training step holds to its budget (issue 13), on R1's model at batch 16 on any
 * WebGPU adapter (Deno's software llvmpipe here): no op on the CPU, nothing read back on a
 * non-logging step, only the batch's raw bytes uploaded (images as bytes, ids as int32) beside
 * at most a few 4-byte scalar constants that TF.js ops make from JS numbers, pooled GPU buffers
 * (at most a few new ones after warm-up), no program that adds floats with atomics, and at most
 * a third of the dispatches of TF.js's stock kernels, which a child
 * process measures with KME_WEBGPU_KERNELS=stock. bench/gpu_profile.ts does the counting.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { webgpuErrors } from "../stages/lib/tf/backend.ts";
import { webgpuTest } from "./helpers/webgpu.ts";
import { type GpuProfile, profileSteps } from "../bench/gpu_profile.ts";

const PROFILE = fileURLToPath(new URL("../bench/gpu_profile.ts", import.meta.url));
const BATCH = 16;

async function stockProfile(sim: string): Promise<GpuProfile> {
  const json = await Deno.makeTempFile({ suffix: ".json" });
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", PROFILE, "--sim", sim, "--batch", String(BATCH), "--steps", "2"]
        .concat(["--warmup", "1", "--no-timing", "--json", json]),
      env: { KME_WEBGPU_KERNELS: "stock" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    return JSON.parse(await Deno.readTextFile(json));
  } finally {
    await Deno.remove(json);
  }
}

for (const sim of ["clip", "kme"]) {
  webgpuTest(
    `ml/webgpu step (${sim}): no CPU op, no read-back, only the batch up, a third of the ` +
      "stock dispatches",
    async () => {
      const p = await profileSteps({
        case: "r1",
        sim,
        batch: BATCH,
        steps: 2,
        warmup: 3,
        timing: false,
      });
      const [plain, logging] = p.steps;
      assert.equal(logging.logging, true);
      const c = plain.counts;
      assert.deepEqual(c.cpuOps, {}, "ops on the CPU");
      // Programs that add floats with atomics (order-dependent sums) must not run.
      const atomic = Object.keys(c.dispatchesByOp).filter((k) =>
        /SplitK|UnsortedSegmentSum|Scatter/.test(k)
      );
      assert.deepEqual(atomic, [], "programs with float atomics");
      assert.equal(c.readbackBytes, 0, "bytes read back on a non-logging step");
      assert.ok(logging.counts.readbackBytes > 0, "the logging step reads its losses");
      const images = BATCH * 32 * 32 * 3;
      const ids = BATCH * 16 * 4;
      assert.equal(c.uploads.KmeUnpackPatches?.bytes, images, "images go up as bytes");
      assert.equal(c.uploads.GatherV2?.bytes, ids, "ids go up as int32");
      const others = Object.entries(c.uploads).filter(([k]) =>
        k !== "KmeUnpackPatches" && k !== "GatherV2"
      );
      for (const [k, v] of others) assert.ok(v.bytes <= 4 * v.count, `${k}: ${v.bytes} bytes`);
      assert.ok(c.uploadBytes <= images + ids + 16, `${c.uploadBytes} bytes up`);
      // The stock path made a staging buffer for every upload, every step (74 a step for R1 at
      // batch 128); ours reuses pooled buffers, and the pool of uniform buffers may still grow
      // by a few after three warm-up steps.
      assert.ok(c.buffersCreated <= 4, `${c.buffersCreated} new GPU buffers after warm-up`);
      const stock = await stockProfile(sim);
      const ratio = c.dispatches / stock.summary.dispatches;
      console.log(
        `  ${sim}: ${c.dispatches} dispatches a step, stock TF.js ${stock.summary.dispatches} ` +
          `(${(100 * ratio).toFixed(0)}%); stock uploads ${stock.summary.uploadBytes} bytes`,
      );
      assert.ok(ratio <= 1 / 3, `${c.dispatches} of ${stock.summary.dispatches} dispatches`);
      assert.deepEqual(webgpuErrors(), []);
    },
  );
}
