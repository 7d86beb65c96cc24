// What the editor and Claude see of the per-layer measurements (agent/layerAdvice.ts's cache): a
// diagnostic carrying the plan under the budget as a quick fix (per-layer overrides, written by
// config/edit.ts so comments stay), hover rows for the layers a glob matches, and compact tables for
// the advisor's static prompt. Pure functions of the stored measurements: nothing runs here.
import type { SearchValue } from '../config/recipe';
import type { RecipeAnalysis } from '../config/check';
import { diag, type Diagnostic } from '../config/diagnostics';
import { matchLayers } from '../config/plan';
import { locate } from '../config/parse';
import type { Layer } from '../model/graph';
import type { StoredLayerMeasurements } from './layerAdvice';
import { allowedOn, candidateKnobs, FP32, LayerPlanResult, planUnderBudget, bestUniform } from './layerPlan';

export const LAYER_PLAN_CODE = 'layer-plan';

/**
 * Per-layer knobs for the editor: every analysed layer gets an explicit setting (fp32 ones `bits: 32`,
 * so an existing override cannot leave them quantized), and layers that share a choice with every layer
 * matching their `model.layers.*.<module>` pattern are written once, as that pattern.
 */
export function editorKnobs(
  plan: LayerPlanResult,
  layers: readonly Layer[],
  accuracyLevel?: number,
  candidates: StoredLayerMeasurements['sensitivity']['candidates'] = [],
): Record<string, SearchValue> {
  const choiceOf = new Map<string, string>();
  for (const g of plan.groups) for (const l of g.layers) choiceOf.set(l, g.choice);
  const byName = new Map(layers.map((l) => [l.name, l] as const));
  const done = new Set<string>();
  const out: Record<string, SearchValue> = {};
  for (const [name, choice] of choiceOf) {
    if (done.has(name)) continue;
    const layer = byName.get(name)!;
    const c = choice === FP32 ? undefined : candidates.find((x) => x.id === choice);
    const glob = name.replace(/\.layers\.\d+\./, '.layers.*.');
    const members = glob === name ? [] : matchLayers(glob, layers);
    // One pattern when every layer it matches has this choice (and, for a rank, the same shape).
    const shared =
      members.length > 1 &&
      members.every(
        (l) =>
          choiceOf.get(l.name) === choice && (c?.rankFraction === undefined || (l.K === layer.K && l.N === layer.N)),
      );
    for (const l of shared ? members : [layer]) done.add(l.name);
    Object.assign(out, candidateKnobs(c, { ...layer, name: shared ? glob : name }, accuracyLevel));
  }
  return out;
}

function pct(x: number): string {
  return `${x >= 0 ? '+' : ''}${(x * 100).toFixed(2)}%`;
}

/** The plan as a diagnostic on `quantize` (or `model`) with its quick fix, when it beats the recipe's own plan. */
export function layerPlanDiagnostic(a: RecipeAnalysis, m: StoredLayerMeasurements): Diagnostic | undefined {
  if (!a.recipe || !a.graph) return undefined;
  const budget = a.recipe.objective.accuracy.max_ppl_increase;
  const ok = allowedOn(a.recipe.target.provider, m.sensitivity.candidates);
  const plan = planUnderBudget(m, budget, ok);
  const uniform = bestUniform(m, budget, ok);
  const knobs = editorKnobs(plan, a.graph.layers, a.recipe.quantize?.accuracy_level, m.sensitivity.candidates);
  const at = (a.doc && 'quantize' in a.doc ? ['quantize'] : ['model']) as string[];
  const loc = locate(a.parsed.doc, at);
  const key = (loc?.pair?.key ?? loc?.node) as { range?: [number, number] } | undefined;
  if (!key?.range) return undefined;
  const range = a.parsed.lines.range(key.range[0], key.range[1]);
  const med = (p: { run_us: number; run_median_us?: number }) => p.run_median_us ?? p.run_us;
  const ownSpeed = m.recipe_plan ? med(m.fp32) / med(m.recipe_plan) : undefined;
  const counts = new Map<string, number>();
  for (const g of plan.groups) counts.set(g.choice, (counts.get(g.choice) ?? 0) + 1);
  const message =
    `Per-layer plan from measurements on this machine (${m.measured_at.slice(0, 16)}Z, \`haqa advise --measure\`): ` +
    `${[...counts.entries()].map(([k, n]) => `${k} × ${n}`).join(', ')}; ` +
    `predicted decode ${plan.predicted.speedup.toFixed(2)}× vs fp32 ` +
    `at ppl ${pct(plan.predicted.ppl_change)} (budget +${(budget * 100).toFixed(1)}%)` +
    `${ownSpeed ? `; this recipe's plan profiled at ${ownSpeed.toFixed(2)}×` : ''}` +
    `; best uniform setting ${uniform.candidate} predicted ` +
    `${uniform.predicted.speedup.toFixed(2)}×. Predictions add per-layer costs; benchmark to confirm.`;
  const title = 'Apply the per-layer plan (overrides per layer)';
  return diag(range, 'information', LAYER_PLAN_CODE, message, { fix: 'knobs', assignment: knobs, title });
}

/** Markdown rows for a hover on a glob: each matched layer's decode time share and sensitivity. */
export function layerHoverMarkdown(m: StoredLayerMeasurements, names: readonly string[], limit = 16): string {
  const cands = m.sensitivity.candidates.map((c) => c.id);
  const head = [
    `Measured on this machine ${m.measured_at.slice(0, 16)}Z ` +
      `(\`haqa advise --measure\`): decode time share (fp32 profile` +
      `${m.recipe_plan ? ", and this recipe's plan" : ''}) and ppl change of compressing only that layer`,
    '',
    `| layer | fp32 µs | share |${m.recipe_plan ? ' plan µs |' : ''} ${cands.join(' | ')} |`,
    `| --- | ---: | ---: |${m.recipe_plan ? ' ---: |' : ''} ${cands.map(() => '---:').join(' | ')} |`,
  ];
  const rows: string[] = [];
  for (const n of names.slice(0, limit)) {
    const g = m.fp32.groups.find((x) => x.name === n);
    const p = m.recipe_plan?.groups.find((x) => x.name === n);
    const sens = cands.map((c) => {
      const e = m.sensitivity.entries.find((x) => x.group === n && x.candidate === c);
      return e ? pct(e.ppl_change) : '—';
    });
    rows.push(
      `| \`${n}\` | ${g ? g.us.toFixed(0) : '—'} | ${g ? `${(g.share * 100).toFixed(1)}%` : '—'} |` +
        `${m.recipe_plan ? ` ${p ? p.us.toFixed(0) : '—'} |` : ''} ${sens.join(' | ')} |`,
    );
  }
  if (names.length > limit) rows.push('', `… and ${names.length - limit} more`);
  return [...head, ...rows].join('\n');
}

/** Compact tables for Claude's static prompt (the caller passes them through util/sanitize promptJson). */
export function promptTables(
  m: StoredLayerMeasurements,
  maxPplIncrease: number,
  provider = 'cpu',
): Record<string, unknown> {
  const plan = planUnderBudget(m, maxPplIncrease, allowedOn(provider, m.sensitivity.candidates));
  return {
    measured_at: m.measured_at,
    decode_step_us_fp32: Math.round(m.fp32.run_median_us ?? m.fp32.run_us),
    time_share: m.fp32.groups.slice(0, 40).map((g) => ({
      group: g.name,
      layer: g.layer,
      us: Math.round(g.us),
      share: Number(g.share.toFixed(4)),
    })),
    recipe_plan_us: m.recipe_plan?.groups
      .filter((g) => g.layer)
      .slice(0, 40)
      .map((g) => ({ layer: g.name, us: Math.round(g.us) })),
    candidates: m.sensitivity.candidates,
    ppl_change_if_only_this_layer: m.sensitivity.groups.slice(0, 60).map((g) => ({
      group: g.name,
      ...Object.fromEntries(
        m.sensitivity.entries
          .filter((e) => e.group === g.name)
          .map((e) => [e.candidate, Number(e.ppl_change.toFixed(5))]),
      ),
    })),
    uniform_candidate_step_us: Object.fromEntries(
      Object.entries(m.uniform).map(([k, p]) => [k, Math.round(p.run_median_us ?? p.run_us)]),
    ),
    plan_under_budget: {
      choices: plan.groups.map((g) => ({ group: g.group, choice: g.choice })),
      predicted: plan.predicted,
    },
  };
}
