// The vocabulary of the tuner, shared by the search space, the optimizers, the Claude agent and the loop.
// Everything here is plain data (JSON-serialisable) so trials can be printed, stored and sent to the editor.
import type { SearchValue } from '../config/recipe';
import type { RaceResult, RaceSeries } from '../bench/race';

export type { SearchValue };

/**
 * A knob assignment: `{ 'quantize.bits': 8, 'quantize.accuracy_level': 4 }`. Knobs not named keep the recipe's value.
 */
export type Config = Record<string, SearchValue>;

/**
 * What one evaluation measured. Speed fields come first (the evaluator reports them before running the
 * accuracy stage); accuracy fields are absent for pruned trials.
 */
export interface TrialMetrics {
  decode_ms_per_token?: number;
  prefill_ms?: number;
  /** Generated tokens per second at the workload's batch. */
  throughput?: number;
  model_bytes?: number;
  ppl?: number;
  /** Perplexity of the fp32 model on the same text (the reference the budget is relative to). */
  ppl_fp32?: number;
  /** Mean KL divergence (nats) of next-token distributions from fp32. */
  kl?: number;
  /** Share of next-token argmax agreeing with fp32. */
  top1?: number;
  /**
   * The paired race (bench/race.ts) that measured the speed figures, when one ran: against fp32, or a duel
   * against the incumbent with its figures on the fp32 scale (`reference`, `duel`).
   */
  race?: RaceResult;
  /** The runtime that measured them (bench/record.ts runtimeLabel), e.g. "llama.cpp 3.21.1". */
  runtime?: string;
}

export type TrialStatus = 'ok' | 'pruned' | 'failed';

export interface Trial {
  /** 1-based, in the order trials ran. */
  index: number;
  config: Config;
  /** Why the proposer picked it (the agent's words, or the optimizer's reason). */
  rationale?: string;
  proposer: string;
  status: TrialStatus;
  metrics: TrialMetrics;
  /** Error message when status is 'failed'. */
  error?: string;
  feasible: boolean;
  /** The objective's metric value (undefined when not measured). */
  score?: number;
  /** Lower is better, whatever the metric's direction; +Infinity when not measured. */
  loss: number;
  /** Why the trial is infeasible (accuracy budget, pruned, failed). */
  violations: string[];
  seconds: number;
  /**
   * Set on a re-measurement: the index of the trial that first ran this plan. A repeat measures speed
   * only; its accuracy metrics are that trial's. Plans rank by the median of their measurements'
   * ratios (ranking.ts).
   */
  repeatOf?: number;
  /** In a plan's aggregated view (ranking.ts): how many measurements it has. */
  measurements?: number;
}

/** What the evaluator learns first; if `decide` answers 'prune', the accuracy stage is skipped. */
export type SpeedVerdict = 'continue' | 'prune';

export interface EvaluateOptions {
  signal?: AbortSignal;
  /**
   * Called once with the speed metrics, before the accuracy stage. Absent when nothing could be
   * pruned yet (no feasible trial to compare with): evaluators may then measure everything at once.
   */
  afterSpeed?: (speed: TrialMetrics) => SpeedVerdict;
  /** Measure speed only (a re-measurement: the plan's accuracy is already known). */
  speedOnly?: boolean;
  /**
   * Race (bench/race.ts): stop once the ratio's interval (on the fp32 scale) is better, worse or
   * tied within `tolerance` of `threshold` (the best plan's log ratio; 0 = fp32's). From the loop's ranking.
   */
  race?: {
    threshold: number;
    tolerance: number;
    /**
     * The incumbent (the loop's best, when its ratio came from a paired race): the evaluator may race
     * against its compressed model instead of fp32 (a duel, bench/race.ts RaceAgainst); `ratios` are its
     * ratios to fp32 per series, which put the duel's figures on the fp32 scale.
     */
    against?: { config: Config; label: string; ratios: Partial<Record<RaceSeries, number>> };
  };
  /** For the run record: which trial of which session this is. */
  trial?: { index: number; rationale?: string; proposer: string; session?: string };
}

export interface Evaluation {
  metrics: TrialMetrics;
  /** 'pruned' when afterSpeed said so and the accuracy stage was skipped. */
  status: TrialStatus;
  error?: string;
}

/** Runs configurations. The real one compresses and benchmarks (see evaluator.ts); tests use a cost model. */
export interface Evaluator {
  /** The fp32 reference: the model as given, default runtime. */
  baseline(signal?: AbortSignal): Promise<TrialMetrics>;
  evaluate(config: Config, opts: EvaluateOptions): Promise<Evaluation>;
}

/** Tokens as the API counts them; cost from the model's price table. */
export interface Usage {
  requests: number;
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  /** US dollars, estimated from the price table (undefined for unknown models). */
  cost_usd?: number;
  /** Agent sessions: tool calls received and request bytes sent (what the session caps count, agent/limits.ts). */
  tool_calls?: number;
  bytes_sent?: number;
}

export function emptyUsage(): Usage {
  return {
    requests: 0,
    input_tokens: 0,
    output_tokens: 0,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    cost_usd: 0,
  };
}

export function totalTokens(u: Usage): number {
  return u.input_tokens + u.output_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens;
}
