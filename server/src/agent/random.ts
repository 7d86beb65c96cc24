// Random search: uniform draws over the space, never the same plan twice. The baseline every smarter
// search must beat at equal trials.
import { Rng } from './rng';
import { enumerate } from './space';
import type { Proposal, Proposer, ProposerContext } from './proposer';
import type { Config } from './types';

/** A config not yet run and valid on the model: `draw` tried `tries` times, then the space in order. */
export function firstUnseen(ctx: ProposerContext, draw: () => Config, tries: number): Config | undefined {
  for (let i = 0; i < tries; i++) {
    const c = draw();
    if (!ctx.duplicateOf(c) && ctx.validate(c).ok) return c;
  }
  for (const c of enumerate(ctx.space)) if (!ctx.duplicateOf(c) && ctx.validate(c).ok) return c;
  return undefined;
}

export function uniformConfig(ctx: ProposerContext, rng: Rng): Config {
  const c: Config = {};
  for (const k of ctx.space.knobs) c[k.key] = rng.pick(k.values);
  return c;
}

export class RandomSearch implements Proposer {
  readonly name = 'random';
  private rng: Rng;
  constructor(seed: number) {
    this.rng = new Rng(seed);
  }
  async propose(ctx: ProposerContext): Promise<Proposal> {
    const c = firstUnseen(ctx, () => uniformConfig(ctx, this.rng), 500);
    return c
      ? { kind: 'trial', config: c, rationale: 'uniform random draw' }
      : { kind: 'done', outcome: 'exhausted', reason: 'every plan in the space has been tried' };
  }
}
