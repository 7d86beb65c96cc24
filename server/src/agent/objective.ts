// The evaluation objective: which metric the recipe optimises, in which direction, and the accuracy
// budget a trial must stay within (relative to fp32). Feasible trials rank by the metric; every
// infeasible trial ranks below every feasible one.
import type { Recipe, Metric } from '../config/recipe';
import type { TrialMetrics, TrialStatus } from './types';

export interface Objective {
  metric: Metric;
  /** The TrialMetrics field the metric reads. */
  field: keyof TrialMetrics;
  direction: 'min' | 'max';
  unit: string;
  max_ppl_increase: number;
  min_top1_agreement?: number;
  max_kl?: number;
  /** Speed ratios closer than this fraction are a tie (`search.tolerance`; ranking.ts). */
  tolerance?: number;
}

const FIELDS: Record<Metric, { field: keyof TrialMetrics; direction: 'min' | 'max'; unit: string }> = {
  decode_latency: { field: 'decode_ms_per_token', direction: 'min', unit: 'ms/token' },
  prefill_latency: { field: 'prefill_ms', direction: 'min', unit: 'ms' },
  throughput: { field: 'throughput', direction: 'max', unit: 'tokens/s' },
  size: { field: 'model_bytes', direction: 'min', unit: 'bytes' },
};

export function objectiveOf(recipe: Recipe): Objective {
  const m = recipe.objective.metric;
  const a = recipe.objective.accuracy;
  return {
    metric: m,
    ...FIELDS[m],
    max_ppl_increase: a.max_ppl_increase,
    min_top1_agreement: a.min_top1_agreement,
    max_kl: a.max_kl,
    tolerance: recipe.search.tolerance,
  };
}

export function scoreOf(o: Objective, m: TrialMetrics): number | undefined {
  const v = m[o.field];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** Lower is better whatever the direction. */
export function lossOf(o: Objective, score: number | undefined): number {
  if (score === undefined) return Infinity;
  return o.direction === 'min' ? score : -score;
}

/** Relative perplexity change against fp32 (0.03 = +3%), when both are known. */
export function pplChange(m: TrialMetrics, baseline?: TrialMetrics): number | undefined {
  const ref = m.ppl_fp32 ?? baseline?.ppl;
  return m.ppl !== undefined && ref !== undefined && ref > 0 ? m.ppl / ref - 1 : undefined;
}

export interface Judgement {
  feasible: boolean;
  score?: number;
  loss: number;
  violations: string[];
}

/** Whether a trial's measurements meet the accuracy budget, and its score. */
export function judge(o: Objective, status: TrialStatus, m: TrialMetrics, baseline?: TrialMetrics): Judgement {
  const score = scoreOf(o, m);
  const loss = lossOf(o, score);
  const violations: string[] = [];
  if (status === 'failed') violations.push('the trial failed');
  else if (status === 'pruned') violations.push('pruned: too slow to be worth measuring accuracy');
  else {
    const d = pplChange(m, baseline);
    if (d === undefined) violations.push('perplexity not measured');
    else if (d > o.max_ppl_increase + 1e-12)
      violations.push(
        `perplexity +${(d * 100).toFixed(2)}% exceeds the budget of +${(o.max_ppl_increase * 100).toFixed(2)}%`,
      );
    if (o.min_top1_agreement !== undefined) {
      if (m.top1 === undefined) violations.push('top-1 agreement not measured');
      else if (m.top1 < o.min_top1_agreement)
        violations.push(`top-1 agreement ${m.top1.toFixed(3)} below ${o.min_top1_agreement}`);
    }
    if (o.max_kl !== undefined) {
      if (m.kl === undefined) violations.push('KL divergence not measured');
      else if (m.kl > o.max_kl) violations.push(`KL ${m.kl.toFixed(4)} above ${o.max_kl}`);
    }
    if (score === undefined) violations.push(`${o.field} not measured`);
  }
  return { feasible: violations.length === 0, score, loss, violations };
}

/**
 * Order for ranking: feasible by loss, then pruned and
 * accuracy-infeasible by loss, failed last. Negative when a is better.
 */
export function compareTrials(
  a: { feasible: boolean; loss: number; status: TrialStatus; index: number },
  b: { feasible: boolean; loss: number; status: TrialStatus; index: number },
): number {
  const tier = (t: typeof a) => (t.feasible ? 0 : t.status === 'failed' ? 2 : 1);
  return tier(a) - tier(b) || (a.loss === b.loss ? 0 : a.loss < b.loss ? -1 : 1) || a.index - b.index;
}
