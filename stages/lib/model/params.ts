/**
 * Named parameters with deterministic, backend-independent initialisation.
 *
 * Initial values are drawn in JS from `keyedRng(seed, fnv1a(name))`, so they are identical on every
 * backend and do not depend on the order in which parameters are declared.
 */
import * as tf from "@tensorflow/tfjs-core";
import { keyedRng } from "../random.ts";

export type Init =
  | { kind: "normal"; std: number }
  | { kind: "const"; value: number };

export interface ParamSpec {
  name: string;
  shape: number[];
  init: Init;
  /** Whether AdamW's decoupled weight decay applies. */
  decay: boolean;
}

/** 32-bit FNV-1a hash of a string. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function initValues(spec: ParamSpec, seed: number): Float32Array {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  if (spec.init.kind === "const") {
    out.fill(spec.init.value);
  } else {
    const rng = keyedRng(seed, fnv1a(spec.name));
    // Truncated at 2 std like timm's trunc_normal_ (redraw outside).
    const std = spec.init.std;
    for (let i = 0; i < n; i++) {
      let z = rng.normal();
      while (Math.abs(z) > 2) z = rng.normal();
      out[i] = z * std;
    }
  }
  return out;
}

export class ParamStore {
  readonly specs: ParamSpec[] = [];
  readonly vars = new Map<string, tf.Variable>();

  /** Declares a parameter (no tensor yet). */
  declare(name: string, shape: number[], init: Init, decay: boolean): void {
    if (this.specs.some((s) => s.name === name)) throw new Error(`duplicate parameter ${name}`);
    this.specs.push({ name, shape, init, decay });
  }

  /** Creates the variables from their initialisers. */
  initialise(seed: number): void {
    for (const spec of this.specs) {
      const values = initValues(spec, seed);
      const v = tf.tidy(() => tf.variable(tf.tensor(values, spec.shape, "float32"), true));
      this.vars.set(spec.name, v);
    }
  }

  /** Creates the variables from stored values (every declared parameter must be present). */
  initialiseFrom(values: Map<string, Float32Array>): void {
    for (const spec of this.specs) {
      const v = values.get(spec.name);
      const n = spec.shape.reduce((a, b) => a * b, 1);
      if (v === undefined) throw new Error(`missing parameter ${spec.name}`);
      if (v.length !== n) {
        throw new Error(`parameter ${spec.name}: ${v.length} values, expected ${n}`);
      }
      this.vars.set(
        spec.name,
        tf.tidy(() => tf.variable(tf.tensor(v, spec.shape, "float32"), true)),
      );
    }
  }

  get(name: string): tf.Variable {
    const v = this.vars.get(name);
    if (v === undefined) throw new Error(`unknown parameter ${name}`);
    return v;
  }

  /** Overwrites a parameter's value (shape must match). */
  set(name: string, values: Float32Array): void {
    const v = this.get(name);
    if (values.length !== v.size) {
      throw new Error(`parameter ${name}: expected ${v.size} values, got ${values.length}`);
    }
    tf.tidy(() => v.assign(tf.tensor(values, v.shape, "float32")));
  }

  /** Number of scalar parameters. */
  count(): number {
    return this.specs.reduce((a, s) => a + s.shape.reduce((p, d) => p * d, 1), 0);
  }

  /** All values, in declaration order. */
  async read(): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const spec of this.specs) {
      out.set(spec.name, (await this.get(spec.name).data()) as Float32Array);
    }
    return out;
  }

  dispose(): void {
    for (const v of this.vars.values()) v.dispose();
    this.vars.clear();
  }
}
