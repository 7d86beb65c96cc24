// Globs against a model's layers, fast: each distinct glob is matched once against all layers and the
// result kept for the life of the layer list; a glob without wildcards is a dictionary lookup. The plan
// itself still comes from plan.ts's `planLayers`, run per layer on only the rules that match it, so the
// editor and the compressor agree on what a recipe means while a 1,000-override recipe stays cheap.
import type { Layer } from '../model/graph';
import type { QuantSettings, Recipe } from './recipe';
import { globMatcher, planLayers, LayerPlan } from './plan';
import type { JsonPath } from './parse';

const WILDCARD = /[*?[\]{}()!+@]/;

export class LayerIndex {
  private byName = new Map<string, number>();
  private cache = new Map<string, number[]>();
  constructor(readonly layers: readonly Layer[]) {
    layers.forEach((l, i) => this.byName.set(l.name, i));
  }

  /** Indexes of the layers a glob matches, in model order. */
  match(glob: string): number[] {
    let hit = this.cache.get(glob);
    if (hit) return hit;
    if (!WILDCARD.test(glob)) {
      const i = this.byName.get(glob);
      hit = i === undefined ? [] : [i];
    } else {
      const m = globMatcher(glob);
      hit = [];
      for (let i = 0; i < this.layers.length; i++) if (m(this.layers[i].name)) hit.push(i);
    }
    if (this.cache.size > 20000) this.cache.clear();
    this.cache.set(glob, hit);
    return hit;
  }
}

const indexes = new WeakMap<readonly Layer[], LayerIndex>();
export function layerIndex(layers: readonly Layer[]): LayerIndex {
  let ix = indexes.get(layers);
  if (!ix) {
    ix = new LayerIndex(layers);
    indexes.set(layers, ix);
  }
  return ix;
}

type Field = keyof QuantSettings;
const FIELDS: Field[] = ['method', 'bits', 'block_size', 'symmetric', 'accuracy_level'];

/** A layer's plan plus where in the recipe each quantization setting came from. */
export interface PlannedLayer extends LayerPlan {
  /** JSON path of the value that decided each field (`['quantize']` when it is the built-in default). */
  source: Partial<Record<Field, JsonPath>>;
  /** Index of the sparsity / low-rank rule that applies. */
  sparsityRule?: number;
  lowRankRule?: number;
}

/** `planLayers` for every layer, computed from only the rules that match each layer. */
export function planWithSources(recipe: Recipe, doc: unknown, layers: readonly Layer[]): PlannedLayer[] {
  const ix = layerIndex(layers);
  const perLayer = <T>(rules: readonly T[], glob: (r: T) => string): number[][] => {
    const out: number[][] = layers.map(() => []);
    rules.forEach((r, j) => {
      for (const i of ix.match(glob(r))) out[i].push(j);
    });
    return out;
  };
  const q = recipe.quantize;
  const skipHits = q ? perLayer(q.skip, (g) => g) : [];
  const ovHits = q ? perLayer(q.overrides, (o) => o.match) : [];
  const spHits = perLayer(recipe.sparsity?.rules ?? [], (r) => r.match);
  const lrHits = perLayer(recipe.low_rank?.rules ?? [], (r) => r.match);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const dq: any = (doc as any)?.quantize ?? {};
  const defaultSource = (f: Field): JsonPath => (dq[f] !== undefined ? ['quantize', f] : ['quantize']);

  return layers.map((layer, i) => {
    const sub: Recipe = {
      ...recipe,
      quantize: q && { ...q, skip: skipHits[i].map((j) => q.skip[j]), overrides: ovHits[i].map((j) => q.overrides[j]) },
      sparsity: recipe.sparsity && { ...recipe.sparsity, rules: spHits[i].map((j) => recipe.sparsity!.rules[j]) },
      low_rank: recipe.low_rank && { ...recipe.low_rank, rules: lrHits[i].map((j) => recipe.low_rank!.rules[j]) },
    };
    const plan = planLayers(sub, [layer])[0] as PlannedLayer;
    plan.source = {};
    if (plan.quant && q) {
      // Replay the override order to find who set each field (planLayers' rule: last match wins, and
      // an override after a skip starts again from the defaults).
      const src: Partial<Record<Field, JsonPath>> = {};
      for (const f of FIELDS) src[f] = defaultSource(f);
      for (const j of ovHits[i]) {
        const o = q.overrides[j];
        if (o.skip === true) {
          for (const f of FIELDS) src[f] = ['quantize', 'overrides', j, 'match'];
          continue;
        }
        for (const f of FIELDS) if (o[f] !== undefined) src[f] = ['quantize', 'overrides', j, f];
      }
      plan.source = src;
    }
    if (spHits[i].length) plan.sparsityRule = spHits[i][spHits[i].length - 1];
    if (lrHits[i].length) plan.lowRankRule = lrHits[i][lrHits[i].length - 1];
    return plan;
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
