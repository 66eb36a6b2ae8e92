/**
 * JSON Schema of experiment files, for editors (yaml-language-server): the file structure
 * plus, per built-in kind, that kind's params.
 */
import { z } from "zod";
import { experimentFileSchema } from "../pipeline/experiment_file.ts";
import { builtinCatalog } from "../stages/registry.ts";
import type { Stage } from "../pipeline/stage.ts";

export async function experimentJsonSchema(): Promise<Record<string, unknown>> {
  // deno-lint-ignore no-explicit-any
  const schema = z.toJSONSchema(experimentFileSchema, { io: "input" }) as Record<string, any>;
  const kinds: Record<string, unknown>[] = [];
  for (const [kind, url] of Object.entries(builtinCatalog()).sort()) {
    const def = (await import(url.href)).default as Stage<unknown>;
    let params: Record<string, unknown> = {};
    try {
      params = z.toJSONSchema(def.params as z.ZodType, {
        io: "input",
        unrepresentable: "any",
      }) as Record<string, unknown>;
      delete params.$schema;
    } catch { /* a schema zod cannot express: leave params open */ }
    kinds.push({
      if: { properties: { kind: { const: kind } }, required: ["kind"] },
      then: {
        properties: { params, inputs: { propertyNames: { enum: Object.keys(def.inputs) } } },
      },
    });
  }
  const stageSchema = schema.properties.stages.additionalProperties;
  const entry = stageSchema.anyOf?.find((s: Record<string, unknown>) => s.type === "object") ??
    stageSchema;
  entry.properties.kind.examples = Object.keys(builtinCatalog()).sort();
  if (kinds.length) entry.allOf = kinds;
  schema.title = "kme-clip experiment";
  return schema;
}
