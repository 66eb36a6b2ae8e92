/**
 * Registering and calling our webgpu kernels. A kernel here is a function of input tensors and
 * numeric attributes that runs one or a few flat programs (webgpu_program.ts); `callKernel`
 * runs it through the engine, so it is disposed, profiled and counted like any TF.js op.
 * Gradients are not registered: the ops that use these kernels (stages/lib/model/gpu_ops.ts)
 * wrap them in `tf.customGrad`.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";

export type WebgpuKernelFn = (
  inputs: TensorInfo[],
  attrs: Record<string, number>,
  backend: unknown,
) => TensorInfo;

/** A webgpu kernel named `name` whose inputs are passed in the order of `inputNames`. */
export function webgpuKernel(name: string, inputNames: string[], fn: WebgpuKernelFn): KernelConfig {
  return {
    kernelName: name,
    backendName: "webgpu",
    kernelFunc: (({ inputs, attrs, backend }: {
      inputs: Record<string, TensorInfo>;
      attrs: Record<string, number>;
      backend: unknown;
    }) => fn(inputNames.map((n) => inputs[n]), attrs ?? {}, backend)) as never,
  };
}

/** Runs kernel `name` on the active backend. */
export function callKernel<T extends tf.Tensor>(
  name: string,
  inputs: Record<string, tf.Tensor>,
  attrs: Record<string, number> = {},
): T {
  return tf.engine().runKernel(name, inputs as never, attrs as never) as T;
}

/** Whether the active backend has kernel `name` (our fused ops exist on webgpu only). */
export function hasKernel(name: string): boolean {
  return tf.getKernel(name, tf.getBackend()) !== undefined;
}
