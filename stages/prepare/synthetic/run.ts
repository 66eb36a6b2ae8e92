/** Heavy part of prepare/synthetic (see model.ts for the model, render.ts for the images). */
import type { StageContext, StageResult } from "../../../pipeline/stage.ts";
import { DatasetWriter } from "../../lib/dataset/write.ts";
import { type SplitName, SPLITS } from "../../lib/dataset/format.ts";
import { labelSeed, Rng } from "../../lib/random.ts";
import { ATTR_INDEX, ATTRIBUTES, SceneModel } from "./model.ts";
import { SceneRenderer } from "./render.ts";
import type { SyntheticParams } from "./stage.ts";

export const PMI_JSON = "pmi.json";
export const PMI_MATRIX = "pmi.f32";
export const latentsFile = (split: SplitName): string => `${split}.latents.u8`;

export async function run(ctx: StageContext<SyntheticParams>): Promise<StageResult> {
  const p = ctx.params;
  ctx.signal.throwIfAborted();
  const started = performance.now();
  const model = new SceneModel({ mention: p.mention, attribute_noise: p.attribute_noise });
  const renderer = await SceneRenderer.create({
    image_size: p.image_size,
    jitter: p.jitter,
    pixel_noise: p.pixel_noise,
  });
  const shapeValues = [...ATTRIBUTES[ATTR_INDEX.shape].values];
  const writer = await DatasetWriter.create(ctx.outDir, {
    source: "synthetic",
    description: "Coloured shapes rendered from a latent (size, colour, shape, position) with " +
      "a non-uniform prior; captions from p(y|z). Labels are the shape.",
    image: { height: p.image_size, width: p.image_size, channels: 3 },
    classNames: shapeValues,
  });

  const grid_images = Math.min(p.grid_images, p.counts.test);
  const grid_captions = Math.min(p.grid_captions, p.counts.test);
  const testLatents: number[] = [];
  const gridCaps: { image: number; text: string; structure: number; s: number[] }[] = [];
  const total = p.counts.train + p.counts.val + p.counts.test;
  let done = 0;
  ctx.progress.start(total, "render");
  const pixels = new Uint8Array(p.image_size * p.image_size * 3);
  try {
    for (const split of SPLITS) {
      const n = p.counts[split];
      // Independent streams per split and per purpose: changing one split's count or the
      // number of captions leaves the other splits' images unchanged.
      const latentRng = new Rng(labelSeed(ctx.seed, "synthetic", split, "latent"));
      const captionRng = new Rng(labelSeed(ctx.seed, "synthetic", split, "caption"));
      const renderRng = new Rng(labelSeed(ctx.seed, "synthetic", split, "render"));
      const latents = new Uint8Array(n * ATTRIBUTES.length);
      for (let i = 0; i < n; i++) {
        if ((i & 255) === 0) {
          ctx.signal.throwIfAborted();
          ctx.progress.update(done);
        }
        const zi = model.sampleLatent(latentRng);
        const z = model.latent(zi);
        latents.set(z, i * z.length);
        const captions = [];
        for (let c = 0; c < p.captions_per_image; c++) {
          const cap = model.sampleCaption(captionRng, zi);
          captions.push(cap.text);
          if (split === "test" && c === 0 && i < grid_captions) {
            gridCaps.push({ image: i, text: cap.text, structure: cap.index, s: cap.structure });
          }
        }
        if (split === "test" && i < grid_images) testLatents.push(zi);
        renderer.render(z, renderRng, pixels);
        await writer.add(split, pixels, captions, z[ATTR_INDEX.shape]);
        done++;
      }
      await writer.addFile(latentsFile(split), latents);
    }
    ctx.progress.update(done);
    ctx.progress.stop();

    // Exact PMI on the held-out grid (float32, row-major [image, caption]).
    const matrix = new Float32Array(grid_images * grid_captions);
    let sum = 0;
    let sumSq = 0;
    let diag = 0;
    for (let i = 0; i < grid_images; i++) {
      for (let j = 0; j < grid_captions; j++) {
        const v = model.pmi(testLatents[i], gridCaps[j].structure);
        matrix[i * grid_captions + j] = v;
        sum += v;
        sumSq += v * v;
        if (i === j) diag += v;
      }
    }
    const bytes = new Uint8Array(matrix.length * 4);
    const view = new DataView(bytes.buffer);
    for (let k = 0; k < matrix.length; k++) view.setFloat32(k * 4, matrix[k], true);
    await writer.addFile(PMI_MATRIX, bytes);
    const attrNames = ATTRIBUTES.map((a) => a.name);
    const mi = model.mutualInformation();
    const pmiDoc = {
      format: "kme-pmi/1",
      units: "nats",
      split: "test",
      matrix: { file: PMI_MATRIX, dtype: "float32", endian: "little", layout: "row-major" },
      shape: [grid_images, grid_captions],
      images: Array.from({ length: grid_images }, (_, i) => i),
      captions: gridCaps.map((c) => ({ image: c.image, caption: 0, text: c.text })),
      imageLatents: testLatents.map((zi) => {
        const z = model.latent(zi);
        return Object.fromEntries(attrNames.map((a, k) => [a, ATTRIBUTES[k].values[z[k]]]));
      }),
      captionStructures: gridCaps.map((c) =>
        Object.fromEntries(
          attrNames.map((a, k) => [a, c.s[k] < 0 ? null : ATTRIBUTES[k].values[c.s[k]]]),
        )
      ),
      mutualInformation: mi,
    };
    await writer.addFile(PMI_JSON, JSON.stringify(pmiDoc) + "\n");

    const count = matrix.length;
    const mean = sum / count;
    await writer.finish({
      generator: {
        attributes: ATTRIBUTES.map((a) => ({ name: a.name, values: a.values })),
        latentsFiles: "<split>.latents.u8: uint8 per image per attribute, in attribute order",
        mention: p.mention,
        attribute_noise: p.attribute_noise,
        jitter: p.jitter,
        pixel_noise: p.pixel_noise,
        latentSpace: model.numLatents,
        captionStructures: model.numCaptionStructures,
      },
      pmi: { json: PMI_JSON, matrix: PMI_MATRIX },
    });
    const seconds = (performance.now() - started) / 1000;
    ctx.log(
      `prepare/synthetic: ${total} images, ${total * p.captions_per_image} captions in ` +
        `${seconds.toFixed(1)} s; I(Z;Y) = ${mi.toFixed(4)} nats`,
    );
    return {
      metrics: {
        images: total,
        captions: total * p.captions_per_image,
        mutual_information: mi,
        pmi_grid_mean: mean,
        pmi_grid_std: Math.sqrt(Math.max(0, sumSq / count - mean * mean)),
        pmi_grid_diagonal_mean: diag / Math.min(grid_images, grid_captions),
      },
      info: { seconds },
    };
  } catch (err) {
    writer.abort();
    throw err;
  }
}
