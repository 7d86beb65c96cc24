// A per-layer plan under the accuracy budget, from measurements (HAWQ-V3's integer program, as a
// multiple-choice knapsack solved by dynamic programming):
//   minimise   Σ_g time[g][s_g]          (median decode µs per step of group g at setting s_g:
//                                           profiled, bench/profile.ts)
//   subject to Σ_g cost[g][s_g] ≤ budget  (cost: NLL increase in nats of compressing only g, agent/sensitivity.ts;
//                                           budget: log(1 + max_ppl_increase), so costs add like log-perplexity)
// Each group has a "keep fp32" choice of cost 0, so the problem is always feasible. Costs are rounded up
// onto a grid of `resolution` steps of the budget (the plan never exceeds the budget by rounding); a
// negative cost (a compression that happened to lower perplexity) counts as 0. Additivity of the costs is
// the model's assumption: the verification benchmark measures the plan as a whole and reports both.
import type { SearchValue } from '../config/recipe';
import type { Layer } from '../model/graph';
import type { ModelProfile } from '../bench/profile';
import { Candidate, rankOf, SensitivityResult } from './sensitivity';
import { CPU_BITS } from '../config/check';

export interface Choice {
  id: string;
  time: number;
  cost: number;
}
export interface GroupChoices {
  group: string;
  choices: Choice[];
}

export interface Chosen {
  /** Index into each group's choices. */
  picks: number[];
  time: number;
  cost: number;
}

/** The DP. Exact for integer costs when `resolution` equals the (integer) budget. */
export function chooseUnderBudget(groups: readonly GroupChoices[], budget: number, resolution = 2000): Chosen {
  const R = Math.max(1, Math.floor(resolution));
  const units = (c: number) => (c <= 0 ? 0 : budget <= 0 ? R + 1 : Math.ceil((c / budget) * R - 1e-9));
  let best = new Float64Array(R + 1).fill(0); // best[j]: least time of the groups so far with cost units ≤ j
  const from: Int32Array[] = [];
  for (const g of groups) {
    if (g.choices.length === 0) throw new Error(`group ${g.group} has no choices`);
    const next = new Float64Array(R + 1).fill(Infinity);
    const arg = new Int32Array(R + 1).fill(-1);
    g.choices.forEach((c, i) => {
      const u = units(c.cost);
      for (let j = u; j <= R; j++) {
        const t = best[j - u] + c.time;
        if (t < next[j]) {
          next[j] = t;
          arg[j] = i;
        }
      }
    });
    from.push(arg);
    best = next;
  }
  if (!Number.isFinite(best[R])) throw new Error('no plan within the budget (every group needs a choice of cost ≤ 0)');
  const picks = new Array<number>(groups.length);
  let j = R;
  for (let gi = groups.length - 1; gi >= 0; gi--) {
    // The table is monotone in j only through the choices: walk back with the cost units actually used.
    const i = from[gi][j];
    picks[gi] = i;
    j -= units(groups[gi].choices[i].cost);
  }
  return {
    picks,
    time: picks.reduce((s, i, gi) => s + groups[gi].choices[i].time, 0),
    cost: picks.reduce((s, i, gi) => s + Math.max(0, groups[gi].choices[i].cost), 0),
  };
}

// ---------------------------------------------------------------- from measurements

export const FP32 = 'fp32';

/** What the plan is made from: the fp32 profile, one profile per uniformly applied candidate, and the sensitivity. */
export interface LayerMeasurements {
  fp32: ModelProfile;
  /** Candidate id → profile of the model with that candidate on every analysed layer. */
  uniform: Record<string, ModelProfile>;
  sensitivity: SensitivityResult;
}

function layerTime(p: ModelProfile, layers: readonly string[]): number | undefined {
  let t = 0;
  for (const l of layers) {
    const g = p.groups.find((x) => x.name === l);
    if (!g) return undefined;
    t += g.median_us ?? g.us; // medians: a preempted step does not make a layer look slow
  }
  return t;
}

/** The DP's input: per group, fp32 and every candidate that was both profiled and scored. */
export function choicesOf(m: LayerMeasurements): GroupChoices[] {
  const out: GroupChoices[] = [];
  for (const g of m.sensitivity.groups) {
    const t32 = layerTime(m.fp32, g.layers);
    if (t32 === undefined) continue;
    const choices: Choice[] = [{ id: FP32, time: t32, cost: 0 }];
    for (const c of m.sensitivity.candidates) {
      const prof = m.uniform[c.id];
      const e = m.sensitivity.entries.find((x) => x.group === g.name && x.candidate === c.id);
      const t = prof && layerTime(prof, g.layers);
      if (e && t !== undefined) choices.push({ id: c.id, time: t, cost: e.nll_delta });
    }
    out.push({ group: g.name, choices });
  }
  return out;
}

export interface PlannedGroup {
  group: string;
  layers: string[];
  choice: string;
  time_us: number;
  fp32_us: number;
  nll_delta: number;
}

export interface LayerPlanResult {
  groups: PlannedGroup[];
  /** Predicted µs per decode step (profiled, so including the profiler's own overhead) and the fp32 one. */
  predicted: { step_us: number; fp32_step_us: number; speedup: number; ppl_change: number };
  budget: { max_ppl_increase: number; nll: number };
}

/**
 * Which candidates a recipe check accepts on this provider (config/check.ts: the CPU MatMulNBits kernels
 * run 4 and 8 bits): plans offered to users choose among these only; the sensitivity may cover more.
 */
export function allowedOn(provider: string, candidates: readonly Candidate[]): (id: string) => boolean {
  return (id) => {
    const c = candidates.find((x) => x.id === id);
    return !!c && (!c.quant || provider !== 'cpu' || CPU_BITS.includes(c.quant.bits));
  };
}

/** The plan minimising predicted step time within `maxPplIncrease` (a fraction: 0.05 = 5%). */
export function planUnderBudget(
  m: LayerMeasurements,
  maxPplIncrease: number,
  restrict?: (id: string) => boolean,
): LayerPlanResult {
  const budget = Math.log1p(Math.max(0, maxPplIncrease));
  const all = choicesOf(m);
  const groups = all.map((g) => ({
    ...g,
    choices: g.choices.filter((c) => c.id === FP32 || !restrict || restrict(c.id)),
  }));
  const chosen = chooseUnderBudget(groups, budget);
  return planResult(m, groups, chosen.picks, maxPplIncrease, budget);
}

function planResult(
  m: LayerMeasurements,
  groups: GroupChoices[],
  picks: number[],
  maxPplIncrease: number,
  budget: number,
): LayerPlanResult {
  const layersOf = new Map(m.sensitivity.groups.map((g) => [g.name, g.layers] as const));
  const planned: PlannedGroup[] = groups.map((g, gi) => {
    const c = g.choices[picks[gi]];
    return {
      group: g.group,
      layers: layersOf.get(g.group) ?? [],
      choice: c.id,
      time_us: c.time,
      fp32_us: g.choices[0].time,
      nll_delta: c.cost,
    };
  });
  const layerFp32 = planned.reduce((s, g) => s + g.fp32_us, 0);
  // Medians throughout (layer times and the step), so a preempted step inflates neither side.
  const fp32Step = m.fp32.run_median_us ?? m.fp32.run_us;
  const other = Math.max(0, fp32Step - layerFp32); // everything that is not an analysed layer, and the executor
  const step = other + planned.reduce((s, g) => s + g.time_us, 0);
  const nll = planned.reduce((s, g) => s + Math.max(0, g.nll_delta), 0);
  return {
    groups: planned,
    predicted: {
      step_us: step,
      fp32_step_us: other + layerFp32,
      speedup: (other + layerFp32) / step,
      ppl_change: Math.expm1(nll),
    },
    budget: { max_ppl_increase: maxPplIncrease, nll: budget },
  };
}

/**
 * The best uniform setting within the same budget: one candidate on every group (or fp32), by the
 * same predicted figures. The per-layer plan is compared against it.
 */
export function bestUniform(
  m: LayerMeasurements,
  maxPplIncrease: number,
  restrict?: (id: string) => boolean,
): LayerPlanResult & { candidate: string } {
  const budget = Math.log1p(Math.max(0, maxPplIncrease));
  const groups = choicesOf(m);
  let best: (LayerPlanResult & { candidate: string }) | undefined;
  for (const id of [FP32, ...m.sensitivity.candidates.map((c) => c.id).filter((id) => !restrict || restrict(id))]) {
    if (!groups.every((g) => g.choices.some((c) => c.id === id))) continue;
    const picks = groups.map((g) => g.choices.findIndex((c) => c.id === id));
    const r = planResult(m, groups, picks, maxPplIncrease, budget);
    const cost = r.groups.reduce((s, g) => s + Math.max(0, g.nll_delta), 0);
    if (cost <= budget && (!best || r.predicted.step_us < best.predicted.step_us)) best = { ...r, candidate: id };
  }
  return best!;
}

// ---------------------------------------------------------------- into recipe knobs

/** Knobs (config/plan.ts's language) that put one candidate on one layer; fp32 keeps it in float. */
export function candidateKnobs(
  c: Candidate | undefined,
  layer: Pick<Layer, 'name' | 'K' | 'N'>,
  accuracyLevel?: number,
): Record<string, SearchValue> {
  const at = `@${layer.name}`;
  if (!c) return { [`quantize.bits${at}`]: 32 };
  if (c.quant) {
    const k: Record<string, SearchValue> = {
      [`quantize.bits${at}`]: c.quant.bits,
      [`quantize.block_size${at}`]: c.quant.block_size,
      [`quantize.symmetric${at}`]: c.quant.symmetric,
    };
    if (accuracyLevel !== undefined) k[`quantize.accuracy_level${at}`] = accuracyLevel;
    return k;
  }
  if (c.sparsity) return { [`quantize.bits${at}`]: 32, [`sparsity.pattern${at}`]: `${c.sparsity.n}:${c.sparsity.m}` };
  return { [`quantize.bits${at}`]: 32, [`low_rank.rank${at}`]: rankOf(c, layer)! };
}

/**
 * The knob assignment of a plan, on top of an fp32 recipe: `quantize.bits = 32` everywhere, then each
 * planned layer's setting (layers left fp32 need no knob).
 */
export function planKnobs(
  picks: readonly { layers: readonly string[]; choice: string }[],
  candidates: readonly Candidate[],
  layers: readonly Layer[],
  accuracyLevel?: number,
): Record<string, SearchValue> {
  const byName = new Map(layers.map((l) => [l.name, l] as const));
  const out: Record<string, SearchValue> = { 'quantize.bits': 32 };
  for (const p of picks) {
    if (p.choice === FP32) continue;
    const c = candidates.find((x) => x.id === p.choice);
    if (!c) throw new Error(`unknown candidate ${p.choice}`);
    for (const name of p.layers) {
      const l = byName.get(name);
      if (l) Object.assign(out, candidateKnobs(c, l, accuracyLevel));
    }
  }
  return out;
}
