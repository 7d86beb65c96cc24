// Batches of proposals to keep N devices busy (a fleet, several SSH hosts): any Proposer, asked N times
// with the trials still running shown to it as finished with a made-up result — the constant liar
// (Ginsbourger et al. 2010). Each pending trial "scored" the worst loss seen so far (CL-max), so the
// optimizer neither proposes it again nor crowds the next proposal next to it; when the real results
// come in, the loop observes them as usual and the lies are gone. Used next to agent/loop.ts, not in it.
import { configKey, planKey } from './space';
import type { Proposal, Proposer, ProposerContext } from './proposer';
import type { Config, Trial } from './types';

export type TrialProposal = Extract<Proposal, { kind: 'trial' }>;

export interface Batch {
  proposals: TrialProposal[];
  /** Set when the proposer stopped before the batch was full (space exhausted, budget, error). */
  done?: Extract<Proposal, { kind: 'done' }>;
}

/** The constant liar's value: the worst finite loss observed, else 0 (nothing known yet). */
export function liarLoss(trials: readonly Trial[]): number {
  const finite = trials.map((t) => t.loss).filter((l) => Number.isFinite(l));
  return finite.length ? Math.max(...finite) : 0;
}

/**
 * Up to `n` proposals for trials to run at once, none a plan already run, running (`pending`) or in the
 * batch. Each proposal is validated by the loop's validator; an invalid one is skipped (at most n of them).
 * The proposer's own state is not told of the lies (its `observe` is not called).
 */
export async function proposeBatch(
  proposer: Proposer,
  ctx: ProposerContext,
  n: number,
  pending: readonly Config[] = [],
): Promise<Batch> {
  const planOf = (c: Config): string => {
    try {
      return planKey(c, ctx.setting);
    } catch {
      return `config:${configKey(c)}`;
    }
  };
  const lie = liarLoss(ctx.trials);
  const lies: Trial[] = [];
  const byPlan = new Map<string, Trial>();
  const pretend = (config: Config, rationale?: string) => {
    const t: Trial = {
      index: ctx.trials.length + lies.length + 1,
      config,
      rationale,
      proposer: proposer.name,
      status: 'ok',
      metrics: {},
      feasible: false,
      loss: lie,
      violations: ['pending: running elsewhere (constant liar)'],
      seconds: 0,
    };
    lies.push(t);
    byPlan.set(planOf(config), t);
  };
  for (const c of pending) pretend(c, 'pending');
  const out: TrialProposal[] = [];
  let invalid = 0;
  while (out.length < n && invalid <= n) {
    const view: ProposerContext = {
      ...ctx,
      trials: [...ctx.trials, ...lies],
      budget: { ...ctx.budget, trialsLeft: Math.max(1, ctx.budget.trialsLeft - out.length) },
      duplicateOf: (c) => ctx.duplicateOf(c) ?? byPlan.get(planOf(c)),
    };
    const p = await proposer.propose(view);
    if (p.kind === 'done') return { proposals: out, done: p };
    const v = ctx.validate(p.config);
    if (!v.ok || !v.config) {
      invalid++;
      continue;
    }
    if (!p.repeat && view.duplicateOf(v.config)) {
      invalid++;
      continue;
    }
    out.push({ ...p, config: v.config });
    pretend(v.config, p.rationale);
  }
  return { proposals: out };
}
