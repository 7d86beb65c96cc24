// The one per-layer planner: from a recipe and a model's layers to what happens to each layer, where
// each setting came from and why a layer stays in float. Compression (compress/pipeline.ts), the check
// and hovers (layers.ts `planWithSources`), the tuner's space and the advisor (plan.ts `planLayers`)
// are projections of this one computation, so a recipe means one thing everywhere.
//
// Rules, in recipe order: the quantize section's settings apply to every layer that is not already
// MatMulNBits; a `skip` glob leaves a layer in float; each matching override applies after that (the
// last one wins per field; `skip: true` leaves the layer in float; any other override re-enables a
// skipped layer, starting from the section's bits and block size); bits 32 means float. Rules sections
// (sparsity, low rank: each declares in config/methods.ts what a rule asks of a layer, `layerPlan`): the
// last matching rule wins.
//
// Memoised: a plan is computed once per layer list and recipe content (its compression sections), so
// the check, the hovers, the compression of a trial and the tuner's deduplication share it. Plans are
// frozen; callers read them.
import type { Layer } from '../model/graph';
import type { JsonPath } from './parse';
import type { QuantOverride, QuantSettings, Recipe } from './recipe';
import { COMPRESSION_SECTIONS, DEFAULT_QUANT, RULE_PLANS, type RulePlans } from './methods';
import { layerIndex } from './globs';

export { parseNM } from './methods';

/** What happens to a layer: its quantization, and what each rules section asks of it (`sparsity`, `lowRank`). */
export interface LayerPlan extends RulePlans {
  layer: Layer;
  /** Undefined: the weight stays in float. */
  quant?: QuantSettings;
}

/** The index of the rule that decided each rules-section entry (`sparsityRule`, `lowRankRule`). */
type RuleIndexes = { [K in keyof RulePlans as `${K & string}Rule`]?: number };

export type QuantField = keyof QuantSettings;
export const QUANT_FIELDS: readonly QuantField[] = ['method', 'bits', 'block_size', 'symmetric', 'accuracy_level'];

/**
 * Which recipe value decided a quantization field: the quantize section (no `override`), override
 * `override`'s own field, or (`viaSkip`) the `match` of a skipping override that a later one re-enabled.
 */
export interface Origin {
  override?: number;
  viaSkip?: true;
}

/** Why a layer's weight is not quantized (absent when it is). */
export type FloatReason =
  | { kind: 'no-quantize' }
  | { kind: 'already-quantized' }
  /** quantize.skip[index] matched and no later override re-enabled the layer. */
  | { kind: 'skip'; index: number }
  /** quantize.overrides[index] has `skip: true` and is the last matching override. */
  | { kind: 'override-skip'; index: number }
  /** The settings say bits 32 (kept in float, but still a candidate for 8-bit activations). */
  | { kind: 'bits-32' };

export interface PlannedLayer extends LayerPlan, RuleIndexes {
  /** Where each quantization field came from (set when the layer is quantized). */
  origin?: Readonly<Record<QuantField, Origin>>;
  float?: FloatReason;
}

/** What the rules sections ask of a layer, as short text in table order (`2:4`, `rank 8`). */
export function ruleLabels(p: LayerPlan): string[] {
  const out: string[] = [];
  for (const { plan: rp } of RULE_PLANS) {
    const v = p[rp.key as keyof RulePlans];
    if (v !== undefined) out.push(rp.label(v));
  }
  return out;
}

/** The layer was skipped by a skip glob or a skipping override (not merely kept at 32 bits). */
export function isSkipped(p: PlannedLayer): boolean {
  return p.float?.kind === 'skip' || p.float?.kind === 'override-skip';
}

/**
 * One matching override on top of a layer's settings: the fields it names win, `skip: true` leaves the
 * layer in float, and an override that re-enables a skipped layer starts from the recipe's bits and
 * block size.
 */
export function applyOverride(
  settings: QuantSettings | undefined,
  o: QuantOverride,
  defaults: Pick<QuantSettings, 'bits' | 'block_size'>,
): QuantSettings | undefined {
  if (o.skip === true) return undefined;
  const base: QuantSettings = settings ?? { ...DEFAULT_QUANT, bits: defaults.bits, block_size: defaults.block_size };
  return {
    method: o.method ?? base.method,
    bits: o.bits ?? base.bits,
    block_size: o.block_size ?? base.block_size,
    symmetric: o.symmetric ?? base.symmetric,
    accuracy_level: o.accuracy_level ?? base.accuracy_level,
  };
}

const SECTION_ORIGIN: Readonly<Record<QuantField, Origin>> = Object.freeze({
  method: {},
  bits: {},
  block_size: {},
  symmetric: {},
  accuracy_level: {},
});

function computePlan(recipe: Recipe, layers: readonly Layer[]): readonly PlannedLayer[] {
  const ix = layerIndex(layers);
  // Each rule's glob is matched once against all layers (cached per layer list): a recipe with 1,000
  // overrides costs a pass over its rules, not rules × layers glob tests.
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
  const sections = recipe as unknown as Record<string, { rules: { match: string }[] } | undefined>;
  const ruleHits = RULE_PLANS.map(({ section, plan }) => {
    const rules = sections[section]?.rules ?? [];
    return { plan, rules, hits: perLayer(rules, (r) => r.match) };
  });

  return layers.map((layer, i) => {
    const plan: PlannedLayer = { layer };
    if (!q) plan.float = { kind: 'no-quantize' };
    else if (layer.op === 'MatMulNBits') plan.float = { kind: 'already-quantized' };
    else {
      let settings: QuantSettings | undefined = {
        method: q.method,
        bits: q.bits,
        block_size: q.block_size,
        symmetric: q.symmetric,
        accuracy_level: q.accuracy_level,
      };
      let origin: Record<QuantField, Origin> | undefined;
      let float: FloatReason | undefined;
      if (skipHits[i].length) {
        settings = undefined;
        float = { kind: 'skip', index: skipHits[i][skipHits[i].length - 1] };
      }
      for (const j of ovHits[i]) {
        const o = q.overrides[j];
        settings = applyOverride(settings, o, q);
        if (o.skip === true) {
          float = { kind: 'override-skip', index: j };
          const via: Origin = { override: j, viaSkip: true };
          origin = { method: via, bits: via, block_size: via, symmetric: via, accuracy_level: via };
        } else {
          float = undefined;
          for (const f of QUANT_FIELDS) {
            if (o[f] === undefined) continue;
            origin ??= { ...SECTION_ORIGIN };
            origin[f] = { override: j };
          }
        }
      }
      if (settings && settings.bits < 32) {
        plan.quant = Object.freeze(settings);
        plan.origin = Object.freeze(origin ?? SECTION_ORIGIN);
      } else {
        plan.float = float ?? { kind: 'bits-32' };
      }
    }
    const entries = plan as unknown as Record<string, unknown>;
    for (const { plan: rp, rules, hits } of ruleHits) {
      for (const j of hits[i]) {
        entries[rp.key] = rp.fromRule(rules[j], entries[rp.key]);
        entries[`${rp.key}Rule`] = j;
      }
    }
    return Object.freeze(plan);
  });
}

// Per layer list (weakly: a model dropped from the cache takes its plans with it), per recipe content.
const plans = new WeakMap<readonly Layer[], Map<string, readonly PlannedLayer[]>>();
const MAX_PLANS_PER_MODEL = 512;
let computed = 0;

/** The plan of a recipe on a model: one frozen entry per layer, in model order (memoised). */
export function planRecipe(recipe: Recipe, layers: readonly Layer[]): readonly PlannedLayer[] {
  const key = JSON.stringify(COMPRESSION_SECTIONS.map((s) => recipe[s] ?? null));
  let byRecipe = plans.get(layers);
  if (!byRecipe) plans.set(layers, (byRecipe = new Map()));
  let hit = byRecipe.get(key);
  if (!hit) {
    hit = Object.freeze(computePlan(recipe, layers));
    computed++;
    if (byRecipe.size >= MAX_PLANS_PER_MODEL) byRecipe.clear();
    byRecipe.set(key, hit);
  }
  return hit;
}

/** How many plans have been computed (not served from the memo) since start: for tests of the sharing. */
export function plansComputed(): number {
  return computed;
}

/**
 * The JSON path of the recipe value that decided a field: `['quantize', f]` where the document sets it,
 * `['quantize']` for a built-in default, an override's field or (for a re-enabled skip) its `match`.
 */
export function originPath(origin: Origin | undefined, field: QuantField, doc: unknown): JsonPath {
  if (origin?.override !== undefined)
    return ['quantize', 'overrides', origin.override, origin.viaSkip ? 'match' : field];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const dq: any = (doc as any)?.quantize ?? {};
  return dq[field] !== undefined ? ['quantize', field] : ['quantize'];
}
