// The search space: which knobs the tuner may turn and to which values, and the one validator every
// proposal goes through (the optimizers', and above all the LLM's) before anything runs.
//
// A knob is the recipe path language of config/plan.ts (`quantize.bits@model.layers.*.mlp.down_proj`).
// A config is a partial assignment: knobs it does not name keep the recipe's value. Two configs that
// give every layer the same plan are the same experiment; `planKey` is what duplicates are detected by.
import type { Layer } from '../model/graph';
import type { Recipe } from '../config/recipe';
import { applyKnobs, globMatcher, matchLayers, parseKnob, planLayers } from '../config/plan';
import { knobValueError } from '../config/schema';
import {
  KNOB_NAMES,
  RULE_PLANS,
  type RulePlans,
  commonBlockSizes,
  defaultKnobValues,
  knobDecl,
  scopeError,
} from '../config/methods';

export { commonBlockSizes } from '../config/methods';
import type { HardwareProfile } from './profile';
import type { Config, SearchValue } from './types';

export interface KnobSpec {
  /** The knob as written in the space (`quantize.bits@lm_head`). */
  key: string;
  /** Recipe path without the scope (`quantize.bits`). */
  path: string;
  scope?: string;
  values: SearchValue[];
  /** Layers the knob affects (all compressible layers for an unscoped quantize knob; none for runtime). */
  layers: string[];
}

export interface SearchSpace {
  knobs: KnobSpec[];
  /** 'recipe': from search.space; 'default': derived from the model and the hardware. */
  source: 'recipe' | 'default';
  /** Number of assignments (the product of the value counts), before plan-level deduplication. */
  size: number;
}

/** What validation and the default space need to know about the setting. */
export interface SpaceContext {
  recipe: Recipe;
  layers: readonly Layer[];
  hardware: HardwareProfile;
}

/** Limits on anything a proposer hands us: no knob name, value or config is allowed to be large. */
export const LIMITS = { knobKey: 300, stringValue: 100, knobs: 64 };

/** Layers that quantization can act on (already-quantized MatMulNBits are left alone). */
export function quantizable(layers: readonly Layer[]): Layer[] {
  return layers.filter((l) => l.op !== 'MatMulNBits');
}

/** Layer groups: names with their layer index replaced by `*` (`model.layers.*.mlp.down_proj`), in model order. */
export function layerGroups(layers: readonly Layer[]): { glob: string; layers: Layer[] }[] {
  const groups = new Map<string, Layer[]>();
  for (const l of layers) {
    const glob = l.name.replace(/\.\d+(?=\.|$)/g, '.*');
    const g = groups.get(glob) ?? [];
    g.push(l);
    groups.set(glob, g);
  }
  return [...groups].map(([glob, ls]) => ({ glob, layers: ls }));
}

function knobLayers(path: string, scope: string | undefined, layers: readonly Layer[]): string[] {
  if (knobDecl(path)?.section.kind === 'settings') return [];
  const q = quantizable(layers);
  return (scope === undefined ? q : matchLayers(scope, q)).map((l) => l.name);
}

function spec(key: string, values: SearchValue[], layers: readonly Layer[]): KnobSpec {
  const { path, scope } = parseKnob(key);
  return { key, path, scope, values, layers: knobLayers(path, scope, layers) };
}

function sized(knobs: KnobSpec[], source: SearchSpace['source']): SearchSpace {
  return { knobs, source, size: knobs.reduce((n, k) => n * k.values.length, 1) };
}

/**
 * The default space for a model on a machine: global bits {4, 8, 32}, block sizes that divide every K,
 * accuracy level {0, 4} (fp32 vs int8 compute), symmetric or not, intra-op threads, and two per-group
 * knobs where the model has them: the bits of the MLP down projections (the layers whose inputs carry
 * the largest outliers) and whether lm_head stays in float.
 */
export function defaultSpace(ctx: SpaceContext): SearchSpace {
  const q = quantizable(ctx.layers);
  // The unscoped knobs' defaults are the method table's (config/methods.ts).
  const knobs = defaultKnobValues({ quantizable: q, cores: ctx.hardware.cores }).map((k) =>
    spec(k.knob, k.values, ctx.layers),
  );
  const groups = layerGroups(q);
  const down = groups.find((g) => /(^|\.)down_proj$/.test(g.glob));
  if (down && down.layers.length < q.length) knobs.push(spec(`quantize.bits@${down.glob}`, [4, 8, 32], ctx.layers));
  if (q.some((l) => l.name === 'lm_head') && q.length > 1)
    knobs.push(spec('quantize.skip@lm_head', [false, true], ctx.layers));
  return sized(knobs, 'default');
}

/**
 * The recipe's `search.space`, or the default one when it is empty. Entries that cannot work (unknown
 * knob, glob matching no layer, values the schema or the model refuse) are dropped, each with a reason.
 */
export function buildSpace(ctx: SpaceContext): { space: SearchSpace; problems: string[] } {
  const entries = Object.entries(ctx.recipe.search.space ?? {});
  if (entries.length === 0) return { space: defaultSpace(ctx), problems: [] };
  const problems: string[] = [];
  const knobs: KnobSpec[] = [];
  for (const [key, values] of entries) {
    const err = knobKeyError(key, ctx);
    if (err) {
      problems.push(`search.space.${key}: ${err}`);
      continue;
    }
    const kept: SearchValue[] = [];
    for (const v of Array.isArray(values) ? values : []) {
      const e = valueError(key, v, ctx);
      if (e) problems.push(`search.space.${key}: ${e}`);
      else if (!kept.some((k) => k === v)) kept.push(v);
    }
    if (kept.length === 0) problems.push(`search.space.${key}: no usable values; knob dropped`);
    else knobs.push(spec(key, kept, ctx.layers));
  }
  return { space: sized(knobs, 'recipe'), problems };
}

/** Why a knob name cannot be used on this model, or undefined. */
export function knobKeyError(key: string, ctx: SpaceContext): string | undefined {
  if (key.length > LIMITS.knobKey) return `knob name is ${key.length} characters long (limit ${LIMITS.knobKey})`;
  const { path, scope } = parseKnob(key);
  const decl = knobDecl(path);
  if (!decl) return `unknown knob '${path}'; knobs are ${KNOB_NAMES.join(', ')}`;
  const wrongScope = scopeError(decl, scope, '<glob>');
  if (wrongScope) return wrongScope;
  if (scope !== undefined) {
    if (scope.length === 0) return `empty layer glob after '@'`;
    const m = globMatcher(scope);
    if (!ctx.layers.some((l) => m(l.name))) {
      const groups = layerGroups(quantizable(ctx.layers))
        .map((g) => g.glob)
        .slice(0, 12);
      return `glob ${JSON.stringify(scope)} matches no layer of the model; layer groups: ${groups.join(', ')}`;
    }
  }
  return undefined;
}

/** Why a single knob value is impossible on its own (schema, model, hardware), or undefined. */
function shapeError(v: unknown): string | undefined {
  if (v !== null && !['number', 'string', 'boolean'].includes(typeof v))
    return `value ${short(v)} must be a number, string, boolean or null`;
  if (typeof v === 'string' && v.length > LIMITS.stringValue)
    return `string value is ${v.length} characters long (limit ${LIMITS.stringValue})`;
  if (typeof v === 'number' && !Number.isFinite(v)) return `value ${v} is not a finite number`;
  return undefined;
}

function valueError(key: string, v: unknown, ctx: SpaceContext): string | undefined {
  const shape = shapeError(v);
  if (shape) return shape;
  const { path } = parseKnob(key);
  const schemaErr = knobValueError(key, v);
  if (schemaErr) return schemaErr;
  if (path === 'quantize.block_size') {
    const ls = knobLayers(path, parseKnob(key).scope, ctx.layers).map((n) => ctx.layers.find((l) => l.name === n)!);
    if (ls.length > 0 && !ls.some((l) => l.K % (v as number) === 0))
      return `block_size ${v} divides the K of none of the layers it applies to`;
  }
  if (path === 'runtime.intra_op_threads' && typeof v === 'number' && v > ctx.hardware.cores) {
    return `intra_op_threads ${v} exceeds the ${ctx.hardware.cores} cores of this machine`;
  }
  return undefined;
}

export function short(v: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

export type Validation = { ok: true; config: Config } | { ok: false; errors: string[] };

/**
 * Check a proposed config against the space (knob and value must be in it), the schema's allowed values
 * and the model (globs match layers, block sizes divide the K of every layer they end up applying to).
 * `input` is whatever the proposer sent; nothing about its shape is assumed.
 */
export function validateConfig(input: unknown, space: SearchSpace, ctx: SpaceContext): Validation {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return { ok: false, errors: [`config must be an object of knob → value, got ${short(input)}`] };
  }
  const entries = Object.entries(input as Record<string, unknown>);
  if (entries.length > LIMITS.knobs)
    return { ok: false, errors: [`config names ${entries.length} knobs (limit ${LIMITS.knobs})`] };
  const errors: string[] = [];
  const config: Config = {};
  for (const [key, v] of entries) {
    const keyShown = key.length > 80 ? `${JSON.stringify(key.slice(0, 77))}...` : JSON.stringify(key);
    const knob = space.knobs.find((k) => k.key === key);
    if (!knob) {
      const why = knobKeyError(key, ctx);
      errors.push(
        `${keyShown}: ${why ?? 'not a knob of the search space'}; ` +
          `the space has ${space.knobs.map((k) => k.key).join(', ')}`,
      );
      continue;
    }
    const shapeErr = shapeError(v);
    if (shapeErr) {
      errors.push(`${keyShown}: ${shapeErr}`);
      continue;
    }
    if (!knob.values.some((x) => x === v)) {
      const hint = knob.values.some((x) => String(x) === String(v)) ? ' (same text, wrong JSON type)' : '';
      errors.push(
        `${keyShown}: ${short(v)} is outside the search space${hint}; allowed: ${knob.values.map(short).join(', ')}`,
      );
      continue;
    }
    const vErr = valueError(key, v, ctx);
    if (vErr) {
      errors.push(`${keyShown}: ${vErr}`);
      continue;
    }
    config[key] = v as SearchValue;
  }
  if (errors.length > 0) return { ok: false, errors };
  errors.push(...planErrors(config, ctx));
  return errors.length > 0 ? { ok: false, errors } : { ok: true, config };
}

/** Errors only the combined plan shows: a block size that does not divide the K of a layer it lands on. */
export function planErrors(config: Config, ctx: SpaceContext): string[] {
  let recipe: Recipe;
  try {
    recipe = applyKnobs(ctx.recipe, config);
  } catch (err) {
    return [(err as Error).message];
  }
  const errors: string[] = [];
  for (const p of planLayers(recipe, ctx.layers)) {
    if (p.quant && p.layer.K % p.quant.block_size !== 0) {
      errors.push(
        `block_size ${p.quant.block_size} does not divide K=${p.layer.K} of layer ` +
          `${JSON.stringify(p.layer.name)}; block sizes dividing ` +
          `it: ${commonBlockSizes([p.layer]).join(', ') || 'none'}`,
      );
      if (errors.length >= 3) break;
    }
  }
  return errors;
}

/** The recipe a config describes. */
export function recipeFor(recipe: Recipe, config: Config): Recipe {
  return applyKnobs(recipe, config);
}

/** Canonical text of a config (sorted keys): equal configs, equal keys. */
export function configKey(config: Config): string {
  return JSON.stringify(
    Object.keys(config)
      .sort()
      .map((k) => [k, config[k]]),
  );
}

/**
 * What actually runs: every layer's plan, the runtime and the global quantization options. Equal plans are duplicates.
 */
export function planKey(config: Config, ctx: SpaceContext): string {
  const r = applyKnobs(ctx.recipe, config);
  const llama = r.runtime.engine === 'llama.cpp';
  const plans = planLayers(r, ctx.layers).map((p) => [
    // llama.cpp runs HAQA's GGUF export, whose types come from gguf_type (below); of the ONNX plan only
    // whether a layer is quantized (skip: F32) reaches it, so configs differing in bits there are one experiment.
    p.quant
      ? llama
        ? 1
        : [p.quant.method, p.quant.bits, p.quant.block_size, p.quant.symmetric, p.quant.accuracy_level]
      : 0,
    ...RULE_PLANS.map(({ plan: rp }) => p[rp.key as keyof RulePlans] ?? 0),
  ]);
  // llama.cpp's GGUF types are not in the ONNX plan: configs that differ there are different experiments.
  const gguf = llama ? [r.quantize?.gguf_type, r.quantize?.overrides.filter((o) => o.gguf_type)] : undefined;
  return JSON.stringify([
    plans,
    r.runtime,
    r.quantize?.activations ?? 'none',
    RULE_PLANS.map(({ section }) => (r as unknown as Record<string, { method?: string } | undefined>)[section]?.method),
    gguf,
  ]);
}

/**
 * The knobs of `config` to show: all of them, less llama.cpp's own (`quantize.gguf_type`, per-layer or
 * not, and `runtime.llama.*`) when the config runs onnxruntime, where they change nothing (planKey).
 */
export function shownKnobs(config: Config): Config {
  if (config['runtime.engine'] !== 'onnxruntime') return config;
  return Object.fromEntries(
    Object.entries(config).filter(([k]) => !k.startsWith('quantize.gguf_type') && !k.startsWith('runtime.llama.')),
  );
}

/** Every assignment of the space, in a fixed order (the first knob varies slowest). */
export function* enumerate(space: SearchSpace): Generator<Config> {
  const n = space.knobs.length;
  const idx = new Array<number>(n).fill(0);
  if (space.knobs.some((k) => k.values.length === 0)) return;
  for (;;) {
    const c: Config = {};
    space.knobs.forEach((k, i) => (c[k.key] = k.values[idx[i]]));
    yield c;
    let i = n - 1;
    while (i >= 0 && ++idx[i] === space.knobs[i].values.length) idx[i--] = 0;
    if (i < 0) return;
  }
}
