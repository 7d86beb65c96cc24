// Re-measurement: the loop lets a search measure a plan again (speed only); a plan's measurements combine
// by the median of their ratios against fp32 (server/src/agent/ranking.ts), never the fastest. The offline
// optimizer uses a repeat to give a close runner-up a second chance with the last trial.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runLoop, LoopOptions } from '../../server/src/agent/loop';
import { RUNNER_UP_WITHIN, TpeSearch } from '../../server/src/agent/offline';
import { plans, rankPlans, MAX_MEASUREMENTS } from '../../server/src/agent/ranking';
import { defaultSpace, planKey } from '../../server/src/agent/space';
import { objectiveOf } from '../../server/src/agent/objective';
import { SyntheticEvaluator, syntheticSetting } from '../../server/src/agent/synthetic';
import type { Proposal, Proposer } from '../../server/src/agent/proposer';
import type { Config, EvaluateOptions, Evaluation, Evaluator, TrialMetrics } from '../../server/src/agent/types';

const setting = syntheticSetting();
const space = defaultSpace(setting);
const objective = objectiveOf(setting.recipe);

const A: Config = { 'quantize.bits': 8, 'quantize.accuracy_level': 4 };
const B: Config = { 'quantize.bits': 4, 'quantize.accuracy_level': 4 };
const C: Config = { 'quantize.bits': 4, 'quantize.accuracy_level': 0 };

/** Scripted latencies per plan, in the order they are measured; records what it was asked. */
class ScriptedEvaluator implements Evaluator {
  readonly calls: { config: Config; speedOnly: boolean }[] = [];
  private seen = new Map<string, number>();
  constructor(
    private script: Map<string, number[]>,
    private ppl: (c: Config) => number = () => 10.1,
  ) {}
  async baseline(): Promise<TrialMetrics> {
    return { decode_ms_per_token: 2, ppl: 10, ppl_fp32: 10 };
  }
  async evaluate(config: Config, opts: EvaluateOptions): Promise<Evaluation> {
    this.calls.push({ config, speedOnly: opts.speedOnly === true });
    const k = planKey(config, setting);
    const i = this.seen.get(k) ?? 0;
    this.seen.set(k, i + 1);
    const d = this.script.get(k)![i];
    const speed = { decode_ms_per_token: d, prefill_ms: 8 * d };
    if (opts.speedOnly) return { metrics: speed, status: 'ok' };
    return { metrics: { ...speed, ppl: this.ppl(config), ppl_fp32: 10 }, status: 'ok' };
  }
}

function scripted(proposals: Proposal[]): Proposer & { refused: string[][] } {
  const refused: string[][] = [];
  let i = 0;
  return {
    name: 'scripted',
    refused,
    async propose() {
      return proposals[i++] ?? { kind: 'done', outcome: 'completed', reason: 'script done' };
    },
    observe(o) {
      if (o.kind === 'refused') refused.push(o.reasons);
    },
  };
}

function loop(
  proposer: Proposer,
  evaluator: Evaluator,
  trials: number,
): Promise<ReturnType<typeof runLoop> extends Promise<infer R> ? R : never> {
  const o: LoopOptions = { setting, space, objective, evaluator, proposer, budget: { trials }, pruneFactor: Infinity };
  return runLoop(o);
}

const key = (c: Config) => planKey(c, setting);

test("a repeat measures speed only, keeps the first trial's accuracy, and the plan counts at its median", async () => {
  // B measured 1.3, 0.8, 0.9: its median (0.9) beats A (1.0); the fastest alone would have said 0.8.
  const ev = new ScriptedEvaluator(
    new Map([
      [key(A), [1.0]],
      [key(B), [1.3, 0.8, 0.9]],
    ]),
  );
  const p = scripted([
    { kind: 'trial', config: A },
    { kind: 'trial', config: B },
    { kind: 'trial', config: B, repeat: true },
    { kind: 'trial', config: B, repeat: true },
  ]);
  const r = await loop(p, ev, 10);
  assert.deepEqual(p.refused, []);
  assert.deepEqual(
    ev.calls.map((c) => c.speedOnly),
    [false, false, true, true],
  );
  assert.deepEqual(
    r.trials.map((t) => t.repeatOf),
    [undefined, undefined, 2, 2],
  );
  assert.equal(r.trials[2].metrics.ppl, 10.1, "a repeat carries its plan's accuracy");
  assert.equal(r.trials[2].metrics.decode_ms_per_token, 0.8);
  assert.ok(r.trials.every((t) => t.feasible));
  assert.equal(r.best!.index, 2, "B at its median (0.9) beats A (1.0), though B's first run was slower");
  const b = plans(r.trials, objective, r.baseline).find((t) => t.index === 2)!;
  assert.equal(b.measurements, 3);
  assert.equal(b.metrics.decode_ms_per_token, 0.9);
  assert.equal(b.metrics.prefill_ms, 8 * 0.9);
  assert.equal(b.score, 0.9);
  assert.ok(Math.abs(b.ratio! - 0.9 / 2) < 1e-12, 'unpaired ratio against the fp32 baseline (2 ms)');
});

test('one lucky fast window does not win: a plan needs its median to beat the best', async () => {
  const ev = new ScriptedEvaluator(
    new Map([
      [key(A), [1.0]],
      [key(B), [1.3, 0.7, 1.2]],
    ]),
  );
  const p = scripted([
    { kind: 'trial', config: A },
    { kind: 'trial', config: B },
    { kind: 'trial', config: B, repeat: true },
    { kind: 'trial', config: B, repeat: true },
  ]);
  const r = await loop(p, ev, 10);
  assert.equal(r.best!.index, 1, "B's median (1.2) loses to A (1.0) though one window said 0.7");
});

test('a run slowed by load loses when nothing re-measures it; one repeat gives the plan its due', async () => {
  // Two measurements combine by their geometric mean: √(1.1·0.8) ≈ 0.94 < 1.
  const script = () =>
    new Map([
      [key(A), [1.0]],
      [key(B), [1.1, 0.8]],
    ]);
  const once = await loop(
    scripted([
      { kind: 'trial', config: A },
      { kind: 'trial', config: B },
    ]),
    new ScriptedEvaluator(script()),
    10,
  );
  assert.equal(once.best!.index, 1);
  const twice = await loop(
    scripted([
      { kind: 'trial', config: A },
      { kind: 'trial', config: B },
      { kind: 'trial', config: B, repeat: true },
    ]),
    new ScriptedEvaluator(script()),
    10,
  );
  assert.equal(twice.best!.index, 2);
  assert.equal(twice.best!.measurements, 2);
});

test('repeats are refused with reasons: without repeat, of an infeasible plan, past the cap', async () => {
  const ev = new ScriptedEvaluator(
    new Map([
      [key(A), [1, 1, 1, 1]],
      [key(C), [0.5, 0.5]],
    ]),
    (c) => (c['quantize.accuracy_level'] === 0 ? 20 : 10.1),
  );
  const p = scripted([
    { kind: 'trial', config: A },
    { kind: 'trial', config: A },
    { kind: 'trial', config: C },
    { kind: 'trial', config: C, repeat: true },
    ...Array.from({ length: MAX_MEASUREMENTS }, (): Proposal => ({ kind: 'trial', config: A, repeat: true })),
  ]);
  const r = await loop(p, ev, 10);
  assert.equal(r.trials.length, 2 + (MAX_MEASUREMENTS - 1));
  assert.equal(p.refused.length, 3);
  assert.match(p.refused[0][0], /duplicate: trial #1 .*set repeat to re-measure it/);
  assert.match(p.refused[1][0], /trial #2 is not feasible \(perplexity .*exceeds the budget/);
  assert.match(p.refused[2][0], new RegExp(`measured ${MAX_MEASUREMENTS} times already`));
  assert.equal(ev.calls.length, r.trials.length, 'nothing refused was evaluated');
});

test('by default the offline optimizer spends its last trial on a close runner-up, never the incumbent', async () => {
  let rematches = 0;
  for (const seed of [0, 1, 2, 3, 4, 5]) {
    const ev = new SyntheticEvaluator(setting, { seed, noise: 0.15 });
    const r = await loop(new TpeSearch({ seed }), ev, 12);
    const repeats = r.trials.filter((t) => t.repeatOf !== undefined);
    const [best, second] = rankPlans(r.trials.slice(0, 11), objective, r.baseline).filter((x) => x.feasible);
    const close = second !== undefined && second.ratio! <= best.ratio! * RUNNER_UP_WITHIN;
    assert.equal(
      repeats.length,
      close ? 1 : 0,
      `seed ${seed}: a rematch exactly when the runner-up is within ${RUNNER_UP_WITHIN}×`,
    );
    if (!close) continue;
    rematches++;
    assert.equal(repeats[0].index, 12, 'the last trial');
    assert.equal(repeats[0].repeatOf, second.index, 'it re-measures the runner-up');
    assert.match(repeats[0].rationale!, /re-measure the runner-up/);
    assert.equal(
      ev.accuracyRuns,
      r.trials.filter((t) => t.repeatOf === undefined && t.status === 'ok').length,
      'the repeat runs no accuracy stage',
    );
    const after = plans(r.trials, objective, r.baseline).find((t) => t.index === second.index)!;
    assert.equal(after.measurements, 2);
    assert.equal(
      r.best!.index,
      rankPlans(r.trials, objective, r.baseline).filter((x) => x.feasible)[0].index,
      "the loop's best is the ranking's",
    );
  }
  assert.ok(rematches > 0, 'some seed had a close runner-up');
});

test("rematch: 'never' spends every trial on a new plan", async () => {
  const r = await loop(
    new TpeSearch({ seed: 0, rematch: 'never' }),
    new SyntheticEvaluator(setting, { seed: 0, noise: 0.15 }),
    16,
  );
  assert.equal(r.trials.filter((t) => t.repeatOf !== undefined).length, 0);
  assert.equal(new Set(r.trials.map((t) => key(t.config))).size, r.trials.length);
});
