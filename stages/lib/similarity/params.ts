/**
 * Param definitions that more than one similarity uses under the same name (built-in params
 * are merged into pretrain's at the top level, so a shared name needs one definition).
 */
import { z } from "zod";

/** The logit scale starts at 1 / temperature_init (CLIP's 1/0.07; sony/wpse's 14.285714). */
export const temperatureInit = z.number().positive().default(0.07).describe(
  "clip / wpse: the logit scale starts at 1 / temperature_init",
);

/** Upper clamp of the logit scale (CLIP's and sony/wpse's 100). */
export const maxLogitScale = z.number().positive().default(100).describe(
  "clip / wpse: upper clamp of the logit scale",
);
