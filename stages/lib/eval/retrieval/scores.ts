/** Where retrieval's scores come from: a full matrix, a block callback or a scorer object. */
/** Scores of images [imageStart, +imageCount) x captions [captionStart, +captionCount), row-major. */
export type ScoreBlockFn = (
  imageStart: number,
  imageCount: number,
  captionStart: number,
  captionCount: number,
) => Float32Array | Promise<Float32Array>;

export interface BlockScorer {
  readonly nImages: number;
  readonly nCaptions: number;
  scoreBlock: ScoreBlockFn;
  /** Optional fast path for scattered pairs (the relevant pairs of phase 1). */
  scorePairs?(images: Int32Array, captions: Int32Array): Float32Array | Promise<Float32Array>;
}

/** A full row-major [nImages x nCaptions] matrix, a block callback, or a scorer object. */
export type ScoreSource = Float32Array | ScoreBlockFn | BlockScorer;

/** Wraps a full row-major matrix as a BlockScorer (copies blocks; for tests and small cases). */
export function matrixScorer(
  matrix: Float32Array,
  nImages: number,
  nCaptions: number,
): BlockScorer {
  if (matrix.length !== nImages * nCaptions) {
    throw new RangeError(`matrix has ${matrix.length} entries, expected ${nImages}x${nCaptions}`);
  }
  return {
    nImages,
    nCaptions,
    scoreBlock(i0, ni, c0, nc) {
      const out = new Float32Array(ni * nc);
      for (let r = 0; r < ni; r++) {
        out.set(matrix.subarray((i0 + r) * nCaptions + c0, (i0 + r) * nCaptions + c0 + nc), r * nc);
      }
      return out;
    },
    scorePairs(images, captions) {
      const out = new Float32Array(images.length);
      for (let p = 0; p < images.length; p++) out[p] = matrix[images[p] * nCaptions + captions[p]];
      return out;
    },
  };
}

export function toScorer(src: ScoreSource, nCaptions: number, nImagesOpt?: number): BlockScorer {
  if (src instanceof Float32Array) {
    const nI = nImagesOpt ?? src.length / nCaptions;
    if (!Number.isInteger(nI)) {
      throw new RangeError(`score matrix length ${src.length} is not a multiple of ${nCaptions}`);
    }
    return matrixScorer(src, nI, nCaptions);
  }
  if (typeof src === "function") {
    if (nImagesOpt === undefined) throw new Error("options.nImages is required with a callback");
    return { nImages: nImagesOpt, nCaptions, scoreBlock: src };
  }
  if (src.nCaptions !== nCaptions) {
    throw new RangeError(`scorer has ${src.nCaptions} captions, captionImage has ${nCaptions}`);
  }
  if (nImagesOpt !== undefined && nImagesOpt !== src.nImages) {
    throw new RangeError(`scorer has ${src.nImages} images, options.nImages is ${nImagesOpt}`);
  }
  return src;
}
