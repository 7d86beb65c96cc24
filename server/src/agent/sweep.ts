// The exhaustive sweep: every distinct plan of the space in a fixed order (first knob slowest). Its
// best is the ground truth the other searches are measured against.
import { enumerate } from './space';
import type { Proposal, Proposer, ProposerContext } from './proposer';
import type { Config } from './types';

export class Sweep implements Proposer {
  readonly name = 'sweep';
  private it?: Generator<Config>;
  private n = 0;
  async propose(ctx: ProposerContext): Promise<Proposal> {
    this.it ??= enumerate(ctx.space);
    for (let r = this.it.next(); !r.done; r = this.it.next()) {
      this.n++;
      if (ctx.duplicateOf(r.value) || !ctx.validate(r.value).ok) continue;
      return { kind: 'trial', config: r.value, rationale: `sweep: assignment ${this.n} of ${ctx.space.size}` };
    }
    return { kind: 'done', outcome: 'exhausted', reason: 'the sweep covered every plan in the space' };
  }
}
