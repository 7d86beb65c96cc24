// The one interface every search strategy implements — the offline optimizer, random search, the
// exhaustive sweep and the Claude agent — so the loop, its budgets, validation and events are shared.
import type { Objective } from './objective';
import type { SearchSpace, SpaceContext, Validation } from './space';
import type { Config, Trial, TrialMetrics, Usage } from './types';

export interface ProposerContext {
  space: SearchSpace;
  setting: SpaceContext;
  objective: Objective;
  /** Trials so far, in the order they ran. */
  trials: readonly Trial[];
  baseline?: TrialMetrics;
  budget: { trialsLeft: number; msLeft?: number };
  /** The loop's own validator (space, schema, model). */
  validate(config: unknown): Validation;
  /** The trial that already ran the same plan, if any. */
  duplicateOf(config: Config): Trial | undefined;
  signal: AbortSignal;
}

export interface Answer {
  config: Config;
  explanation: string;
}

export type Proposal =
  /**
   * Run a config. With `repeat`, a plan that already ran (feasibly) is measured again, speed only, to
   * tell apart plans whose difference is within the machine's noise; each measurement is a trial of the
   * budget, and a plan is measured at most MAX_MEASUREMENTS times (ranking.ts).
   */
  | { kind: 'trial'; config: unknown; rationale?: string; repeat?: boolean }
  | { kind: 'done'; outcome: 'completed' | 'exhausted' | 'budget' | 'error'; reason: string; answer?: Answer };

export type Observation = { kind: 'trial'; trial: Trial } | { kind: 'refused'; reasons: string[] };

export interface Proposer {
  readonly name: string;
  propose(ctx: ProposerContext): Promise<Proposal>;
  /** The fate of the last 'trial' proposal: the finished trial, or why it was refused. */
  observe?(o: Observation): void;
  /** The loop stopped on its budget: a last chance to give a final answer (the agent's explanation). */
  finish?(ctx: ProposerContext, reason: string): Promise<Answer | undefined>;
  usage?(): Usage;
}
