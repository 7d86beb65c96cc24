// The tuning loop: propose → validate → evaluate → record → propose, for any Proposer. Budgets (trials,
// wall time), validation, duplicate detection, early stopping of hopeless trials and cancellation are
// all here, so every strategy — the LLM above all — gets exactly the same guard rails. A proposer may
// re-measure a plan (a repeat, speed only). The loop owns the one ranking rule (ranking.ts): its `best`
// is what every strategy, the CLI and the editor announce, and each trial races the best's paired ratio.
import { judge, Objective } from './objective';
import { bestPlan, type Plan, DEFAULT_TOLERANCE, MAX_MEASUREMENTS, planIndex, ratioOf } from './ranking';
import { configKey, planKey, SearchSpace, SpaceContext, validateConfig } from './space';
import type { Answer, Proposer, ProposerContext } from './proposer';
import type { Config, EvaluateOptions, Evaluator, Trial, TrialMetrics, Usage } from './types';
import type { RaceSeries } from '../bench/race';

export type LoopEvent =
  | { type: 'baseline'; metrics: TrialMetrics }
  | { type: 'trial-start'; index: number; config: Config; rationale?: string }
  | { type: 'trial-end'; trial: Trial; best?: Plan; trialsLeft: number }
  | { type: 'refused'; reasons: string[] }
  | { type: 'usage'; usage: Usage }
  | { type: 'done'; result: LoopResult };

export type Outcome = 'completed' | 'exhausted' | 'budget' | 'cancelled' | 'error';

export interface LoopResult {
  outcome: Outcome;
  reason: string;
  proposer: string;
  best?: Plan;
  trials: Trial[];
  baseline?: TrialMetrics;
  usage?: Usage;
  /** The proposer's own final answer (the agent's explanation), when it gave one. */
  answer?: Answer;
  refusals: number;
  seconds: number;
}

export interface LoopOptions {
  setting: SpaceContext;
  space: SearchSpace;
  objective: Objective;
  evaluator: Evaluator;
  proposer: Proposer;
  budget: { trials: number; minutes?: number };
  signal?: AbortSignal;
  onEvent?: (e: LoopEvent) => void;
  /**
   * Skip the accuracy stage of trials slower than the best feasible
   * one by this factor (default 1.3; Infinity disables).
   */
  pruneFactor?: number;
  /** Refused proposals in a row before the loop gives up on the proposer (default 8). */
  maxRefusals?: number;
  /** Tuning session id, passed to the evaluator for its records. */
  session?: string;
  /** Baseline metrics already measured (skips the baseline run). */
  baseline?: TrialMetrics;
}

function isAbort(err: unknown, signal: AbortSignal): boolean {
  return signal.aborted || (err as Error)?.name === 'AbortError' || (err as Error)?.name === 'APIUserAbortError';
}

/** Why a proposal of a plan that already ran is refused (none when it is an allowed re-measurement). */
function repeatRefusal(first: Trial, repeat: boolean, trials: readonly Trial[]): string[] {
  if (!repeat)
    return [
      `duplicate: trial #${first.index} already ran the same per-layer ` +
        `plan (${configKey(first.config)}); set repeat to re-measure it`,
    ];
  if (!first.feasible)
    return [
      `repeat: trial #${first.index} is not feasible ` +
        `(${first.violations.join('; ')}); only feasible plans are re-measured`,
    ];
  const n = trials.filter((t) => planIndex(t) === first.index && t.status !== 'failed').length;
  if (n >= MAX_MEASUREMENTS)
    return [`repeat: the plan of trial #${first.index} was measured ${n} times already (at most ${MAX_MEASUREMENTS})`];
  return [];
}

/**
 * The incumbent a new plan may duel, when its ratio came from a paired race: the evaluator races it
 * instead of fp32 only when told to (RecipeEvaluator raceReference 'incumbent'; docs/ARCHITECTURE.md
 * "Paired racing" says why fp32 is the default). A re-measured runner-up may duel the incumbent too; the
 * incumbent itself (or a plan whose artifact is gone) races fp32 (bench/run.ts duelOf).
 */
function duelWith(best: Plan, o: Objective): { against: NonNullable<EvaluateOptions['race']>['against'] } | {} {
  const race = best.metrics.race;
  if (!race?.paired || best.ratio === undefined || !best.paired) return {};
  const ratios: Partial<Record<RaceSeries, number>> = {};
  for (const s of ['decode', 'prefill', 'inference'] as const) if (race[s]) ratios[s] = race[s]!.ratio;
  // The objective's series takes the plan's ratio (the median of its measurements), as the ranking does.
  const series = o.field === 'prefill_ms' ? 'prefill' : race.series;
  ratios[series] = best.ratio;
  return { against: { config: best.config, label: `trial #${best.index}`, ratios } };
}

export async function runLoop(opts: LoopOptions): Promise<LoopResult> {
  const started = Date.now();
  const signal = opts.signal ?? new AbortController().signal;
  const emit = (e: LoopEvent) => {
    try {
      opts.onEvent?.(e);
    } catch {
      /* a listener's failure must not stop the search */
    }
  };
  const pruneFactor = opts.pruneFactor ?? 1.3;
  const maxRefusals = opts.maxRefusals ?? 8;
  const deadline = opts.budget.minutes !== undefined ? started + opts.budget.minutes * 60_000 : undefined;
  const trials: Trial[] = [];
  /** The first trial of each plan. */
  const byPlan = new Map<string, Trial>();
  let best: Plan | undefined;
  let baseline = opts.baseline;
  let refusals = 0;
  let refusedInARow = 0;
  let failedInARow = 0;
  let answer: Answer | undefined;

  const planOf = (c: Config): string => {
    try {
      return planKey(c, opts.setting);
    } catch {
      return `config:${configKey(c)}`;
    }
  };
  const ctx: ProposerContext = {
    space: opts.space,
    setting: opts.setting,
    objective: opts.objective,
    trials,
    baseline,
    budget: { trialsLeft: opts.budget.trials },
    validate: (c) => validateConfig(c, opts.space, opts.setting),
    duplicateOf: (c) => byPlan.get(planOf(c)),
    signal,
  };
  const finish = (outcome: Outcome, reason: string): LoopResult => {
    const result: LoopResult = {
      outcome,
      reason,
      proposer: opts.proposer.name,
      best,
      trials,
      baseline,
      usage: opts.proposer.usage?.(),
      answer,
      refusals,
      seconds: (Date.now() - started) / 1000,
    };
    emit({ type: 'done', result });
    return result;
  };
  const lastChance = async (reason: string) => {
    if (!opts.proposer.finish || signal.aborted) return;
    try {
      answer = await opts.proposer.finish(ctx, reason);
    } catch {
      /* the answer is a courtesy; the measured best stands without it */
    }
  };

  try {
    if (!baseline) {
      baseline = await opts.evaluator.baseline(signal);
      ctx.baseline = baseline;
    }
    emit({ type: 'baseline', metrics: baseline });

    for (;;) {
      if (signal.aborted) return finish('cancelled', 'cancelled');
      ctx.budget.trialsLeft = opts.budget.trials - trials.length;
      ctx.budget.msLeft = deadline !== undefined ? deadline - Date.now() : undefined;
      if (ctx.budget.trialsLeft <= 0) {
        await lastChance(`trial budget of ${opts.budget.trials} used`);
        return finish('budget', `trial budget of ${opts.budget.trials} used`);
      }
      if (ctx.budget.msLeft !== undefined && ctx.budget.msLeft <= 0) {
        await lastChance(`wall-time budget of ${opts.budget.minutes} minutes used`);
        return finish('budget', `wall-time budget of ${opts.budget.minutes} minutes used`);
      }

      const p = await opts.proposer.propose(ctx);
      const usage = opts.proposer.usage?.();
      if (usage) emit({ type: 'usage', usage });
      if (p.kind === 'done') {
        answer = p.answer;
        return finish(p.outcome, p.reason);
      }

      const v = validateConfig(p.config, opts.space, opts.setting);
      const dup = v.ok ? byPlan.get(planOf(v.config)) : undefined;
      const reasons = !v.ok ? v.errors : dup ? repeatRefusal(dup, p.repeat === true, trials) : [];
      if (reasons.length > 0) {
        refusals++;
        refusedInARow++;
        opts.proposer.observe?.({ kind: 'refused', reasons });
        emit({ type: 'refused', reasons });
        if (refusedInARow >= maxRefusals)
          return finish('error', `${refusedInARow} proposals in a row were refused; last: ${reasons[0]}`);
        continue;
      }
      refusedInARow = 0;

      // A repeat runs the first trial's config (the same plan) and measures speed only.
      const config = dup ? dup.config : (v as { config: Config }).config;
      const index = trials.length + 1;
      emit({ type: 'trial-start', index, config, rationale: p.rationale });
      const t0 = Date.now();
      const bestFeasible = best?.feasible ? best : undefined;
      let evaluation;
      try {
        const bestScore = bestFeasible?.score;
        evaluation = await opts.evaluator.evaluate(config, {
          signal,
          speedOnly: dup !== undefined,
          race: {
            threshold: bestFeasible?.ratio !== undefined ? Math.log(bestFeasible.ratio) : 0,
            tolerance: opts.objective.tolerance ?? DEFAULT_TOLERANCE,
            ...(bestFeasible ? duelWith(bestFeasible, opts.objective) : {}),
          },
          trial: { index, rationale: p.rationale, proposer: opts.proposer.name, session: opts.session },
          afterSpeed:
            dup || bestScore === undefined || !Number.isFinite(pruneFactor)
              ? undefined
              : (speed) => {
                  // The ranking's figure decides, as it decides the best: the paired ratio against fp32 when the
                  // trial raced, so a window slowed by a neighbour does not prune a plan the race found faster.
                  const r = ratioOf(opts.objective, speed, baseline);
                  if (r && bestFeasible?.ratio !== undefined)
                    return r.ratio > bestFeasible.ratio * pruneFactor ? 'prune' : 'continue';
                  const s = speed[opts.objective.field];
                  if (typeof s !== 'number') return 'continue';
                  const worse =
                    opts.objective.direction === 'min' ? s > bestScore * pruneFactor : s * pruneFactor < bestScore;
                  return worse ? 'prune' : 'continue';
                },
        });
      } catch (err) {
        if (isAbort(err, signal)) return finish('cancelled', 'cancelled during a trial');
        evaluation = { metrics: {}, status: 'failed' as const, error: (err as Error).message ?? String(err) };
      }
      // A repeat's accuracy is its plan's: the compressed model is the same, only the timing is new.
      if (dup && evaluation.status === 'ok')
        evaluation = { ...evaluation, metrics: { ...dup.metrics, ...evaluation.metrics } };
      const j = judge(opts.objective, evaluation.status, evaluation.metrics, baseline);
      const trial: Trial = {
        index,
        config,
        rationale: p.rationale,
        proposer: opts.proposer.name,
        status: evaluation.status,
        metrics: evaluation.metrics,
        error: evaluation.error,
        ...j,
        seconds: (Date.now() - t0) / 1000,
        ...(dup ? { repeatOf: dup.index } : {}),
      };
      trials.push(trial);
      if (!dup) byPlan.set(planOf(config), trial);
      best = bestPlan(trials, opts.objective, baseline);
      opts.proposer.observe?.({ kind: 'trial', trial });
      emit({ type: 'trial-end', trial, best, trialsLeft: opts.budget.trials - trials.length });
      failedInARow = trial.status === 'failed' ? failedInARow + 1 : 0;
      if (failedInARow >= 3) return finish('error', `3 trials in a row failed; last: ${trial.error}`);
    }
  } catch (err) {
    if (isAbort(err, signal)) return finish('cancelled', 'cancelled');
    return finish('error', (err as Error).message ?? String(err));
  }
}
