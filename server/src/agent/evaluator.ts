// The real Evaluator: a config becomes a recipe (applyKnobs), which bench/run.ts compresses and
// measures in a worker process. Run records go to the store as usual, tagged with the trial.
//
// Early stopping: when the loop may prune, a trial runs in two steps — a speed-only run, then, if the
// speed is promising, an accuracy-only run that reuses the compressed artifact from the store. When
// nothing can be pruned yet (no feasible trial), one run measures both. A re-measurement (speedOnly) is
// the speed-only run alone.
import type { Recipe } from '../config/recipe';
import { applyKnobs } from '../config/plan';
import type { RunOptions, RunProgress } from '../bench/run';
import type { RaceSettings } from '../bench/race';
import { runOnTarget } from '../runner';
import { fp32Recipe, RunRecord, runtimeLabel, throughputOf } from '../bench/record';
import { speedOf } from './ranking';
import { configKey } from './space';
import type { Config, EvaluateOptions, Evaluation, Evaluator, TrialMetrics } from './types';

export interface RecipeEvaluatorOptions {
  /** Fewer repetitions and windows (default true: the tuner's setting). */
  quick?: boolean;
  storeDir?: string;
  /** Per-run wall-clock limit, ms. */
  timeoutMs?: number;
  onProgress?: (p: RunProgress & { trial?: number }) => void;
  /** Per-trial time cap of the paired race, ms (default 20 s; bench/race.ts). */
  raceCapMs?: number;
  /** Race to a ±precision interval instead of a verdict (ground truth, bench/paired.ts; RaceSettings.precision). */
  racePrecision?: number;
  /**
   * Race trials against fp32 (default true); false measures each alone (the old unpaired windows, for bench/search.ts).
   */
  race?: boolean;
  /**
   * What a trial races when the loop names an incumbent: always fp32 (the default), or the incumbent's
   * compressed model (a duel). bench/paired.ts measures both in live searches; the duel did not do better
   * there (bench/REPORT.md §2), so the tuner races fp32. Ground truth (racePrecision) always races fp32.
   */
  raceReference?: 'incumbent' | 'fp32';
}

export const DEFAULT_RACE_CAP_MS = 20_000;

/**
 * The tuner's view of a run record's metrics. A raced run (bench/race.ts) gives the medians of its
 * samples and the race itself (the paired ratios the ranking reads, agent/ranking.ts). Otherwise speed
 * is the window's fastest sample, not its median: on a shared machine load only ever adds time and
 * comes in stretches of seconds, so the median of one window says as much about the neighbours as
 * about the configuration (bench/REPORT.md §2), while the fastest sample is the closest the window came
 * to the configuration's own speed. Throughput follows from the same fastest prefill and step. Records
 * from before `min` was kept fall back to the median.
 */
export function metricsOf(r: RunRecord): TrialMetrics {
  const m = r.metrics;
  const pick = (s?: { min?: number; median: number }) => s && (r.race ? s.median : (s.min ?? s.median));
  const decode = pick(m.decode_ms_per_token);
  const prefill = pick(m.prefill_ms);
  const w = r.config?.workload;
  return {
    decode_ms_per_token: decode,
    prefill_ms: prefill,
    throughput:
      w && decode !== undefined && prefill !== undefined ? throughputOf(w, prefill, decode) : m.throughput_tok_s,
    model_bytes: m.model_bytes,
    ppl: m.ppl,
    ppl_fp32: m.ppl_fp32,
    kl: m.kl,
    top1: m.top1,
    ...(r.race ? { race: r.race } : {}),
    runtime: runtimeLabel(r),
  };
}

function abortError(): Error {
  return Object.assign(new Error('cancelled'), { name: 'AbortError' });
}

export class RecipeEvaluator implements Evaluator {
  /** Every record made, in order (tests and the CLI read them). */
  readonly records: RunRecord[] = [];

  constructor(
    private recipe: Recipe,
    private opts: RecipeEvaluatorOptions = {},
  ) {}

  private async run(
    recipe: Recipe,
    signal: AbortSignal | undefined,
    trial: EvaluateOptions['trial'],
    config?: Config,
    measure?: RunOptions['measure'],
    race?: EvaluateOptions['race'],
  ): Promise<RunRecord> {
    const ro: RunOptions = {
      signal,
      measure,
      race: this.raceSettings(race),
      raceAgainst: this.raceAgainst(race),
      quick: this.opts.quick ?? true,
      storeDir: this.opts.storeDir,
      timeoutMs: this.opts.timeoutMs,
      onProgress: (p) => this.opts.onProgress?.({ ...p, trial: trial?.index }),
      trial: trial
        ? {
            number: trial.index,
            session: trial.session,
            assignment: config,
            rationale: trial.rationale,
            agent: trial.proposer,
          }
        : undefined,
    };
    const rec = await runOnTarget(recipe, ro); // where target.host says (server/src/runner)
    this.records.push(rec);
    if (rec.status === 'cancelled' || signal?.aborted) throw abortError();
    return rec;
  }

  /** The race of a speed run: against the loop's threshold, with the baseline's medians for the unpaired fallback. */
  private raceSettings(race?: EvaluateOptions['race']): RaceSettings | undefined {
    if (!race || this.opts.race === false) return undefined;
    const b = this.records.find((r) => r.trial?.agent === 'baseline' && r.status === 'ok')?.metrics;
    return {
      tolerance: race.tolerance,
      threshold: race.threshold,
      capMs: this.opts.raceCapMs ?? DEFAULT_RACE_CAP_MS,
      ...(this.opts.racePrecision !== undefined ? { precision: this.opts.racePrecision } : {}),
      referenceMs: {
        decode: b?.decode_ms_per_token?.median,
        prefill: b?.prefill_ms?.median,
        inference: b?.inference_ms?.median,
      },
    };
  }

  /**
   * A duel's reference: the newest successful record of the incumbent's plan that kept its artifact
   * (records are this evaluator's own runs, so the path is one its store wrote; bench/run.ts checks it).
   */
  private raceAgainst(race?: EvaluateOptions['race']): RunOptions['raceAgainst'] {
    const a = race?.against;
    if (
      !a ||
      this.opts.race === false ||
      this.opts.raceReference !== 'incumbent' ||
      this.opts.racePrecision !== undefined
    )
      return undefined;
    const key = configKey(a.config);
    const rec = [...this.records]
      .reverse()
      .find(
        (r) =>
          r.status === 'ok' &&
          r.artifact !== undefined &&
          r.trial?.assignment !== undefined &&
          configKey(r.trial.assignment as Config) === key,
      );
    if (!rec?.artifact) return undefined;
    return { model: rec.artifact, session: rec.session_options, label: a.label, ratios: a.ratios };
  }

  async baseline(signal?: AbortSignal): Promise<TrialMetrics> {
    const rec = await this.run(fp32Recipe(this.recipe), signal, {
      index: 0,
      proposer: 'baseline',
      rationale: 'the fp32 reference',
    });
    if (rec.status !== 'ok')
      throw new Error(
        `the fp32 baseline failed (${rec.error?.stage ?? rec.status}): ${rec.error?.message ?? rec.status}`,
      );
    return metricsOf(rec);
  }

  async evaluate(config: Config, opts: EvaluateOptions): Promise<Evaluation> {
    const recipe = applyKnobs(this.recipe, config);
    const failed = (rec: RunRecord): Evaluation => ({
      metrics: metricsOf(rec),
      status: 'failed',
      error: `${rec.error?.stage ?? rec.status}: ${rec.error?.message ?? rec.status}`,
    });
    if (opts.speedOnly) {
      // A re-measurement: the artifact is reused from the store, only the timing runs again.
      const speed = await this.run(
        recipe,
        opts.signal,
        opts.trial,
        config,
        { latency: true, accuracy: false },
        opts.race,
      );
      const m = metricsOf(speed);
      return speed.status === 'ok'
        ? { metrics: { ...speedOf(m), model_bytes: m.model_bytes, runtime: m.runtime }, status: 'ok' }
        : failed(speed);
    }
    if (opts.afterSpeed && recipe.evaluation.text) {
      const speed = await this.run(
        recipe,
        opts.signal,
        opts.trial,
        config,
        { latency: true, accuracy: false },
        opts.race,
      );
      if (speed.status !== 'ok') return failed(speed);
      const m = metricsOf(speed);
      if (opts.afterSpeed(m) === 'prune') return { metrics: m, status: 'pruned' };
      const acc = await this.run(recipe, opts.signal, opts.trial, config, { latency: false, accuracy: true });
      if (acc.status !== 'ok') return failed(acc);
      const a = metricsOf(acc);
      return { metrics: { ...m, ppl: a.ppl, ppl_fp32: a.ppl_fp32, kl: a.kl, top1: a.top1 }, status: 'ok' };
    }
    const rec = await this.run(recipe, opts.signal, opts.trial, config, undefined, opts.race);
    if (rec.status !== 'ok') return failed(rec);
    return { metrics: metricsOf(rec), status: 'ok' };
  }
}
