// Plans, not measurements. On a shared machine one measurement of a configuration can be off by tens
// of percent, and only ever slower: a neighbour's load adds time, never removes it (bench/REPORT.md §2
// gives the spread measured here). So a search may re-measure a plan (a trial with `repeatOf`, speed
// only), and every consumer — the loop's best, the optimizer's densities, the agent's history, the
// editor's "apply best trial", the benchmark's scoring — ranks plans by the fastest of their
// measurements: each further measurement is another chance to catch the machine quiet. A plan measured
// fast once is not lucky, it was measured when nothing else ran; one measured slow once may have been
// unlucky, and a repeat is how it gets a second chance.
// This module is the one place that aggregation is defined.
import { compareTrials } from './objective';
import type { Trial, TrialMetrics } from './types';

/** The speed figures a re-measurement brings; accuracy is the plan's first trial's (it is deterministic). */
export const SPEED_FIELDS = ['decode_ms_per_token', 'prefill_ms', 'throughput'] as const satisfies readonly (keyof TrialMetrics)[];

/** The speed figures of a measurement (the fields a re-measurement replaces). */
export function speedOf(m: TrialMetrics): TrialMetrics {
  const out: TrialMetrics = {};
  for (const f of SPEED_FIELDS) if (m[f] !== undefined) out[f] = m[f];
  return out;
}

/** How many measurements of one plan the loop runs at most (the first trial and its repeats). */
export const MAX_MEASUREMENTS = 3;

/** The index of the trial that first ran this trial's plan. */
export function planIndex(t: Trial): number {
  return t.repeatOf ?? t.index;
}

/** Lower is better for every speed field but throughput. */
const HIGHER_IS_BETTER: ReadonlySet<string> = new Set(['throughput']);

/** A plan's speed figures from its measurements: each field's best, i.e. from the least-loaded run. */
export function bestSpeed(measurements: readonly TrialMetrics[]): TrialMetrics {
  const out: TrialMetrics = {};
  for (const f of SPEED_FIELDS) {
    const xs = measurements.map((m) => m[f]).filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
    if (xs.length) out[f] = HIGHER_IS_BETTER.has(f) ? Math.max(...xs) : Math.min(...xs);
  }
  return out;
}

/**
 * One entry per plan, in the order plans were first tried: the plan's first trial, with its speed
 * metrics, score and loss replaced by the best over its successful measurements and `measurements`
 * set to their count. A plan measured once is its trial unchanged.
 */
export function standings(trials: readonly Trial[]): Trial[] {
  const groups = new Map<number, Trial[]>();
  for (const t of trials) {
    const g = groups.get(planIndex(t));
    if (g) g.push(t);
    else groups.set(planIndex(t), [t]);
  }
  const out: Trial[] = [];
  for (const group of groups.values()) {
    const first = group[0];
    const measured = group.filter((t) => t.status !== 'failed' && Number.isFinite(t.loss));
    if (group.length === 1 || measured.length <= 1) {
      out.push(group.length === 1 ? first : { ...first, measurements: measured.length });
      continue;
    }
    // The objective's own figure decides which measurement is best; speed fields each take their best.
    const top = measured.reduce((a, b) => (b.loss < a.loss ? b : a));
    out.push({
      ...first, metrics: { ...first.metrics, ...bestSpeed(measured.map((t) => t.metrics)) }, measurements: measured.length,
      score: top.score ?? first.score, loss: top.loss,
    });
  }
  return out;
}

/** The best plan (feasible first, then by its best loss), or undefined before any trial. */
export function bestPlan(trials: readonly Trial[]): Trial | undefined {
  return standings(trials).sort(compareTrials)[0];
}
