// The knob language the tuner speaks (`quantize.bits@model.layers.*.mlp.down_proj = 8`), and
// `planLayers`: what happens to each layer, as the one planner (planner.ts) decides it. Compression, the
// language server's hovers and the tuner all read that plan, so a recipe means one thing everywhere.
import type { Layer } from '../model/graph';
import type { Recipe, SearchValue } from './recipe';
import { type LayerPlan, type PlannedLayer, planRecipe } from './planner';
import { RULE_PLANS, type RulePlans, knobDecl, removesRule, scopeError } from './methods';

export { MAX_GLOB_LENGTH, globMatcher, matchLayers } from './globs';
export { type LayerPlan, applyOverride, parseNM } from './planner';

const projections = new WeakMap<readonly PlannedLayer[], readonly LayerPlan[]>();
/**
 * What happens to each layer: the one planner's result (planner.ts) without its sources and reasons, so
 * two recipes that do the same get equal plans. Memoised with the plan.
 */
export function planLayers(recipe: Recipe, layers: readonly Layer[]): LayerPlan[] {
  const plan = planRecipe(recipe, layers);
  let out = projections.get(plan);
  if (!out) {
    out = plan.map((planned) => {
      const p: LayerPlan = { layer: planned.layer };
      if (planned.quant) p.quant = planned.quant;
      for (const { plan: rp } of RULE_PLANS) {
        const key = rp.key as keyof RulePlans;
        if (planned[key]) (p as unknown as Record<string, unknown>)[key] = planned[key];
      }
      return Object.freeze(p);
    });
    projections.set(plan, out);
  }
  return out.slice();
}

// ---------------------------------------------------------------- knobs

export interface Knob {
  path: string;
  scope?: string;
}

export function parseKnob(key: string): Knob {
  const at = key.indexOf('@');
  return at < 0 ? { path: key } : { path: key.slice(0, at), scope: key.slice(at + 1) };
}

/**
 * A recipe with the knobs set, each as its section's kind says (methods.ts). A layer-scoped override knob
 * sets the field on the last override matching exactly that glob (else appends one); rules are replaced or
 * appended last, so they win. `null` (or 'none', or 0) removes a rule; `quantize.bits = 32` keeps float.
 * A knob the method table does not declare is refused.
 */
export function applyKnobs(recipe: Recipe, assignment: Record<string, SearchValue>): Recipe {
  const r: Recipe = structuredClone(recipe);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const sections = r as unknown as Record<string, any>;
  // A section a knob needs and the recipe lacks: the table's resolution of an empty one.
  const empty = { doc: {}, threads: r.target.threads };
  for (const [key, value] of Object.entries(assignment)) {
    const { path, scope } = parseKnob(key);
    const decl = knobDecl(path);
    if (!decl) throw new Error(`unknown knob ${key}`);
    const { section, knob } = decl;
    const field = knob.field;
    switch (section.kind) {
      case 'settings':
        sections[section.name][field] = value;
        break;
      case 'overrides': {
        sections[section.name] ??= section.resolve({}, empty);
        if (scope === undefined) {
          if (knob.scope === 'required') throw new Error(scopeError(decl, scope));
          sections[section.name][field] = value;
        } else {
          // As the text edit does (edit.ts knobEdits): set the field on the last override whose match is
          // exactly this glob, else append one. Then a trial's recipe, and its recipe_hash, is the recipe
          // Apply Best Trial writes, and the lens finds that trial's figures.
          const os: Array<Record<string, SearchValue>> = sections[section.name].overrides;
          let i = os.length - 1;
          while (i >= 0 && os[i].match !== scope) i--;
          const o = i >= 0 ? os[i] : undefined;
          if (o && value === null) delete o[field];
          else if (o) o[field] = value;
          else if (value !== null) os.push({ match: scope, [field]: value });
        }
        break;
      }
      case 'rules': {
        const match = scope ?? '**';
        const s = (sections[section.name] ??= section.resolve({}, empty));
        s.rules = s.rules.filter((x: { match: string }) => x.match !== match);
        if (!removesRule(decl, value)) s.rules.push({ match, [field]: knob.coerce ? knob.coerce(value) : value });
        break;
      }
    }
  }
  return r;
}
