// Re-measurement: on a noisy machine the loop lets a search measure a plan again (speed only), and
// ranks plans by the median of their measurements (server/src/agent/standings.ts). The offline
// optimizer uses it to confirm its answer with the budget's last trial.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runLoop, LoopOptions } from '../../server/src/agent/loop';
import { TpeSearch } from '../../server/src/agent/offline';
import { standings, MAX_MEASUREMENTS } from '../../server/src/agent/standings';
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
  constructor(private script: Map<string, number[]>, private ppl: (c: Config) => number = () => 10.1) {}
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
    name: 'scripted', refused,
    async propose() {
      return proposals[i++] ?? { kind: 'done', outcome: 'completed', reason: 'script done' };
    },
    observe(o) {
      if (o.kind === 'refused') refused.push(o.reasons);
    },
  };
}

function loop(proposer: Proposer, evaluator: Evaluator, trials: number): Promise<ReturnType<typeof runLoop> extends Promise<infer R> ? R : never> {
  const o: LoopOptions = { setting, space, objective, evaluator, proposer, budget: { trials }, pruneFactor: Infinity };
  return runLoop(o);
}

const key = (c: Config) => planKey(c, setting);

test('a repeat measures speed only, keeps the first trial\'s accuracy, and the best is chosen by the median', async () => {
  // B's first run is lucky (0.8); its repeats (1.3, 1.2) show it is slower than A (1.0).
  const ev = new ScriptedEvaluator(new Map([[key(A), [1.0]], [key(B), [0.8, 1.3, 1.2]]]));
  const p = scripted([
    { kind: 'trial', config: A },
    { kind: 'trial', config: B },
    { kind: 'trial', config: B, repeat: true },
    { kind: 'trial', config: B, repeat: true },
  ]);
  const r = await loop(p, ev, 10);
  assert.deepEqual(p.refused, []);
  assert.deepEqual(ev.calls.map((c) => c.speedOnly), [false, false, true, true]);
  assert.deepEqual(r.trials.map((t) => t.repeatOf), [undefined, undefined, 2, 2]);
  assert.equal(r.trials[2].metrics.ppl, 10.1, 'a repeat carries its plan\'s accuracy');
  assert.equal(r.trials[2].metrics.decode_ms_per_token, 1.3);
  assert.ok(r.trials.every((t) => t.feasible));
  assert.equal(r.best!.index, 1, 'A (1.0) beats B (median 1.2), though B\'s first run was the fastest');
  const b = standings(r.trials).find((t) => t.index === 2)!;
  assert.equal(b.measurements, 3);
  assert.equal(b.metrics.decode_ms_per_token, 1.2);
  assert.equal(b.metrics.prefill_ms, 8 * 1.2);
  assert.equal(b.score, 1.2);
});

test('a lucky single run wins when nothing re-measures it; one repeat corrects the answer', async () => {
  const script = () => new Map([[key(A), [1.0]], [key(B), [0.8, 1.4]]]);
  const once = await loop(scripted([{ kind: 'trial', config: A }, { kind: 'trial', config: B }]), new ScriptedEvaluator(script()), 10);
  assert.equal(once.best!.index, 2);
  const twice = await loop(scripted([{ kind: 'trial', config: A }, { kind: 'trial', config: B }, { kind: 'trial', config: B, repeat: true }]), new ScriptedEvaluator(script()), 10);
  assert.equal(twice.best!.index, 1);
  assert.equal(twice.best!.measurements, undefined, 'A was measured once: its own trial');
});

test('repeats are refused with reasons: without repeat, of an infeasible plan, past the cap', async () => {
  const ev = new ScriptedEvaluator(new Map([[key(A), [1, 1, 1, 1]], [key(C), [0.5, 0.5]]]), (c) => (c['quantize.accuracy_level'] === 0 ? 20 : 10.1));
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

function countsByPlan(trials: readonly { index: number; repeatOf?: number }[]): number[] {
  const counts = new Map<number, number>();
  for (const t of trials) counts.set(t.repeatOf ?? t.index, (counts.get(t.repeatOf ?? t.index) ?? 0) + 1);
  return [...counts.values()];
}

test('by default the offline optimizer spends its last trial re-measuring the incumbent, and nothing else', async () => {
  for (const seed of [0, 1, 2]) {
    const ev = new SyntheticEvaluator(setting, { seed, noise: 0.15 });
    const r = await loop(new TpeSearch({ seed }), ev, 12);
    const repeats = r.trials.filter((t) => t.repeatOf !== undefined);
    assert.equal(repeats.length, 1, `seed ${seed}`);
    assert.equal(repeats[0].index, 12, 'the last trial');
    const before = standings(r.trials.slice(0, 11)).filter((x) => x.feasible).sort((a, b) => a.loss - b.loss || a.index - b.index)[0];
    assert.equal(repeats[0].repeatOf, before.index, 'it re-measures the incumbent');
    assert.match(repeats[0].rationale!, /re-measure the incumbent/);
    assert.equal(ev.accuracyRuns, r.trials.filter((t) => t.repeatOf === undefined && t.status === 'ok').length, 'the repeat runs no accuracy stage');
    if (r.best!.index === before.index) assert.equal(r.best!.measurements, 2, 'an answer that survived is the median of two runs');
  }
});

test("confirm: 'always' re-measures each new incumbent once before moving on", async () => {
  for (const seed of [0, 1, 2]) {
    const r = await loop(new TpeSearch({ seed, confirm: 'always' }), new SyntheticEvaluator(setting, { seed, noise: 0.15 }), 16);
    const repeats = r.trials.filter((t) => t.repeatOf !== undefined);
    assert.ok(repeats.length > 0, `seed ${seed}: some incumbent was re-measured`);
    for (const t of repeats) {
      const before = standings(r.trials.slice(0, t.index - 1)).filter((x) => x.feasible).sort((a, b) => a.loss - b.loss || a.index - b.index)[0];
      assert.equal(t.repeatOf, before.index, `seed ${seed}: trial #${t.index} re-measures the incumbent`);
      assert.equal(before.measurements ?? 1, 1);
    }
    assert.ok(countsByPlan(r.trials).every((n) => n <= 2), 'never a third measurement');
  }
});

test("confirm: 'never' turns re-measuring off", async () => {
  const r = await loop(new TpeSearch({ seed: 0, confirm: 'never' }), new SyntheticEvaluator(setting, { seed: 0, noise: 0.15 }), 16);
  assert.equal(r.trials.filter((t) => t.repeatOf !== undefined).length, 0);
  assert.equal(new Set(r.trials.map((t) => key(t.config))).size, r.trials.length);
});
