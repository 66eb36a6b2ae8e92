/** Heavy part of prepare/synthetic (the world: stages/lib/synthetic/; the images: render.ts, symbolic.ts). */
import { type StageContext, StageInputError, type StageResult } from "../../../pipeline/stage.ts";
import { DatasetWriter } from "../../lib/dataset/write.ts";
import { type SplitName, SPLITS } from "../../lib/dataset/format.ts";
import { labelSeed, Rng } from "../../lib/random.ts";
import { ATTR_INDEX, ATTRIBUTES, SceneModel } from "../../lib/synthetic/scene_model.ts";
import { OccludedWorld } from "../../lib/synthetic/occlusion.ts";
import { SceneRenderer } from "./render.ts";
import { checkSymbolicSize, renderSymbolic } from "./symbolic.ts";
import type { SyntheticParams } from "./stage.ts";
import { RANK_RTOL, spectrum, type SpectrumSummary } from "../../lib/spectrum.ts";

export const PMI_JSON = "pmi.json";
export const PMI_MATRIX = "pmi.f32";
export const SPECTRA_JSON = "spectra.json";
export const latentsFile = (split: SplitName): string => `${split}.latents.u8`;
export const occlusionFile = (split: SplitName): string => `${split}.occlusion.u8`;

export async function run(ctx: StageContext<SyntheticParams>): Promise<StageResult> {
  const p = ctx.params;
  ctx.signal.throwIfAborted();
  const started = performance.now();
  // The occluded world when `occlusion` is set; otherwise the revealed world, exactly as before.
  const world = p.occlusion
    ? new OccludedWorld({ mention: p.mention, attribute_noise: p.attribute_noise }, p.occlusion)
    : undefined;
  const model = world
    ? world.scene
    : new SceneModel({ mention: p.mention, attribute_noise: p.attribute_noise });
  const symbolic = p.render === "symbolic";
  if (symbolic) {
    try {
      checkSymbolicSize(p.image_size);
    } catch (e) {
      throw new StageInputError(`params.image_size: ${(e as Error).message}`);
    }
  }
  const renderer = await SceneRenderer.create({
    image_size: p.image_size,
    jitter: p.jitter,
    pixel_noise: p.pixel_noise,
  });
  const shapeValues = [...ATTRIBUTES[ATTR_INDEX.shape].values];
  const writer = await DatasetWriter.create(ctx.outDir, {
    source: "synthetic",
    description: (symbolic
      ? "A 2x2 grid of flat cells naming a latent (size, colour, shape, position) "
      : "Coloured shapes rendered from a latent (size, colour, shape, position) ") +
      "with a non-uniform prior; captions from p(y|z). Labels are the shape.",
    image: { height: p.image_size, width: p.image_size, channels: 3 },
    classNames: shapeValues,
  });

  const grid_images = Math.min(p.grid_images, p.counts.test);
  const grid_captions = Math.min(p.grid_captions, p.counts.test);
  const testLatents: number[] = [];
  const testMasks: number[] = [];
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
      const maskRng = world && new Rng(labelSeed(ctx.seed, "synthetic", split, "occlusion"));
      const masks = world && new Uint8Array(n);
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
        if (world) {
          const hidden = world.sampleMask(maskRng!);
          masks![i] = hidden;
          if (split === "test" && i < grid_images) testMasks.push(hidden);
          if (symbolic) renderSymbolic(z, hidden, p.image_size, pixels);
          else renderer.renderOccluded(z, hidden, renderRng, pixels);
        } else if (symbolic) {
          renderSymbolic(z, 0, p.image_size, pixels);
        } else {
          renderer.render(z, renderRng, pixels);
        }
        await writer.add(split, pixels, captions, z[ATTR_INDEX.shape]);
        done++;
      }
      await writer.addFile(latentsFile(split), latents);
      if (masks) await writer.addFile(occlusionFile(split), masks);
    }
    ctx.progress.update(done);
    ctx.progress.stop();

    // Exact PMI on the held-out grid (float32, row-major [image, caption]).
    const matrix = new Float32Array(grid_images * grid_captions);
    const grid64 = new Float64Array(grid_images * grid_captions);
    let sum = 0;
    let sumSq = 0;
    let diag = 0;
    for (let i = 0; i < grid_images; i++) {
      const row = world &&
        world.occlusion.pmiRow(world.occlusion.classOf(testLatents[i], testMasks[i]));
      for (let j = 0; j < grid_captions; j++) {
        const v = row
          ? row[gridCaps[j].structure]
          : model.pmi(testLatents[i], gridCaps[j].structure);
        matrix[i * grid_captions + j] = v;
        grid64[i * grid_captions + j] = v;
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
    const mi = world ? world.occlusion.mutualInformation() : model.mutualInformation();
    const pmiDoc: Record<string, unknown> = {
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
    if (world) {
      pmiDoc.world = "occluded";
      // What each grid image shows: its visible values, null where hidden. PMI is computed from
      // these (the posterior given them), not from imageLatents.
      pmiDoc.imageVisible = testLatents.map((zi, i) => {
        const z = model.latent(zi);
        return Object.fromEntries(
          attrNames.map((a, k) => [a, (testMasks[i] >> k) & 1 ? null : ATTRIBUTES[k].values[z[k]]]),
        );
      });
      // Exact log p(y) of each column's text (structure and wording), for the pmi stage.
      pmiDoc.captionLogProb = gridCaps.map((c) => model.captionLogProb(c.text)!);
    }
    await writer.addFile(PMI_JSON, JSON.stringify(pmiDoc) + "\n");

    // Spectra and numerical ranks of PMI and exp(PMI): over all image classes x caption
    // structures (exact), and over the test grid (docs/dataset-format.md).
    const t0 = performance.now();
    const exact = world ? world.occlusion.pmiMatrix().data : revealedPmiMatrix(model);
    const nS = model.numCaptionStructures;
    const nX = exact.length / nS;
    ctx.progress.start(4, "spectra");
    const spectrumOf = (a: Float64Array, rows: number, cols: number, k: number) => {
      ctx.signal.throwIfAborted();
      const out = spectrum(a, rows, cols);
      ctx.progress.update(k);
      return out;
    };
    const spectra = {
      rtol: RANK_RTOL,
      exact: {
        rows: world ? "image classes with p > 0 (hidden attributes x visible values)" : "latents",
        cols: "caption structures",
        pmi: spectrumOf(exact, nX, nS, 1),
        expPmi: spectrumOf(exact.map(Math.exp), nX, nS, 2),
      },
      grid: {
        rows: "grid test images",
        cols: "grid captions (columns of pmi.f32)",
        pmi: spectrumOf(grid64, grid_images, grid_captions, 3),
        expPmi: spectrumOf(grid64.map(Math.exp), grid_images, grid_captions, 4),
      },
    };
    ctx.progress.stop();
    ctx.signal.throwIfAborted();
    const spectraSeconds = (performance.now() - t0) / 1000;
    const spectraDoc = {
      format: "kme-spectra/1",
      ...spectra,
      exact: {
        ...spectra.exact,
        pmi: rounded(spectra.exact.pmi),
        expPmi: rounded(spectra.exact.expPmi),
      },
      grid: {
        ...spectra.grid,
        pmi: rounded(spectra.grid.pmi),
        expPmi: rounded(spectra.grid.expPmi),
      },
    };
    if (world) await writer.addFile(SPECTRA_JSON, JSON.stringify(spectraDoc) + "\n");

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
        ...(world
          ? {
            occlusion: {
              ...world.params,
              occlusionFiles: "<split>.occlusion.u8: uint8 per image, bit k set = attribute k " +
                "hidden (attribute order)",
              archetypeLatents: Array.from(world.archetypes),
              imageClasses: world.occlusion.possibleClasses().length,
            },
          }
          : {}),
      },
      pmi: { json: PMI_JSON, matrix: PMI_MATRIX },
      ...(world ? { spectra: SPECTRA_JSON } : {}),
    });
    const seconds = (performance.now() - started) / 1000;
    ctx.log(
      `prepare/synthetic: ${total} images, ${total * p.captions_per_image} captions in ` +
        `${seconds.toFixed(1)} s; I(X;Y) = ${mi.toFixed(4)} nats; rank of the exact PMI ` +
        `${spectra.exact.pmi.rank} (99% energy: ${spectra.exact.pmi.energy99}), of exp(PMI) ` +
        `${spectra.exact.expPmi.rank} (${spectra.exact.expPmi.energy99})`,
    );
    return {
      metrics: {
        images: total,
        captions: total * p.captions_per_image,
        mutual_information: mi,
        pmi_grid_mean: mean,
        pmi_grid_std: Math.sqrt(Math.max(0, sumSq / count - mean * mean)),
        pmi_grid_diagonal_mean: diag / Math.min(grid_images, grid_captions),
        pmi_rank: spectra.exact.pmi.rank,
        pmi_energy99: spectra.exact.pmi.energy99,
        exp_pmi_rank: spectra.exact.expPmi.rank,
        exp_pmi_energy99: spectra.exact.expPmi.energy99,
        grid_pmi_rank: spectra.grid.pmi.rank,
        grid_pmi_energy99: spectra.grid.pmi.energy99,
        grid_exp_pmi_rank: spectra.grid.expPmi.rank,
        grid_exp_pmi_energy99: spectra.grid.expPmi.energy99,
      },
      info: { seconds, spectra_seconds: spectraSeconds, spectra: spectraDoc },
    };
  } catch (err) {
    writer.abort();
    throw err;
  }
}

/** The revealed world's exact PMI, row-major [latent x caption structure]. */
function revealedPmiMatrix(model: SceneModel): Float64Array {
  const nZ = model.numLatents;
  const nS = model.numCaptionStructures;
  const out = new Float64Array(nZ * nS);
  for (let z = 0; z < nZ; z++) {
    for (let s = 0; s < nS; s++) out[z * nS + s] = model.pmi(z, s);
  }
  return out;
}

/** A spectrum with its values at 7 significant digits (for JSON). */
function rounded(s: SpectrumSummary): SpectrumSummary {
  const r = (x: number) => Number(x.toPrecision(7));
  return {
    ...s,
    singularValues: s.singularValues.map(r),
    residualRms: Object.fromEntries(Object.entries(s.residualRms).map(([k, v]) => [k, r(v)])),
    rms: r(s.rms),
  };
}
