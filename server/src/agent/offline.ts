// The offline optimizer: a Tree-structured Parzen Estimator over the categorical knobs, seeded by
// hardware-aware priors. With no API key it drives the loop; it is also the agent's baseline.
//
// TPE (Bergstra et al., 2011) splits the trials so far into a good set (the best γ fraction by the
// objective, infeasible ones always last) and the rest, fits one density per knob to each — counts of
// each value, Laplace-smoothed with the prior as pseudo-counts — and proposes the candidate, drawn
// from the good density, that maximises l(x)/g(x) (which is monotone in expected improvement). The
// first trials are the priors' seeds; early stopping of slow trials lives in the loop.
//
// Noise: one unpaired measurement of a configuration can be tens of percent off on a busy machine. The
// real evaluator races each trial in one worker against fp32 or the incumbent (bench/race.ts), so its ratio is paired;
// plans rank by the loop's one rule (ranking.ts), in the densities and in the loop's answer. By default
// the budget's last trial gives the runner-up a second measurement when it is within RUNNER_UP_WITHIN
// of the incumbent (`rematch: 'last'`); a plan's measurements combine by their median ratio.
import { Rng } from './rng';
import { hardwarePriors, Priors } from './priors';
import { firstUnseen, uniformConfig } from './random';
import { MAX_MEASUREMENTS, rankPlans } from './ranking';
import type { Proposal, Proposer, ProposerContext } from './proposer';
import type { Config } from './types';

/**
 * How close (as a ratio of losses) the runner-up must be to get the last trial: about one run-to-run σ
 * of a quick window's fastest sample in the search table measured here (0.19 of log latency, a factor
 * of e^0.19 ≈ 1.21; bench/REPORT.md §2). A runner-up further behind rarely overtakes with one more run.
 */
export const RUNNER_UP_WITHIN = 1.25;

export interface TpeOptions {
  seed: number;
  /** Share of trials in the good set. */
  gamma?: number;
  /** Candidates drawn from the good density per proposal. */
  candidates?: number;
  /** Trials before the densities are used (the seeds count). */
  startup?: number;
  /** Probability that a knob of a candidate is drawn uniformly instead (keeps exploring). */
  explore?: number;
  /** Whether the budget's last trial re-measures a close runner-up (default) or explores like the rest. */
  rematch?: 'last' | 'never';
}

export class TpeSearch implements Proposer {
  readonly name = 'offline';
  private rng: Rng;
  private priors?: Priors;
  private readonly gamma: number;
  private readonly candidates: number;
  private readonly startup: number;
  private readonly explore: number;
  private readonly rematch: 'last' | 'never';

  constructor(opts: TpeOptions) {
    this.rng = new Rng(opts.seed);
    this.gamma = opts.gamma ?? 0.25;
    this.candidates = opts.candidates ?? 48;
    this.startup = opts.startup ?? 4;
    this.explore = opts.explore ?? 0.1;
    this.rematch = opts.rematch ?? 'last';
  }

  async propose(ctx: ProposerContext): Promise<Proposal> {
    this.priors ??= hardwarePriors(ctx.space, ctx.setting.hardware, ctx.objective);
    const priors = this.priors;
    // 1. The priors' seeds, in order.
    for (const s of priors.seeds) {
      if (!ctx.duplicateOf(s) && ctx.validate(s).ok)
        return { kind: 'trial', config: s, rationale: 'prior: what the hardware and kernel facts predict' };
    }
    // 2. A few draws from the prior before the densities mean anything.
    if (ctx.trials.length < this.startup) {
      const c = firstUnseen(ctx, () => this.sample(ctx, (key) => priors.weights[key]), 200);
      return c ? { kind: 'trial', config: c, rationale: 'prior sample' } : this.exhausted();
    }
    // 3. The last trial: a second chance for the runner-up, if it is close enough to win with one.
    const rival = this.rematch === 'last' && ctx.budget.trialsLeft === 1 ? this.runnerUp(ctx) : undefined;
    if (rival) {
      return {
        kind: 'trial',
        config: rival.config,
        repeat: true,
        rationale:
          `re-measure the runner-up (trial #${rival.index}, within ${Math.round((RUNNER_UP_WITHIN - 1) * 100)}% ` +
          `of the best): one run can be slowed by the machine's load`,
      };
    }
    // 4. TPE.
    const { l, g } = this.densities(ctx);
    let best: Config | undefined;
    let bestScore = -Infinity;
    const decay = 1 / (1 + ctx.trials.length / 8); // the joint prior fades as measurements accumulate
    // Candidates: draws from the good density, plus every one-knob change of the incumbent (the best
    // feasible trial) — TPE's independent per-knob densities are slow to settle the last knob or two,
    // and a neighbour with a high l/g is exactly the refinement worth one trial.
    const neighbours = this.neighbours(ctx);
    for (
      let i = 0;
      i < this.candidates * 4 + neighbours.length && (i < this.candidates + neighbours.length || !best);
      i++
    ) {
      const c = i < neighbours.length ? neighbours[i] : this.sample(ctx, (key) => l[key]);
      if (ctx.duplicateOf(c) || !ctx.validate(c).ok) continue;
      let score = decay * priors.jointPenalty(c);
      ctx.space.knobs.forEach((k) => {
        const j = k.values.indexOf(c[k.key]);
        score += Math.log(l[k.key][j]) - Math.log(g[k.key][j]);
      });
      if (score > bestScore) {
        bestScore = score;
        best = c;
      }
    }
    best ??= firstUnseen(ctx, () => uniformConfig(ctx, this.rng), 200);
    return best
      ? {
          kind: 'trial',
          config: best,
          rationale: `TPE: highest l/g among candidates from the good density (log ratio ${bestScore.toFixed(2)})`,
        }
      : this.exhausted();
  }

  /** The best feasible plan so far, by the loop's ranking rule. */
  private incumbent(ctx: ProposerContext) {
    return rankPlans(ctx.trials, ctx.objective, ctx.baseline).filter((t) => t.feasible)[0];
  }

  /** The second-best feasible plan, when it may be re-measured and is within RUNNER_UP_WITHIN of the best. */
  private runnerUp(ctx: ProposerContext) {
    const [best, second] = rankPlans(ctx.trials, ctx.objective, ctx.baseline).filter((t) => t.feasible);
    if (!best || !second || (second.measurements ?? 1) >= MAX_MEASUREMENTS) return undefined;
    const ratio =
      best.ratio !== undefined && second.ratio !== undefined
        ? second.ratio / best.ratio
        : best.loss > 0
          ? second.loss / best.loss
          : best.loss < 0
            ? best.loss / second.loss
            : Infinity;
    return ratio <= RUNNER_UP_WITHIN ? second : undefined;
  }

  private neighbours(ctx: ProposerContext): Config[] {
    const inc = this.incumbent(ctx);
    if (!inc) return [];
    const out: Config[] = [];
    for (const k of ctx.space.knobs) {
      for (const v of k.values) if (inc.config[k.key] !== v) out.push({ ...inc.config, [k.key]: v });
    }
    return out;
  }

  private exhausted(): Proposal {
    return { kind: 'done', outcome: 'exhausted', reason: 'every plan in the space has been tried' };
  }

  private sample(ctx: ProposerContext, weightsOf: (key: string) => number[]): Config {
    const c: Config = {};
    for (const k of ctx.space.knobs) {
      c[k.key] =
        this.rng.next() < this.explore ? this.rng.pick(k.values) : k.values[this.rng.weighted(weightsOf(k.key))];
    }
    return c;
  }

  /** Per-knob densities of the good (l) and bad (g) sets: counts plus prior pseudo-counts, normalised. */
  densities(ctx: ProposerContext): { l: Record<string, number[]>; g: Record<string, number[]> } {
    const ranked = rankPlans(ctx.trials, ctx.objective, ctx.baseline);
    const nGood = Math.max(1, Math.ceil(this.gamma * ranked.length));
    const good = ranked.slice(0, nGood);
    const bad = ranked.slice(nGood);
    const l: Record<string, number[]> = {};
    const g: Record<string, number[]> = {};
    for (const k of ctx.space.knobs) {
      const prior = this.priors!.weights[k.key];
      const psum = prior.reduce((a, b) => a + b, 0);
      const count = (set: typeof good) => k.values.map((v) => set.filter((t) => t.config[k.key] === v).length);
      const cg = count(good);
      const cb = count(bad);
      // Laplace smoothing: one pseudo-observation spread by the prior (good) or uniformly (bad).
      const ng = cg.reduce((a, b) => a + b, 0) + 1;
      const nb = cb.reduce((a, b) => a + b, 0) + 1;
      l[k.key] = cg.map((c, j) => (c + prior[j] / psum) / ng);
      g[k.key] = cb.map((c) => (c + 1 / k.values.length) / nb);
    }
    return { l, g };
  }
}
