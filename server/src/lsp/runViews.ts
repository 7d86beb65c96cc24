// How a run looks in the editor (pure: records in, protocol summaries and one-line headlines out): the
// results view's rows, the lens and toast headline, a ranked plan's figures, the per-layer plan a record
// ran, and the newest tuning session's best. Ranking and history are the engine's (agent/ranking.ts,
// agent/fromRecords.ts); this module only words them. Text from records passes util/sanitize.
import type { LayerPlanSummary, RunSummary, TuneResult } from './protocol';
import type { Recipe } from '../config/recipe';
import { planLayers } from '../config/plan';
import { ruleLabels } from '../config/planner';
import { COMPRESSION_SECTIONS } from '../config/methods';
import type { Layer } from '../model/graph';
import type { RecordAt } from '../bench/store';
import { runtimeLabel, type RunRecord } from '../bench/record';
import type { Config, TrialMetrics } from '../agent/types';
import type { Plan } from '../agent/ranking';
import { bestOfSession, mergeTrialSteps } from '../agent/fromRecords';
import type { Objective } from '../agent/objective';
import { displayText, lineText } from '../util/sanitize';

export function pctDelta(ppl?: number, base?: number): number | undefined {
  return ppl !== undefined && base ? ((ppl - base) / base) * 100 : undefined;
}

/** "decode 7.9 ms/token · 2.7× vs fp32 · ppl +0.6% · 3.0 MB · onnxruntime" — the figure a user reads first. */
export function headline(r: RunSummary): string {
  if (r.status !== 'ok') return `${r.status}${r.error ? `: ${r.error}` : ''}`;
  const parts: string[] = [];
  const f = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
  if (r.decode_ms !== undefined) parts.push(`decode ${f(r.decode_ms)} ms/token`);
  else if (r.inference_ms !== undefined) parts.push(`${f(r.inference_ms)} ms/inference`);
  if (r.speedup_decode !== undefined) parts.push(`${r.speedup_decode.toFixed(1)}× vs fp32`);
  if (r.ppl_delta_pct !== undefined) parts.push(`ppl ${r.ppl_delta_pct >= 0 ? '+' : ''}${r.ppl_delta_pct.toFixed(1)}%`);
  if (r.model_bytes !== undefined) parts.push(`${(r.model_bytes / 1e6).toFixed(1)} MB`);
  // which runtime measured it (the engine; the results view has its version)
  if (parts.length && r.runtime) parts.push(r.runtime.split(' ')[0]);
  return parts.join(' · ') || 'measured';
}

export function summarize(r: RunRecord, line?: number, layers?: LayerPlanSummary[]): RunSummary {
  const m = r.metrics ?? {};
  // The record's words (the agent's rationale, an error quoting the model) are shown in the editor.
  const shown = (s: string | undefined) => (s === undefined ? undefined : displayText(s));
  const t = r.trial;
  return {
    id: r.id,
    recipe_file: r.recipe_file,
    recipe_hash: r.recipe_hash,
    status: r.status,
    error: shown(r.error?.message),
    started: r.started,
    trial: t && {
      number: t.number,
      session: t.session,
      rationale: shown(t.rationale),
      agent: t.agent,
      assignment: t.assignment,
    },
    decode_ms: m.decode_ms_per_token?.median,
    prefill_ms: m.prefill_ms?.median,
    inference_ms: m.inference_ms?.median,
    throughput_tok_s: m.throughput_tok_s,
    ppl: m.ppl,
    ppl_fp32: m.ppl_fp32,
    ppl_delta_pct: pctDelta(m.ppl, m.ppl_fp32),
    kl: m.kl,
    top1: m.top1,
    model_bytes: m.model_bytes,
    peak_rss_bytes: m.peak_rss_bytes,
    runtime: runtimeLabel(r),
    speedup_decode: speedupOf(r),
    speedup_size: r.speedups?.size,
    line,
    layers,
    ...(r.race
      ? {
          paired: r.race.paired,
          race_verdict: r.race.verdict,
          race_seconds: r.race.wall_ms / 1000,
          ...(r.race.reference ? { race_reference: lineText(r.race.reference) } : {}),
        }
      : {}),
  };
}

/** fp32 time / this run's: the paired race's ratio when the run raced (bench/race.ts), else the record's speedup. */
export function speedupOf(r: RunRecord): number | undefined {
  const f = r.race?.decode ?? r.race?.inference;
  if (f && f.ratio > 0) return 1 / f.ratio;
  return r.speedups?.decode ?? r.speedups?.inference;
}

/**
 * The newest tuning session's best plan, from run records alone (after a restart, when the loop's answer
 * is gone): the session rebuilt as the loop judged it (agent/fromRecords.ts) and ranked by the loop's
 * one rule (agent/ranking.ts), so the lens, "apply best trial" and the results view name the best the
 * tuner announced. `id` is the record of the plan's first trial (the view marks it).
 */
export function bestOfNewestSession(
  recs: readonly RecordAt[],
  objective: Objective | number,
): { config: Config; headline: string; id: string } | undefined {
  const o: Objective =
    typeof objective === 'number'
      ? {
          metric: 'decode_latency',
          field: 'decode_ms_per_token',
          direction: 'min',
          unit: 'ms/token',
          max_ppl_increase: objective,
        }
      : objective;
  const found = bestOfSession(
    mergeTrialSteps(recs).map((x) => x.record),
    o,
  );
  if (!found) return undefined;
  return { config: found.plan.config, headline: headline(planSummary(found.plan, found.view.baseline)), id: found.id };
}

/** The headline figures of a ranked plan (agent/ranking.ts): the same numbers the loop's answer has. */
export function planSummary(best: Plan, baseline?: TrialMetrics): NonNullable<TuneResult['best']> {
  const bm = best.metrics;
  const ratio =
    best.ratio ??
    (bm.decode_ms_per_token && baseline?.decode_ms_per_token
      ? bm.decode_ms_per_token / baseline.decode_ms_per_token
      : undefined);
  return {
    id: `trial-${best.index}`,
    recipe_file: '',
    recipe_hash: '',
    status: best.status === 'failed' ? 'error' : 'ok',
    started: '',
    decode_ms: bm.decode_ms_per_token,
    prefill_ms: bm.prefill_ms,
    ppl: bm.ppl,
    ppl_fp32: bm.ppl_fp32,
    ppl_delta_pct: pctDelta(bm.ppl, bm.ppl_fp32 ?? baseline?.ppl),
    speedup_decode: ratio ? 1 / ratio : undefined,
    model_bytes: bm.model_bytes,
    runtime: bm.runtime,
    assignment: best.config,
  };
}

/** What each layer got in the run `r` (the planner's view of the recipe with the record's compression). */
export function layerMap(recipe: Recipe, layers: readonly Layer[], r: RunRecord): LayerPlanSummary[] {
  const c = r.config ?? ({} as RunRecord['config']);
  const asRun = { ...recipe } as Recipe;
  for (const s of COMPRESSION_SECTIONS) (asRun as unknown as Record<string, unknown>)[s] = c[s];
  try {
    return planLayers(asRun, layers).map((p) => ({
      name: p.layer.name,
      bits: p.quant?.bits,
      block_size: p.quant?.block_size,
      skip: !p.quant,
      methods: ruleLabels(p),
    }));
  } catch {
    return [];
  }
}
