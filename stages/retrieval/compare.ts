/**
 * The retrieval stage's `compare` hook (used by `diff` and the report): per seed pair (a, b),
 * the per-query differences of R@K(B) - R@K(A) for K in 1, 5, 10 and both directions, read
 * from the rank files. Light: reads the rank files only. The statistics (query bootstrap,
 * seeds x queries bootstrap) are done by the caller with stages/lib/stats/intervals.ts.
 *
 * - Each pair is two retrieval outputs on the same queries (same test set), e.g. clip and kme
 *   trained with the same seed; a and b must have the same caption -> image map.
 * - image->text: the unit is an image (one query). text->image: the unit is an image with all
 *   its captions (a cluster), so correlated captions of one image move together.
 * - `shared`: every pair has the same queries (the same caption -> image map), so one draw of
 *   units serves all pairs.
 */
import { join } from "node:path";
import type { InputHandle, PairedQueries } from "../../pipeline/stage.ts";
import { hitDifferenceUnits } from "../lib/eval/retrieval/mod.ts";

export const KS = [1, 5, 10];

async function readI32(dir: string, name: string): Promise<Int32Array | undefined> {
  try {
    const b = await Deno.readFile(join(dir, name));
    const buf = new ArrayBuffer(b.byteLength);
    new Uint8Array(buf).set(b);
    return new Int32Array(buf);
  } catch {
    return undefined;
  }
}

interface Side {
  i2t: Int32Array;
  t2i: Int32Array;
  captionImage: Int32Array;
}

async function readSide(h: InputHandle): Promise<Side | undefined> {
  const [i2t, t2i, captionImage] = await Promise.all([
    readI32(h.dir, "ranks_i2t.i32"),
    readI32(h.dir, "ranks_t2i.i32"),
    readI32(h.dir, "caption_image.i32"),
  ]);
  if (!i2t || !t2i || !captionImage || t2i.length !== captionImage.length) return undefined;
  return { i2t, t2i, captionImage };
}

const sameArray = (x: Int32Array, y: Int32Array) =>
  x.length === y.length && x.every((v, i) => v === y[i]);

/**
 * Per-query paired differences of R@K for every pair; keys like "i2t_R@1". Empty when a pair
 * lacks its rank files or its two sides were ranked on different queries.
 */
export async function compareRetrieval(
  pairs: { a: InputHandle; b: InputHandle }[],
): Promise<Record<string, PairedQueries>> {
  const sides: [Side, Side][] = [];
  for (const { a, b } of pairs) {
    const [sa, sb] = await Promise.all([readSide(a), readSide(b)]);
    if (
      !sa || !sb || sa.i2t.length !== sb.i2t.length || !sameArray(sa.captionImage, sb.captionImage)
    ) {
      return {};
    }
    sides.push([sa, sb]);
  }
  if (!sides.length) return {};
  const first = sides[0][0];
  const shared = sides.every(([s]) =>
    s.i2t.length === first.i2t.length && sameArray(s.captionImage, first.captionImage)
  );
  const out: Record<string, PairedQueries> = {};
  for (const k of KS) {
    out[`i2t_R@${k}`] = {
      pairs: sides.map(([A, B]) => hitDifferenceUnits(A.i2t, B.i2t, k)),
      shared,
    };
    out[`t2i_R@${k}`] = {
      pairs: sides.map(([A, B]) => hitDifferenceUnits(A.t2i, B.t2i, k, A.captionImage)),
      shared,
    };
  }
  return out;
}
