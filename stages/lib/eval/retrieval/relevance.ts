/** Which (image, caption) pairs are relevant, as a CSR by caption, and its restriction to groups. */
/**
 * How identical caption texts attached to different images are treated:
 * - "instance": each caption instance belongs to exactly one image (`captionImage`); an
 *   identical text attached to another image is an ordinary competitor (and, scoring the
 *   same, outranks under the pessimistic tie rule). The usual COCO practice.
 * - "text": relevance by text identity (`captionText` required): caption c is relevant to
 *   every image that owns a caption with the same text id. Each instance is still one
 *   text->image query.
 */
export type DuplicateTextRule = "instance" | "text";

/** A contiguous sub-problem: images [i0, i1) with captions [c0, c1). */
export interface Group {
  i0: number;
  i1: number;
  c0: number;
  c1: number;
}

/** Relevant pairs, by caption: images img[off[c] .. off[c+1]) (ascending). */
export interface Relevance {
  off: Int32Array;
  img: Int32Array;
}

export function validateCaptionImage(captionImage: Int32Array, nImages: number): void {
  const has = new Uint8Array(nImages);
  for (let c = 0; c < captionImage.length; c++) {
    const i = captionImage[c];
    if (!(i >= 0 && i < nImages)) {
      throw new RangeError(`captionImage[${c}] = ${i} is outside [0, ${nImages})`);
    }
    has[i] = 1;
  }
  const missing = has.indexOf(0);
  if (missing >= 0) {
    throw new Error(`image ${missing} has no caption: every image must have at least one`);
  }
}

/** Global relevance CSR by caption. */
export function buildRelevance(
  captionImage: Int32Array,
  rule: DuplicateTextRule,
  captionText?: Int32Array,
): Relevance {
  const nC = captionImage.length;
  if (rule === "instance") {
    const off = new Int32Array(nC + 1);
    for (let c = 0; c <= nC; c++) off[c] = c;
    return { off, img: Int32Array.from(captionImage) };
  }
  if (!captionText || captionText.length !== nC) {
    throw new Error(`duplicateTextRule "text" needs captionText with ${nC} entries`);
  }
  const owners = new Map<number, number[]>();
  for (let c = 0; c < nC; c++) {
    const t = captionText[c];
    let list = owners.get(t);
    if (!list) owners.set(t, list = []);
    list.push(captionImage[c]);
  }
  const sorted = new Map<number, number[]>();
  for (const [t, list] of owners) sorted.set(t, [...new Set(list)].sort((a, b) => a - b));
  const off = new Int32Array(nC + 1);
  for (let c = 0; c < nC; c++) off[c + 1] = off[c] + sorted.get(captionText[c])!.length;
  const img = new Int32Array(off[nC]);
  for (let c = 0; c < nC; c++) img.set(sorted.get(captionText[c])!, off[c]);
  return { off, img };
}

/** Restricts relevance to pairs inside one group of a partition. */
export function restrictRelevance(rel: Relevance, groups: Group[], nC: number): Relevance {
  const groupOfCaption = new Int32Array(nC).fill(-1);
  groups.forEach((g, k) => groupOfCaption.fill(k, g.c0, g.c1));
  const off = new Int32Array(nC + 1);
  const img: number[] = [];
  for (let c = 0; c < nC; c++) {
    const g = groupOfCaption[c] >= 0 ? groups[groupOfCaption[c]] : undefined;
    for (let p = rel.off[c]; p < rel.off[c + 1]; p++) {
      const i = rel.img[p];
      if (g && i >= g.i0 && i < g.i1) img.push(i);
    }
    off[c + 1] = img.length;
  }
  return { off, img: Int32Array.from(img) };
}
