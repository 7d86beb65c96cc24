// A tuning session rebuilt from its run records (after a restart, when the loop's answer is gone): the
// trials as the loop judged them, so the editor's lens, "apply best trial" and the results view rank
// them with the loop's own rule (ranking.ts) and announce the same best. A trial's two records (speed, then
// accuracy) are one trial: mergeTrialSteps, which the results view and the lens count by too.
import type { RunRecord } from '../bench/record';
import { metricsOf } from './evaluator';
import { judge, type Objective } from './objective';
import { configKey } from './space';
import type { Config, Trial, TrialMetrics } from './types';
import { rankPlans, speedOf, type Plan } from './ranking';

export interface SessionView {
  session: string;
  trials: Trial[];
  baseline?: TrialMetrics;
  /** Record ids of each trial index (a trial's speed and accuracy steps are merged by the caller). */
  ids: Map<number, string>;
}

/** The newest session's trials (records merged per trial step, oldest first), or undefined without one. */
export function newestSession(records: readonly RunRecord[], o: Objective): SessionView | undefined {
  const tuned = records.filter((r) => r.trial?.session);
  if (!tuned.length) return undefined;
  const session = tuned[tuned.length - 1].trial!.session!;
  const mine = tuned.filter((r) => r.trial!.session === session);
  // The evaluator's fp32 baseline run carries no session: it is the last one before the session's first trial.
  const start = records.indexOf(mine[0]);
  const base = records
    .slice(0, start)
    .reverse()
    .find((r) => r.trial?.agent === 'baseline' && r.status === 'ok');
  // Without it (an older store), the fp32 figures a trial's record carries stand in.
  const carried = mine.find((r) => r.baseline?.decode_ms_per_token)?.baseline;
  const baseline = base
    ? metricsOf(base)
    : carried
      ? { decode_ms_per_token: carried.decode_ms_per_token!.median, prefill_ms: carried.prefill_ms?.median }
      : undefined;
  const trials: Trial[] = [];
  const ids = new Map<number, string>();
  const first = new Map<string, Trial>();
  for (const r of mine) {
    if (r === base || !r.trial?.assignment) continue;
    const config = r.trial.assignment as Config;
    const k = configKey(config);
    const dup = first.get(k);
    const index = trials.length + 1;
    let metrics = metricsOf(r);
    if (dup) metrics = { ...dup.metrics, ...speedOf(metrics) };
    const status = r.status === 'ok' ? 'ok' : 'failed';
    const t: Trial = {
      index,
      config,
      proposer: r.trial.agent ?? 'unknown',
      status,
      metrics,
      ...judge(o, status, metrics, baseline),
      seconds: 0,
      ...(dup ? { repeatOf: dup.index } : {}),
    };
    trials.push(t);
    ids.set(index, r.id);
    if (!dup) first.set(k, t);
  }
  return { session, trials, baseline, ids };
}

/** The newest session's best plan under the loop's rule, with the record id of its first trial. */
export function bestOfSession(
  records: readonly RunRecord[],
  o: Objective,
): { plan: Plan; id: string; view: SessionView } | undefined {
  const view = newestSession(records, o);
  if (!view) return undefined;
  const plan = rankPlans(view.trials, o, view.baseline).find((p) => p.feasible);
  return plan ? { plan, id: view.ids.get(plan.index)!, view } : undefined;
}

/**
 * The tuner measures a trial in two steps (speed, then accuracy if the speed is promising), each its
 * own record: one entry per trial, at its first record's place, metrics filled from both (copies; the
 * inputs are not changed). Records that are not trials pass through as copies.
 */
export function mergeTrialSteps<T extends { record: RunRecord }>(recs: readonly T[]): T[] {
  const out: T[] = [];
  const byTrial = new Map<string, T>();
  for (const x of recs) {
    const t = x.record.trial;
    const key = t?.session !== undefined && t.number !== undefined ? `${t.session}#${t.number}` : undefined;
    const prev = key ? byTrial.get(key) : undefined;
    if (!prev) {
      const copy = { ...x, record: { ...x.record, metrics: { ...x.record.metrics } } };
      if (key) byTrial.set(key, copy);
      out.push(copy);
      continue;
    }
    for (const [k, v] of Object.entries(x.record.metrics ?? {}))
      if (v !== undefined) (prev.record.metrics as Record<string, unknown>)[k] = v;
    prev.record.baseline = { ...prev.record.baseline, ...x.record.baseline };
    prev.record.speedups = { ...prev.record.speedups, ...x.record.speedups };
    if (x.record.status !== 'ok') {
      prev.record.status = x.record.status;
      prev.record.error = x.record.error;
    }
  }
  return out;
}
