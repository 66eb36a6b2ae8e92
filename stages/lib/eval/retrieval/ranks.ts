/**
 * The two streaming phases of retrieval (see evaluate.ts): thresholds from the relevant pairs,
 * then one pass over the score matrix in blocks, counting competitors per query.
 */
import type { BlockScorer } from "./scores.ts";
import type { Group, Relevance } from "./relevance.ts";
import type { RetrievalOptions } from "./evaluate.ts";

/** Per-evaluation streaming state (all arrays global-indexed). */
export class RankState {
  readonly bestI: Float64Array;
  readonly ownT: Float64Array;
  readonly cntI: Int32Array;
  readonly cntT: Int32Array;

  constructor(
    readonly groups: Group[],
    readonly rel: Relevance,
    nI: number,
    nC: number,
  ) {
    this.bestI = new Float64Array(nI).fill(-Infinity);
    this.ownT = new Float64Array(nC).fill(-Infinity);
    this.cntI = new Int32Array(nI);
    this.cntT = new Int32Array(nC);
  }

  /** Phase 1: `pairScore(c, i)` gives the (already computed) score of a relevant pair. */
  setThresholds(pairScore: (c: number, i: number) => number): void {
    const { off, img } = this.rel;
    for (let c = 0; c < this.ownT.length; c++) {
      for (let p = off[c]; p < off[c + 1]; p++) {
        const i = img[p];
        const v = pairScore(c, i);
        if (v !== v) throw new Error(`score of (image ${i}, caption ${c}) is NaN`);
        if (v > this.ownT[c]) this.ownT[c] = v;
        if (v > this.bestI[i]) this.bestI[i] = v;
      }
    }
    // A best relevant score of -Infinity leaves the threshold at -Infinity: every competitor
    // ties or beats it, which is the pessimistic answer.
  }

  /** Phase 2: one block of scores (rows i0.., columns c0..). */
  addBlock(blk: Float32Array, i0: number, ni: number, c0: number, nc: number): void {
    const { bestI, ownT, cntI, cntT } = this;
    const { off, img } = this.rel;
    for (const g of this.groups) {
      const r0 = Math.max(i0, g.i0), r1 = Math.min(i0 + ni, g.i1);
      const s0 = Math.max(c0, g.c0), s1 = Math.min(c0 + nc, g.c1);
      if (r0 >= r1 || s0 >= s1) continue;
      for (let i = r0; i < r1; i++) {
        const thr = bestI[i];
        const base = (i - i0) * nc - c0;
        let cnt = 0;
        for (let c = s0; c < s1; c++) {
          const v = blk[base + c];
          if (v >= thr) cnt++;
          if (v >= ownT[c]) cntT[c]++;
        }
        cntI[i] += cnt;
      }
      // Remove the relevant pairs counted above.
      for (let c = s0; c < s1; c++) {
        for (let p = off[c]; p < off[c + 1]; p++) {
          const i = img[p];
          if (i < r0 || i >= r1) continue;
          const v = blk[(i - i0) * nc + (c - c0)];
          if (v >= bestI[i]) cntI[i]--;
          if (v >= ownT[c]) cntT[c]--;
        }
      }
    }
  }
}

export function checkNaN(blk: Float32Array, i0: number, c0: number, nc: number): void {
  for (let k = 0; k < blk.length; k++) {
    const v = blk[k];
    if (v !== v) {
      throw new Error(
        `score of (image ${i0 + Math.floor(k / nc)}, caption ${c0 + (k % nc)}) is NaN`,
      );
    }
  }
}

/** Scores all relevant pairs of `rel` (phase 1). Returns scores aligned with rel.img. */
export async function scoreRelevantPairs(
  scorer: BlockScorer,
  rel: Relevance,
): Promise<Float32Array> {
  const nC = rel.off.length - 1;
  const P = rel.img.length;
  const caps = new Int32Array(P);
  for (let c = 0; c < nC; c++) caps.fill(c, rel.off[c], rel.off[c + 1]);
  if (scorer.scorePairs) {
    const s = await scorer.scorePairs(rel.img, caps);
    if (s.length !== P) throw new Error(`scorePairs returned ${s.length} scores, expected ${P}`);
    return s;
  }
  // Group runs of the same image with consecutive captions into 1-row blocks.
  const out = new Float32Array(P);
  let p = 0;
  while (p < P) {
    let q = p + 1;
    while (q < P && rel.img[q] === rel.img[p] && caps[q] === caps[q - 1] + 1) q++;
    const blk = await scorer.scoreBlock(rel.img[p], 1, caps[p], q - p);
    if (blk.length !== q - p) {
      throw new Error(`scoreBlock returned ${blk.length}, expected ${q - p}`);
    }
    out.set(blk, p);
    p = q;
  }
  return out;
}

/** Streams the whole matrix once, feeding every block to all states. */
export async function streamBlocks(
  scorer: BlockScorer,
  states: RankState[],
  opts: RetrievalOptions,
): Promise<void> {
  const nI = scorer.nImages, nC = scorer.nCaptions;
  const bi = Math.max(1, opts.imageBlock ?? 256);
  const bc = Math.max(1, opts.captionBlock ?? 2048);
  const concurrency = Math.max(1, opts.concurrency ?? 4);
  const blocks: [number, number, number, number][] = [];
  for (let i0 = 0; i0 < nI; i0 += bi) {
    for (let c0 = 0; c0 < nC; c0 += bc) {
      blocks.push([i0, Math.min(bi, nI - i0), c0, Math.min(bc, nC - c0)]);
    }
  }
  let next = 0, done = 0;
  const consume = (blk: Float32Array, b: [number, number, number, number]) => {
    const [i0, ni, c0, nc] = b;
    if (blk.length !== ni * nc) {
      throw new Error(`scoreBlock(${i0}, ${ni}, ${c0}, ${nc}) returned ${blk.length} scores`);
    }
    checkNaN(blk, i0, c0, nc);
    for (const st of states) st.addBlock(blk, i0, ni, c0, nc);
    done++;
    opts.onProgress?.(done, blocks.length);
  };
  const inFlight = new Map<number, Promise<[number, Float32Array]>>();
  while (next < blocks.length || inFlight.size > 0) {
    while (next < blocks.length && inFlight.size < concurrency) {
      const id = next++;
      const b = blocks[id];
      const r = scorer.scoreBlock(b[0], b[1], b[2], b[3]);
      if (r instanceof Promise) inFlight.set(id, r.then((blk) => [id, blk]));
      else consume(r, b);
    }
    if (inFlight.size > 0) {
      const [id, blk] = await Promise.race(inFlight.values());
      inFlight.delete(id);
      consume(blk, blocks[id]);
    }
  }
}
