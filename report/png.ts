/** PNG export of rendered figures (sharp rasterises the SVG with librsvg). */
import { join } from "node:path";
import type { RenderedFigure } from "./figures.ts";

/** Writes `<dir>/<figure id>.png` for every figure at `density` dpi (72 = 1 px per SVG unit). */
export async function exportPngs(
  figs: RenderedFigure[],
  dir: string,
  density = 144,
): Promise<string[]> {
  const { default: sharp } = await import("sharp");
  await Deno.mkdir(dir, { recursive: true });
  const paths: string[] = [];
  for (const f of figs) {
    const path = join(dir, `${f.id}.png`);
    await sharp(new TextEncoder().encode(f.svg), { density }).png().toFile(path);
    paths.push(path);
  }
  return paths;
}
