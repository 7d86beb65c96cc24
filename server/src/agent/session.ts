// The tuning session: a loaded recipe and its search space, a proposer from the table (proposers.ts), the
// real evaluator (compress + benchmark) unless one is given, and the loop (loop.ts) under the budget. The
// engine half of `haqa tune` and of the editor's haqa/tune request: both call `tune` here and only parse
// their own arguments and print or report what the loop says.
import { objectiveOf } from './objective';
import { runLoop, type LoopEvent, type LoopResult } from './loop';
import { type ProposerName, createProposer, proposerProblem } from './proposers';
import { RecipeEvaluator } from './evaluator';
import type { Proposer } from './proposer';
import type { Evaluator } from './types';
import type { LoadedSetting } from './setting';

/** A session that cannot start as asked (no API key for Claude, an empty space): the caller's input is wrong. */
export class TuneSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TuneSetupError';
  }
}

export interface TuneOptions {
  agent: ProposerName;
  trials: number;
  minutes?: number;
  seed: number;
  apiKey?: string;
  model?: string;
  baseURL?: string;
  signal?: AbortSignal;
  onEvent?: (e: LoopEvent) => void;
  /** Default: the real RecipeEvaluator (compress + benchmark). */
  evaluator?: Evaluator;
  quick?: boolean;
  /** Stage messages of the real evaluator (compress, reference, latency...). */
  onProgress?: (trial: number | undefined, stage: string, message: string) => void;
}

/** The session's proposer, from the table; a TuneSetupError when it cannot be built as asked. */
export function sessionProposer(loaded: LoadedSetting, o: TuneOptions): Proposer {
  const problem = proposerProblem(o.agent, o);
  if (problem) throw new TuneSetupError(problem);
  return createProposer(o.agent, { ...o, architecture: loaded.architecture });
}

/** Run one tuning session to its end (budget, cancellation or the agent's answer). */
export async function tune(loaded: LoadedSetting, o: TuneOptions): Promise<LoopResult> {
  const { setting, space } = loaded;
  if (space.knobs.length === 0)
    throw new TuneSetupError('the search space is empty (every search.space entry was dropped)');
  return runLoop({
    setting,
    space,
    objective: objectiveOf(setting.recipe),
    evaluator:
      o.evaluator ??
      new RecipeEvaluator(setting.recipe, {
        quick: o.quick ?? true,
        onProgress: (p) => o.onProgress?.(p.trial, p.stage, p.message),
      }),
    proposer: sessionProposer(loaded, o),
    budget: { trials: o.trials, minutes: o.minutes },
    signal: o.signal,
    onEvent: o.onEvent,
    session: `tune-${Date.now().toString(36)}`,
  });
}
