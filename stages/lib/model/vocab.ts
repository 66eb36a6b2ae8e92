/**
 * Word-level vocabulary and tokenizer for captions.
 *
 * Tokens are maximal runs of Unicode letters after lower-casing (everything else, digits
 * included, separates words). Ids: PAD = 0, OOV = 1, then words by descending training
 * frequency (ties in code-point order), so the vocabulary is a deterministic function of the
 * captions and the two limits.
 */

export const PAD = 0;
export const OOV = 1;
export const PAD_TOKEN = "<pad>";
export const OOV_TOKEN = "<oov>";

const WORD = /\p{L}+/gu;

/** Lower-cased words of `text`. */
export function words(text: string): string[] {
  return text.toLowerCase().match(WORD) ?? [];
}

export interface VocabOptions {
  /** Maximum number of entries including PAD and OOV. */
  maxSize: number;
  /** Words seen fewer times are OOV. */
  minCount: number;
}

export class Vocab {
  readonly tokens: readonly string[];
  private readonly index: Map<string, number>;

  constructor(tokens: readonly string[]) {
    if (tokens[PAD] !== PAD_TOKEN || tokens[OOV] !== OOV_TOKEN) {
      throw new Error(`vocabulary must start with ${PAD_TOKEN}, ${OOV_TOKEN}`);
    }
    this.tokens = tokens;
    this.index = new Map(tokens.map((t, i) => [t, i]));
    if (this.index.size !== tokens.length) throw new Error("vocabulary has duplicate entries");
  }

  get size(): number {
    return this.tokens.length;
  }

  static build(texts: Iterable<string>, opts: VocabOptions): Vocab {
    const counts = new Map<string, number>();
    for (const t of texts) {
      for (const w of words(t)) counts.set(w, (counts.get(w) ?? 0) + 1);
    }
    const entries = [...counts].filter(([, c]) => c >= opts.minCount);
    entries.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const keep = Math.max(0, opts.maxSize - 2);
    return new Vocab([PAD_TOKEN, OOV_TOKEN, ...entries.slice(0, keep).map(([w]) => w)]);
  }

  id(word: string): number {
    return this.index.get(word) ?? OOV;
  }

  /**
   * Ids of `text`, truncated to `maxLen` and padded with PAD. A caption without any word
   * becomes a single OOV token, so every caption has at least one point.
   */
  encode(text: string, maxLen: number, out = new Int32Array(maxLen), offset = 0): Int32Array {
    const ws = words(text);
    const n = Math.min(ws.length, maxLen);
    for (let i = 0; i < maxLen; i++) out[offset + i] = i < n ? this.id(ws[i]) : PAD;
    if (n === 0 && maxLen > 0) out[offset] = OOV;
    return out;
  }

  /** Encodes a batch into one row-major [texts.length, maxLen] array. */
  encodeBatch(texts: readonly string[], maxLen: number): Int32Array {
    const out = new Int32Array(texts.length * maxLen);
    texts.forEach((t, i) => this.encode(t, maxLen, out, i * maxLen));
    return out;
  }
}
