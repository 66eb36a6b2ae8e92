/**
 * Prints, as one JSON line, the WebGPU adapter this Deno sees when asked the way
 * tfjs-backend-webgpu 4.22 asks (powerPreference "high-performance"), with the limits that
 * backend copies into its device (a buffer-size limit decides how large a batch can go), or
 * `{"adapter": null}` when there is none. No imports, so it runs without node_modules or config:
 * bench/gpu/check.sh calls `deno run -A --no-config bench/gpu/adapter.ts` on the GPU machine.
 */
// deno-lint-ignore no-explicit-any
const gpu = (globalThis.navigator as any)?.gpu;
let out: Record<string, unknown> = { adapter: null, navigator_gpu: gpu !== undefined };
try {
  const adapter = gpu ? await gpu.requestAdapter({ powerPreference: "high-performance" }) : null;
  if (adapter) {
    const info = adapter.info ?? {};
    const limits: Record<string, number> = {};
    for (
      const k of [
        "maxBufferSize",
        "maxStorageBufferBindingSize",
        "maxComputeWorkgroupStorageSize",
        "maxComputeWorkgroupsPerDimension",
        "maxComputeInvocationsPerWorkgroup",
      ]
    ) limits[k] = adapter.limits[k];
    out = {
      adapter: info.description || "unknown adapter",
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      fallback: Boolean(adapter.isFallbackAdapter || info.isFallbackAdapter),
      features: [...adapter.features].sort(),
      limits,
    };
  }
} catch (e) {
  out.error = String(e);
}
console.log(JSON.stringify(out));
