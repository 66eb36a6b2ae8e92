/** A parsed YAML file that remembers where every value came from (for file:line:col errors). */
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import type { Document, Node } from "yaml";
import { ConfigError, type SourcePos } from "./errors.ts";

export type PathSeg = string | number;

/**
 * Resource limits on an experiment file, so that a hostile or mistaken file fails fast with a
 * message instead of exhausting memory (an alias bomb, 900 aliases of a 1 MB template) or
 * parsing for minutes (50 MB of keys). Experiment files describe stages; data lives in files
 * they name, so these are far above any real experiment (the largest here is ~4 KB).
 */
export const YAML_LIMITS = {
  /** Bytes of one file. */
  bytes: 1 << 20,
  /** Nodes (scalars, maps, sequences) once every alias is expanded. */
  nodes: 200_000,
  /** Nesting depth of maps and sequences. */
  depth: 200,
};

/** Where an override's positions point: its flag, as typed (`-S path=value`). */
interface FlagDisplay {
  /** Shown as the "file" of positions: `-S stages.train.params.lr=0.001`. */
  label: string;
  /** The path the value is set at; positions inside the value are offset past `path=`. */
  prefix: PathSeg[];
  /** 1-based column of the value's first character in the label. */
  valueCol: number;
}

export class YamlSource {
  #flag: FlagDisplay | undefined;

  private constructor(
    readonly file: string,
    readonly doc: Document,
    readonly lines: LineCounter,
    readonly value: unknown,
  ) {}

  /**
   * A command-line override `-S a.b.c=VALUE` as a source: VALUE is YAML (a number, a string,
   * a list, `null` to remove), set at path a.b.c. `file` is the experiment file, so that
   * relative paths in VALUE resolve against it as they would in the file; positions name the
   * flag. Throws ConfigError at the flag when it is not PATH=VALUE.
   */
  static override(experimentFile: string, flag: string): { source: YamlSource; path: string[] } {
    const label = `-S ${flag}`;
    const eq = flag.indexOf("=");
    const path = eq > 0 ? flag.slice(0, eq).split(".") : [];
    if (eq <= 0 || path.some((seg) => seg.trim() === "")) {
      throw new ConfigError(
        "expected -S PATH=VALUE, e.g. -S stages.train.params.lr=0.001 (PATH: keys of the " +
          "experiment file, joined by dots)",
        { file: label, line: 1, col: 4 },
      );
    }
    const valueText = flag.slice(eq + 1);
    let parsed: YamlSource;
    try {
      parsed = YamlSource.parse(label, valueText);
    } catch (e) {
      if (!(e instanceof ConfigError) || !e.pos) throw e;
      throw new ConfigError(e.message, { ...e.pos, file: label, col: 3 + eq + 1 + e.pos.col });
    }
    const source = new YamlSource(experimentFile, parsed.doc, parsed.lines, parsed.value);
    source.#flag = { label, prefix: path, valueCol: 3 + eq + 2 };
    return { source, path };
  }

  /** Parses `text` (read from `file`), throwing ConfigError at the first syntax error. */
  static parse(file: string, text: string): YamlSource {
    const at1 = { file, line: 1, col: 1 };
    if (text.length > YAML_LIMITS.bytes) {
      throw new ConfigError(
        `experiment file is ${(text.length / 2 ** 20).toFixed(1)} MiB; at most ` +
          `${YAML_LIMITS.bytes / 2 ** 20} MiB (put data in files the experiment names)`,
        at1,
      );
    }
    const lines = new LineCounter();
    let doc: Document;
    try {
      doc = parseDocument(text, {
        lineCounter: lines,
        prettyErrors: false,
        uniqueKeys: true,
        logLevel: "error", // its warnings are checked here and reported as errors
      });
    } catch (e) {
      // The parser recurses: input nested past the stack ends here, not in a stack trace.
      if (e instanceof RangeError) throw new ConfigError("invalid YAML: nested too deeply", at1);
      throw e;
    }
    const err = doc.errors[0];
    if (err) {
      const { line, col } = lines.linePos(err.pos[0]);
      const msg = err.message.replace(/\s+at line \d+, column \d+.*$/s, "").trim()
        .replace(/^Maximum call stack size exceeded$/, "nested too deeply");
      throw new ConfigError(`invalid YAML: ${msg}`, { file, line, col });
    }
    const src = new YamlSource(file, doc, lines, undefined);
    src.#checkSize(doc.contents as Node | null);
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: -1 }); // bounded by #checkSize, which says where
    } catch (e) {
      if (e instanceof RangeError || e instanceof ReferenceError) {
        throw new ConfigError(`invalid YAML: ${e.message}`, at1);
      }
      throw e;
    }
    return new YamlSource(file, doc, lines, value);
  }

  static async read(file: string): Promise<YamlSource> {
    let bytes: Uint8Array;
    try {
      const st = await Deno.stat(file);
      if (st.isFile && st.size > YAML_LIMITS.bytes) {
        throw new ConfigError(
          `experiment file is ${(st.size / 2 ** 20).toFixed(1)} MiB; at most ` +
            `${YAML_LIMITS.bytes / 2 ** 20} MiB (put data in files the experiment names)`,
          { file, line: 1, col: 1 },
        );
      }
      bytes = await Deno.readFile(file);
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      const why = e instanceof Deno.errors.NotFound
        ? "no such file"
        : e instanceof Deno.errors.IsADirectory
        ? "it is a folder"
        : String((e as Error).message ?? e);
      throw new ConfigError(`cannot read experiment file: ${why}`, { file, line: 1, col: 1 });
    }
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      const at = firstInvalidUtf8(bytes);
      const before = new TextDecoder().decode(bytes.subarray(0, at));
      const line = before.split("\n").length;
      const col = before.length - before.lastIndexOf("\n");
      throw new ConfigError(`not UTF-8 text (byte ${at} is not valid UTF-8)`, { file, line, col });
    }
    return YamlSource.parse(file, text);
  }

  /**
   * Counts the nodes the document expands to (aliases included, each anchor's size computed
   * once) and its depth, and stops at the first limit with the position of the node that
   * crosses it: toJS would otherwise build the whole expansion first.
   */
  #checkSize(root: Node | null) {
    const sizes = new Map<Node, number>();
    const visiting = new Set<Node>();
    let total = 0;
    const size = (node: unknown, depth: number): number => {
      if (!node || typeof node !== "object") return 0;
      const n = node as Node;
      if (depth > YAML_LIMITS.depth) {
        throw new ConfigError(
          `invalid YAML: nested more than ${YAML_LIMITS.depth} levels deep`,
          this.#pos(n),
        );
      }
      if (isAlias(n)) {
        const target = n.resolve(this.doc) as Node | undefined;
        if (!target) return 1;
        if (visiting.has(target)) {
          throw new ConfigError(`invalid YAML: alias *${n.source} refers to itself`, this.#pos(n));
        }
        const known = sizes.get(target);
        const s = known ?? size(target, depth);
        total += known ?? 0; // a first visit already counted itself inside size()
        if (total > YAML_LIMITS.nodes) this.#tooBig(n);
        return s;
      }
      const cached = sizes.get(n);
      if (cached !== undefined) return cached;
      visiting.add(n);
      let s = 1;
      total += 1;
      if (total > YAML_LIMITS.nodes) this.#tooBig(n);
      if (isMap(n) || isSeq(n)) {
        for (const item of n.items as unknown[]) {
          if (isPair(item)) {
            if (isMap(item.key) || isSeq(item.key)) {
              throw new ConfigError(
                "invalid YAML: a mapping key must be a plain value (text or a number), " +
                  "not a mapping or a list",
                this.#pos(item.key as Node),
              );
            }
            s += size(item.key, depth + 1) + size(item.value, depth + 1);
          } else s += size(item, depth + 1);
        }
      }
      visiting.delete(n);
      sizes.set(n, s);
      return s;
    };
    size(root, 0);
  }

  #tooBig(n: Node): never {
    throw new ConfigError(
      `invalid YAML: expands to more than ${YAML_LIMITS.nodes} values (through aliases?); ` +
        "an experiment file is far smaller",
      this.#pos(n),
    );
  }

  /**
   * Position of the deepest node along `path`. With `key: true` and a complete path, the
   * position of the map key itself (where "unknown param" should point).
   */
  locate(path: PathSeg[], opts: { key?: boolean } = {}): SourcePos {
    const flag = this.#flag;
    if (flag) {
      const inside = flag.prefix.every((seg, i) => path[i] === seg) &&
        path.length >= flag.prefix.length;
      if (!inside) return { file: flag.label, line: 1, col: 4 }; // the path part of the flag
      if (opts.key && path.length === flag.prefix.length) {
        // The key the flag sets: its last path segment.
        const before = flag.prefix.slice(0, -1).join(".");
        return { file: flag.label, line: 1, col: 4 + (before ? before.length + 1 : 0) };
      }
      const pos = this.#locateIn(path.slice(flag.prefix.length), opts);
      return { file: flag.label, line: 1, col: flag.valueCol + pos.col - 1 };
    }
    return this.#locateIn(path, opts);
  }

  #locateIn(path: PathSeg[], opts: { key?: boolean }): SourcePos {
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

/** Index of the first byte that does not start or continue a valid UTF-8 sequence. */
function firstInvalidUtf8(bytes: Uint8Array): number {
  let lo = 0, hi = bytes.length;
  // The longest prefix with no invalid byte, by bisection (streaming decode accepts a prefix
  // that ends inside a sequence, so validity is monotone in the length).
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    try {
      new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, mid), { stream: true });
      lo = mid;
    } catch {
      hi = mid - 1;
    }
  }
  return lo;
}
