// From a recipe and a model's layers to what happens to each layer, and the knob language the tuner
// speaks (`quantize.bits@model.layers.*.mlp.down_proj = 8`). Compression, the language server's hovers
// and the tuner all read the same plan, so a recipe means one thing everywhere.
import picomatch from 'picomatch';
import type { Layer } from '../model/graph';
import type { QuantOverride, QuantSettings, Recipe, SearchValue } from './recipe';
import { DEFAULT_QUANT, defaultQuantize } from './recipe';

export interface LayerPlan {
  layer: Layer;
  /** Undefined: the weight stays in float. */
  quant?: QuantSettings;
  /** Keep `n` of every `m` weights along K, or zero a `ratio` of them. */
  sparsity?: { n: number; m: number } | { ratio: number };
  lowRank?: { rank: number };
}

/** Longest glob the recipe schema allows (picomatch throws past 64 KiB; no layer name comes close). */
export const MAX_GLOB_LENGTH = 1024;

// Layer names are dotted; globs treat each dotted part like a path segment.
const matchers = new Map<string, (s: string) => boolean>();
/** A glob that is too long or that picomatch cannot compile matches nothing (the check reports it). */
export function globMatcher(glob: string): (name: string) => boolean {
  let m = matchers.get(glob);
  if (!m) {
    let pm: (s: string) => boolean = () => false;
    if (glob.length <= MAX_GLOB_LENGTH) {
      try {
        pm = picomatch(glob.replace(/\./g, '/'), { dot: true });
      } catch {
        /* not a glob picomatch can compile: matches nothing */
      }
    }
    m = (name: string) => pm(name.replace(/\./g, '/'));
    if (matchers.size > 10000) matchers.clear();
    matchers.set(glob, m);
  }
  return m;
}

export function matchLayers(glob: string, layers: readonly Layer[]): Layer[] {
  const m = globMatcher(glob);
  return layers.filter((l) => m(l.name));
}

export function parseNM(pattern: string): { n: number; m: number } | undefined {
  const mm = /^(\d+):(\d+)$/.exec(pattern);
  if (!mm) return undefined;
  const n = Number(mm[1]);
  const m = Number(mm[2]);
  return n >= 1 && m >= 2 && n < m ? { n, m } : undefined;
}

/**
 * One matching override on top of a layer's settings: the fields it names win, `skip: true` leaves the
 * layer in float, and an override that re-enables a skipped layer starts from the recipe's bits and
 * block size. The editor's plan (layers.ts) and planLayers both apply overrides through this.
 */
export function applyOverride(
  settings: QuantSettings | undefined, o: QuantOverride, defaults: Pick<QuantSettings, 'bits' | 'block_size'>,
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

export function planLayers(recipe: Recipe, layers: readonly Layer[]): LayerPlan[] {
  return layers.map((layer) => {
    const plan: LayerPlan = { layer };
    const q = recipe.quantize;
    if (q && layer.op !== 'MatMulNBits') {
      let settings: QuantSettings | undefined = {
        method: q.method, bits: q.bits, block_size: q.block_size, symmetric: q.symmetric, accuracy_level: q.accuracy_level,
      };
      if (q.skip.some((g) => globMatcher(g)(layer.name))) settings = undefined;
      for (const o of q.overrides) {
        if (globMatcher(o.match)(layer.name)) settings = applyOverride(settings, o, q);
      }
      if (settings && settings.bits < 32) plan.quant = settings;
    }
    for (const r of recipe.sparsity?.rules ?? []) {
      if (!globMatcher(r.match)(layer.name)) continue;
      const nm = r.pattern ? parseNM(r.pattern) : undefined;
      plan.sparsity = nm ?? (r.ratio !== undefined ? { ratio: r.ratio } : plan.sparsity);
    }
    for (const r of recipe.low_rank?.rules ?? []) {
      if (globMatcher(r.match)(layer.name)) plan.lowRank = { rank: r.rank };
    }
    return plan;
  });
}

// ---------------------------------------------------------------- knobs

export interface Knob { path: string; scope?: string }

export function parseKnob(key: string): Knob {
  const at = key.indexOf('@');
  return at < 0 ? { path: key } : { path: key.slice(0, at), scope: key.slice(at + 1) };
}

/**
 * A recipe with the knobs set. A layer-scoped quantize knob sets the field on the last override matching exactly
 * that glob (else appends one); rules are replaced or appended last, so they win.
 * `null` (or 'none', or 0 for ranks) removes a sparsity or low-rank rule; `quantize.bits = 32` keeps float.
 */
export function applyKnobs(recipe: Recipe, assignment: Record<string, SearchValue>): Recipe {
  const r: Recipe = structuredClone(recipe);
  for (const [key, value] of Object.entries(assignment)) {
    const { path, scope } = parseKnob(key);
    const [section, field] = path.split('.');
    if (section === 'runtime') {
      (r.runtime as unknown as Record<string, SearchValue>)[field] = value;
    } else if (section === 'quantize') {
      r.quantize ??= defaultQuantize();
      if (scope === undefined) {
        if (field === 'skip') throw new Error('quantize.skip needs a layer scope (quantize.skip@pattern)');
        (r.quantize as unknown as Record<string, SearchValue>)[field] = value;
      } else {
        // As the text edit does (edit.ts knobEdits): set the field on the last override whose match is
        // exactly this glob, else append one. Then a trial's recipe, and its recipe_hash, is the recipe
        // Apply Best Trial writes, and the lens finds that trial's figures.
        const os = r.quantize.overrides;
        let i = os.length - 1;
        while (i >= 0 && os[i].match !== scope) i--;
        const o = (i >= 0 ? os[i] : undefined) as unknown as Record<string, SearchValue> | undefined;
        if (o && value === null) delete o[field];
        else if (o) o[field] = value;
        else if (value !== null) os.push({ match: scope, [field]: value });
      }
    } else if (section === 'sparsity') {
      const match = scope ?? '**';
      r.sparsity ??= { method: 'magnitude', rules: [] };
      r.sparsity.rules = r.sparsity.rules.filter((x) => x.match !== match);
      if (value !== null && value !== 'none' && value !== 0) {
        r.sparsity.rules.push(field === 'pattern' ? { match, pattern: String(value) } : { match, ratio: Number(value) });
      }
    } else if (section === 'low_rank') {
      const match = scope ?? '**';
      r.low_rank ??= { method: 'randomized_svd', rules: [] };
      r.low_rank.rules = r.low_rank.rules.filter((x) => x.match !== match);
      if (value !== null && value !== 'none' && value !== 0) r.low_rank.rules.push({ match, rank: Number(value) });
    } else {
      throw new Error(`unknown knob ${key}`);
    }
  }
  return r;
}
