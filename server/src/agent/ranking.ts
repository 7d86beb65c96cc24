// THE ranking rule: how plans (a configuration's first trial and its re-measurements) are ordered. The
// loop owns it (its `best`), so the offline optimizer, random search, the sweep and the Claude agent all
// get their ordering from here, and so do the editor (lsp/runs.ts), `haqa tune`'s summary and the
// results view: the announced best is the best every view shows.
//
// 1. Feasibility first, as the objective says (objective.ts compareTrials tiers): feasible plans, then
//    pruned / accuracy-infeasible ones, failed last.
// 2. Within a tier, by the plan's speed ratio against the fp32 reference (time / fp32 time; below 1 is
//    faster): the paired race's median ratio (bench/race.ts) when the trial raced, which both models saw
//    under the same load (raced against the incumbent, an option: the incumbent's ratio times the duel's);
//    otherwise the unpaired ratio of the trial's figure to the baseline's (noted by `paired: false`). A
//    plan measured more than once takes the median of its measurements' ratios (the geometric mean of
//    two), never the fastest: on a noisy machine the fastest of several windows rewards the plan that
//    was measured most, not the one that is fastest.
// 3. Ties: plans whose ratios are within `search.tolerance` (default 3%) of the fastest plan of their
//    class are tied; a tie is decided by accuracy (smaller perplexity increase), then size, then the
//    earlier trial — never by the noise in the ratios.
// For the size objective the ratio is bytes / fp32 bytes (deterministic); throughput ranks by the fp32
// throughput over the trial's (time-like: below 1 is faster), unpaired.
import { lossOf, pplChange, scoreOf, type Objective } from './objective';
import type { Trial, TrialMetrics } from './types';

/** The speed figures a re-measurement brings; accuracy is the plan's first trial's (it is deterministic). */
export const SPEED_FIELDS = [
  'decode_ms_per_token',
  'prefill_ms',
  'throughput',
  'race',
] as const satisfies readonly (keyof TrialMetrics)[];

/** The speed figures of a measurement (the fields a re-measurement replaces). */
export function speedOf(m: TrialMetrics): TrialMetrics {
  const out: TrialMetrics = {};
  for (const f of SPEED_FIELDS) if (m[f] !== undefined) (out as Record<string, unknown>)[f] = m[f];
  return out;
}

/** How many measurements of one plan the loop runs at most (the first trial and its repeats). */
export const MAX_MEASUREMENTS = 3;

export const DEFAULT_TOLERANCE = 0.03;

/** The index of the trial that first ran this trial's plan. */
export function planIndex(t: { index: number; repeatOf?: number }): number {
  return t.repeatOf ?? t.index;
}

export interface RatioOf {
  /** time (or bytes) / fp32's; below 1 is better. */
  ratio: number;
  /** True when it comes from a paired race (both models under the same load). */
  paired: boolean;
}

/** A measurement's ratio against fp32 for the objective's metric, or undefined when not measured. */
export function ratioOf(o: Objective, m: TrialMetrics, baseline?: TrialMetrics): RatioOf | undefined {
  const race = m.race;
  const f = o.field === 'decode_ms_per_token' ? race?.decode : o.field === 'prefill_ms' ? race?.prefill : undefined;
  if (race?.paired && f && Number.isFinite(f.ratio) && f.ratio > 0) return { ratio: f.ratio, paired: true };
  if (race && !race.paired && f && f.ratio > 0) return { ratio: f.ratio, paired: false };
  const v = scoreOf(o, m);
  const b = baseline ? scoreOf(o, baseline) : undefined;
  if (v === undefined || b === undefined || !(v > 0) || !(b > 0)) return undefined;
  return { ratio: o.direction === 'min' ? v / b : b / v, paired: false };
}

function medianOf(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : Math.sqrt(s[n / 2 - 1] * s[n / 2]);
}

/** A plan as the ranking sees it: its first trial, with the figures of its representative measurement. */
export type Plan = Trial & { ratio?: number; paired?: boolean };

/**
 * One entry per plan, in the order plans were first tried. A plan measured once is its trial (plus its
 * ratio). Re-measured: the ratio is the median of its successful measurements' ratios, and the speed
 * figures, score and loss are those of the measurement nearest that median; `measurements` counts them.
 */
export function plans(trials: readonly Trial[], o: Objective, baseline?: TrialMetrics): Plan[] {
  const groups = new Map<number, Trial[]>();
  for (const t of trials) {
    const g = groups.get(planIndex(t));
    if (g) g.push(t);
    else groups.set(planIndex(t), [t]);
  }
  const out: Plan[] = [];
  for (const group of groups.values()) {
    const first = group[0];
    const measured = group
      .filter((t) => t.status !== 'failed' && Number.isFinite(t.loss))
      .map((t) => ({ t, r: ratioOf(o, t.metrics, baseline) }));
    const withRatio = measured.filter((x) => x.r !== undefined);
    if (withRatio.length === 0) {
      out.push(group.length === 1 ? { ...first } : { ...first, measurements: measured.length });
      continue;
    }
    const ratio = medianOf(withRatio.map((x) => x.r!.ratio));
    const rep = withRatio.reduce((a, b) =>
      Math.abs(Math.log(b.r!.ratio / ratio)) < Math.abs(Math.log(a.r!.ratio / ratio)) ? b : a,
    );
    const paired = withRatio.every((x) => x.r!.paired);
    if (group.length === 1) {
      out.push({ ...first, ratio, paired });
      continue;
    }
    const score = rep.t.score ?? first.score;
    out.push({
      ...first,
      metrics: { ...first.metrics, ...speedOf(rep.t.metrics) },
      measurements: measured.length,
      score,
      loss: lossOf(o, scoreOf(o, rep.t.metrics) ?? score),
      ratio,
      paired,
    });
  }
  return out;
}

const tier = (t: Trial) => (t.feasible ? 0 : t.status === 'failed' ? 2 : 1);

/** Plans in rank order (best first), by the rule in this file's header. */
export function rankPlans(trials: readonly Trial[], o: Objective, baseline?: TrialMetrics): Plan[] {
  const band = Math.log(1 + (o.tolerance ?? DEFAULT_TOLERANCE));
  const ps = plans(trials, o, baseline);
  const key = (p: Plan) => (p.ratio !== undefined ? Math.log(p.ratio) : p.loss === Infinity ? Infinity : NaN);
  const out: Plan[] = [];
  for (const t of [0, 1, 2]) {
    const inTier = ps.filter((p) => tier(p) === t);
    // Plans with a ratio, by ratio; those without (no baseline figure) after them, by loss.
    const rated = inTier.filter((p) => Number.isFinite(key(p))).sort((a, b) => key(a) - key(b) || a.index - b.index);
    const unrated = inTier
      .filter((p) => !Number.isFinite(key(p)))
      .sort((a, b) => (a.loss === b.loss ? a.index - b.index : a.loss < b.loss ? -1 : 1));
    for (let i = 0; i < rated.length;) {
      // A class: every plan within the tolerance of the class's fastest.
      let j = i + 1;
      while (j < rated.length && key(rated[j]) - key(rated[i]) <= band + 1e-12) j++;
      out.push(...rated.slice(i, j).sort(tieBreak(baseline)));
      i = j;
    }
    out.push(...unrated);
  }
  return out;
}

/** Within a tie: smaller perplexity increase, then fewer bytes, then the earlier trial. */
function tieBreak(baseline?: TrialMetrics) {
  return (a: Plan, b: Plan): number => {
    const pa = pplChange(a.metrics, baseline) ?? Infinity;
    const pb = pplChange(b.metrics, baseline) ?? Infinity;
    if (pa !== pb) return pa < pb ? -1 : 1;
    const ba = a.metrics.model_bytes ?? Infinity;
    const bb = b.metrics.model_bytes ?? Infinity;
    if (ba !== bb) return ba < bb ? -1 : 1;
    return a.index - b.index;
  };
}

/** The best plan (rankPlans' first), or undefined before any trial. */
export function bestPlan(trials: readonly Trial[], o: Objective, baseline?: TrialMetrics): Plan | undefined {
  return rankPlans(trials, o, baseline)[0];
}

/** Whether two plans are tied under the rule (both rated, ratios within the tolerance). */
export function tied(a: Plan, b: Plan, o: Objective): boolean {
  if (a.ratio === undefined || b.ratio === undefined) return false;
  return Math.abs(Math.log(a.ratio / b.ratio)) <= Math.log(1 + (o.tolerance ?? DEFAULT_TOLERANCE)) + 1e-12;
}
