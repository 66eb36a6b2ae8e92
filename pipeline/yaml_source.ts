/** A parsed YAML file that remembers where every value came from (for file:line:col errors). */
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import type { Document, Node } from "yaml";
import { ConfigError, type SourcePos } from "./errors.ts";

export type PathSeg = string | number;

export class YamlSource {
  private constructor(
    readonly file: string,
    readonly doc: Document,
    readonly lines: LineCounter,
    readonly value: unknown,
  ) {}

  /** Parses `text` (read from `file`), throwing ConfigError at the first syntax error. */
  static parse(file: string, text: string): YamlSource {
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
    const err = doc.errors[0];
    if (err) {
      const { line, col } = lines.linePos(err.pos[0]);
      const msg = err.message.replace(/\s+at line \d+, column \d+.*$/s, "").trim();
      throw new ConfigError(`invalid YAML: ${msg}`, { file, line, col });
    }
    return new YamlSource(file, doc, lines, doc.toJS({ maxAliasCount: 1000 }));
  }

  static async read(file: string): Promise<YamlSource> {
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch (e) {
      const why = e instanceof Deno.errors.NotFound ? "no such file" : String(e);
      throw new ConfigError(`cannot read experiment file: ${why}`, { file, line: 1, col: 1 });
    }
    return YamlSource.parse(file, text);
  }

  /**
   * Position of the deepest node along `path`. With `key: true` and a complete path, the
   * position of the map key itself (where "unknown param" should point).
   */
  locate(path: PathSeg[], opts: { key?: boolean } = {}): SourcePos {
    let node: unknown = this.doc.contents;
    let pos = this.#pos(node as Node | null);
    for (let i = 0; i < path.length; i++) {
      const seg = path[i];
      if (isMap(node)) {
        const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === seg);
        if (!pair) break;
        const last = i === path.length - 1;
        if (last && opts.key) return this.#pos(pair.key as Node);
        node = pair.value;
        pos = this.#pos((pair.value ?? pair.key) as Node);
      } else if (isSeq(node) && typeof seg === "number" && node.items[seg]) {
        node = node.items[seg];
        pos = this.#pos(node as Node);
      } else break;
    }
    return pos;
  }

  #pos(node: Node | null | undefined): SourcePos {
    const offset = node?.range?.[0] ?? 0;
    const { line, col } = this.lines.linePos(offset);
    return { file: this.file, line, col };
  }
}
