// Globs against a model's layers, fast: each distinct glob is matched once against all layers and the
// result kept for the life of the layer list; a glob without wildcards is a dictionary lookup. On top
// of that, the per-layer plan with where each setting came from (for diagnostics on the right value).
import type { Layer } from '../model/graph';
import type { QuantSettings, Recipe } from './recipe';
import { applyOverride, globMatcher, parseNM, LayerPlan } from './plan';
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

/**
 * `planLayers` for every layer, from precomputed match sets: each rule's glob is matched once (cached
 * per layer list), so a recipe with 1,000 overrides costs a pass over its rules, not rules × layers
 * glob tests. The rules are plan.ts's, replayed in the same order (the last matching override wins;
 * an override after a skip starts from the defaults); a unit test holds the two to the same result.
 */
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
    const plan: PlannedLayer = { layer, source: {} };
    if (q && layer.op !== 'MatMulNBits') {
      let settings: QuantSettings | undefined = {
        method: q.method, bits: q.bits, block_size: q.block_size, symmetric: q.symmetric, accuracy_level: q.accuracy_level,
      };
      const src: Partial<Record<Field, JsonPath>> = {};
      for (const f of FIELDS) src[f] = defaultSource(f);
      if (skipHits[i].length) settings = undefined;
      for (const j of ovHits[i]) {
        const o = q.overrides[j];
        settings = applyOverride(settings, o, q);
        if (o.skip === true) for (const f of FIELDS) src[f] = ['quantize', 'overrides', j, 'match'];
        else for (const f of FIELDS) if (o[f] !== undefined) src[f] = ['quantize', 'overrides', j, f];
      }
      if (settings && settings.bits < 32) {
        plan.quant = settings;
        plan.source = src;
      }
    }
    for (const j of spHits[i]) {
      const r = recipe.sparsity!.rules[j];
      const nm = r.pattern ? parseNM(r.pattern) : undefined;
      plan.sparsity = nm ?? (r.ratio !== undefined ? { ratio: r.ratio } : plan.sparsity);
      plan.sparsityRule = j;
    }
    for (const j of lrHits[i]) {
      plan.lowRank = { rank: recipe.low_rank!.rules[j].rank };
      plan.lowRankRule = j;
    }
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
