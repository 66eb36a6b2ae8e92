/**
 * The gradient of an embedding lookup (a gather of table rows by token id) without float
 * atomics: tfjs-webgpu's `UnsortedSegmentSum` adds the rows of repeated tokens with atomic adds,
 * in whatever order the GPU runs them, so the same seed gave different weights. Here each
 * token's rows are added in position order, always:
 * - `KmeTokenChain` [P, 2]: for each position p, the next position with the same id (or -1)
 *   and whether p is the first of its id; one thread a position, O(P^2) comparisons in all
 *   (8192 positions at coco.yaml's batch: 67M, well under a millisecond on a GPU);
 * - `KmeEmbeddingGrad` [V, C]: zeros, then one thread per (first position, column) walks its
 *   chain and writes the sum into the token's row (written in place over the zeros).
 */
import { webgpuKernel } from "./define.ts";
import { runFlat } from "./webgpu_program.ts";

export const TOKEN_CHAIN = "KmeTokenChain";
export const EMBEDDING_GRAD = "KmeEmbeddingGrad";

export const embeddingGradKernels = [
  webgpuKernel(TOKEN_CHAIN, ["ids"], ([ids], _a, backend) => {
    const p = ids.shape.reduce((x, y) => x * y, 1);
    return runFlat(
      backend,
      {
        name: "TokenChainProgram",
        outputShape: [p, 2],
        threads: p,
        inputs: ["IDS"],
        uniforms: { p: "i32" },
        body: `
        let id = IDS[index];
        var first = 1;
        for (var q = 0; q < index; q++) { if (IDS[q] == id) { first = 0; break; } }
        var next = -1;
        for (var q = index + 1; q < uniforms.p; q++) { if (IDS[q] == id) { next = q; break; } }
        result[2 * index] = next;
        result[2 * index + 1] = first;`,
      },
      [ids],
      { p },
      "int32",
    );
  }),
  webgpuKernel(EMBEDDING_GRAD, ["dy", "ids", "chain"], ([dy, ids, chain], a, backend) => {
    const [p, c] = dy.shape;
    const zeros = runFlat(
      backend,
      {
        name: "ZerosProgram",
        outputShape: [a.vocab, c],
        inputs: [],
        uniforms: {},
        body: `result[index] = 0.0;`,
      },
      [],
      {},
    );
    return runFlat(
      backend,
      {
        name: "EmbeddingGradProgram",
        outputShape: [a.vocab, c],
        threads: p * c,
        inputs: ["DY", "IDS", "CH"],
        uniforms: { cols: "i32" },
        body: `
        let pos = index / uniforms.cols;
        let k = index % uniforms.cols;
        if (CH[2 * pos + 1] == 1) {
          var acc = 0.0;
          for (var q = pos; q >= 0; q = CH[2 * q]) { acc += DY[q * uniforms.cols + k]; }
          result[IDS[pos] * uniforms.cols + k] = acc;
        }`,
      },
      [dy, ids, chain],
      { cols: c },
      "float32",
      zeros,
    );
  }),
];
