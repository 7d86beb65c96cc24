// The check's and the hovers' view of the one plan (planner.ts): each layer's plan with the JSON path
// of the recipe value that decided each quantization setting (for diagnostics on the right value), and
// the bytes a plan takes. The glob index lives in globs.ts.
import type { Layer } from '../model/graph';
import type { QuantSettings, Recipe } from './recipe';
import {
  type LayerPlan,
  type PlannedLayer as Planned,
  QUANT_FIELDS,
  type QuantField,
  originPath,
  planRecipe,
} from './planner';
import type { JsonPath } from './parse';

export { LayerIndex, layerIndex } from './globs';

/** A layer's plan plus where in the recipe each quantization setting came from. */
export interface PlannedLayer extends Planned {
  /** JSON path of the value that decided each field (`['quantize']` when it is the built-in default). */
  source: Partial<Record<QuantField, JsonPath>>;
}

/** The one plan, with each quantized layer's settings traced to the document's values. */
export function planWithSources(recipe: Recipe, doc: unknown, layers: readonly Layer[]): PlannedLayer[] {
  return planRecipe(recipe, layers).map((p) => {
    const source: Partial<Record<QuantField, JsonPath>> = {};
    if (p.quant) for (const f of QUANT_FIELDS) source[f] = originPath(p.origin?.[f], f, doc);
    return { ...p, source };
  });
}

/** Bytes a layer's weights take under its plan: packed bits plus fp32 scales (and zero points). */
export function plannedBytes(p: LayerPlan): number {
  const { K, N } = p.layer;
  const float = (n: number) => n * 4;
  if (p.lowRank) {
    const r = p.lowRank.rank;
    // Two factors, K×r and r×N, stored at the layer's precision.
    return quantBytes(K, r, p.quant) + quantBytes(r, N, p.quant);
  }
  if (!p.quant) return p.layer.op === 'MatMulNBits' ? p.layer.bytes : p.layer.bytes || float(K * N);
  return quantBytes(K, N, p.quant);
}

function quantBytes(K: number, N: number, q: QuantSettings | undefined): number {
  if (!q) return K * N * 4;
  const blocks = Math.ceil(K / q.block_size);
  const packed = N * Math.ceil((blocks * q.block_size * q.bits) / 8);
  const scales = N * blocks * 4;
  const zeros = q.symmetric ? 0 : N * Math.ceil((blocks * q.bits) / 8);
  return packed + scales + zeros;
}
