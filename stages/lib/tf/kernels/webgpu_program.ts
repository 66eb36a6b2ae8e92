/**
 * The small surface of tfjs-backend-webgpu 4.22 that our kernels use: a program (WGSL body
 * plus shapes and uniforms, which tfjs compiles, caches by `shaderKey` and dispatches) and the
 * backends' `runWebGPUProgram` / `makeTensorInfo`. In a body, inputs are arrays named as in
 * `inputs` ("A", "B", ...), `index` is the thread's number (the flat output index by default),
 * `uniforms.<name>` the scalars declared in `uniforms`, and `result` the output array.
 */
import type { DataType, TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";

export interface WebgpuBackendLike {
  runWebGPUProgram(
    program: WebGPUProgram,
    inputs: TensorInfo[],
    outputDtype: DataType,
    uniforms?: { type: string; data: number[] }[],
    output?: TensorInfo,
  ): TensorInfo;
  disposeData(dataId: object): boolean;
}

export interface CpuBackendLike {
  data: { get(dataId: object): { values: ArrayLike<number> } };
  makeTensorInfo(shape: number[], dtype: DataType, values: ArrayLike<number>): TensorInfo;
  disposeIntermediateTensorInfo(t: TensorInfo): void;
}

export interface FlatProgramSpec {
  /** Program class name: what profiles and WebGPU error messages show. */
  name: string;
  outputShape: number[];
  /** Input array names, in the order of the inputs passed to runWebGPUProgram. */
  inputs: string[];
  /** Scalar uniforms by name, in declaration order; `runFlat` sets them by name. */
  uniforms: Record<string, "i32" | "f32">;
  /** Statements run for each `index` < size (the output's element count or `threads`). */
  body: string;
  /** Helper WGSL functions placed before main. */
  functions?: string;
  /** Threads to launch when one thread is not one output element (default: output size). */
  threads?: number;
  workgroupSize?: number;
}

const classes = new Map<string, new () => object>();

/** A program whose threads are numbered 0..n-1 (one dispatch). */
export function flatProgram(s: FlatProgramSpec): WebGPUProgram {
  const wg = s.workgroupSize ?? 64;
  const n = s.threads ?? s.outputShape.reduce((a, b) => a * b, 1);
  // A named class, so tfjs labels the pipeline and our profile counts it by name.
  let C = classes.get(s.name);
  if (!C) {
    C = { [s.name]: class {} }[s.name] as new () => object;
    classes.set(s.name, C);
  }
  const code = `
      ${s.functions ?? ""}
      fn main(index : i32) {
        if (index < uniforms.threads) {
          ${s.body}
        }
      }`;
  return Object.assign(new C(), {
    outputShape: s.outputShape,
    shaderKey: `${s.name}:${code}`,
    dispatchLayout: { x: [0] },
    // tfjs reshapes a dispatch above the 65535-workgroup limit into a grid (reshapeDispatch).
    dispatch: [Math.ceil(n / wg), 1, 1] as [number, number, number],
    variableNames: s.inputs,
    uniforms: ["threads : i32,", ...Object.entries(s.uniforms).map(([k, t]) => `${k} : ${t},`)]
      .join(" "),
    workgroupSize: [wg, 1, 1] as [number, number, number],
    getUserCode: () => code,
  }) as unknown as WebGPUProgram;
}

/**
 * Runs a flat program: `values` give its uniforms by name; `output`, when given, is written in
 * place (a program may then read `result` too).
 */
export function runFlat(
  backend: unknown,
  s: FlatProgramSpec,
  inputs: TensorInfo[],
  values: Record<string, number>,
  dtype: DataType = "float32",
  output?: TensorInfo,
): TensorInfo {
  const program = flatProgram(s);
  const n = s.threads ?? s.outputShape.reduce((a, b) => a * b, 1);
  const uniforms = [{ type: "int32", data: [n] }];
  for (const [k, t] of Object.entries(s.uniforms)) {
    if (values[k] === undefined) throw new Error(`${s.name}: no value for uniform ${k}`);
    uniforms.push({ type: t === "i32" ? "int32" : "float32", data: [values[k]] });
  }
  return (backend as WebgpuBackendLike).runWebGPUProgram(program, inputs, dtype, uniforms, output);
}

/**
 * Dispatches encoded outside `runWebGPUProgram` (kernels/adamw.ts) report here, so the step
 * counters (webgpu_counters.ts) see them.
 */
export const rawDispatches: { listener?: (name: string) => void } = {};

export function noteDispatch(name: string): void {
  rawDispatches.listener?.(name);
}
