// The loop and the offline searches on the synthetic cost model (whose optimum is 8-bit weights with
// int8 compute — not the "obvious" 4-bit): determinism by seed, no duplicate plans (re-measurements
// aside: agent-remeasure.test.ts), pruning of
// hopeless trials, cancellation, budgets, refusals, and TPE beating random search at equal trials.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runLoop, LoopEvent, LoopOptions } from '../../server/src/agent/loop';
import { TpeSearch } from '../../server/src/agent/offline';
import { RandomSearch } from '../../server/src/agent/random';
import { Sweep } from '../../server/src/agent/sweep';
import { defaultSpace, planKey, enumerate } from '../../server/src/agent/space';
import { objectiveOf } from '../../server/src/agent/objective';
import { SyntheticEvaluator, syntheticSetting } from '../../server/src/agent/synthetic';
import type { Proposer } from '../../server/src/agent/proposer';

const setting = syntheticSetting();
const space = defaultSpace(setting);
const objective = objectiveOf(setting.recipe);

function opts(
  proposer: Proposer,
  evaluator: SyntheticEvaluator,
  trials: number,
  extra: Partial<LoopOptions> = {},
): LoopOptions {
  return { setting, space, objective, evaluator, proposer, budget: { trials }, ...extra };
}

let sweepBest: number | undefined;
async function groundTruth(): Promise<number> {
  if (sweepBest === undefined) {
    const r = await runLoop(
      opts(new Sweep(), new SyntheticEvaluator(setting, { seed: 0, noise: 0 }), 100000, { pruneFactor: Infinity }),
    );
    assert.equal(r.outcome, 'exhausted');
    const plans = new Set([...enumerate(space)].map((c) => planKey(c, setting)));
    assert.equal(r.trials.length, plans.size, 'the sweep runs every distinct plan once');
    assert.equal(r.best!.config['quantize.bits'], 8);
    assert.equal(r.best!.config['quantize.accuracy_level'], 4);
    sweepBest = r.best!.score!;
  }
  return sweepBest;
}

test('TPE is deterministic by seed, runs a plan again only as a re-measurement, starts from the priors', async () => {
  const run = (seed: number) => runLoop(opts(new TpeSearch({ seed }), new SyntheticEvaluator(setting, { seed }), 10));
  const a = await run(3);
  const b = await run(3);
  const c = await run(4);
  assert.deepEqual(
    a.trials.map((t) => t.config),
    b.trials.map((t) => t.config),
  );
  assert.notDeepEqual(
    a.trials.map((t) => t.config),
    c.trials.map((t) => t.config),
  );
  const firsts = a.trials.filter((t) => t.repeatOf === undefined);
  assert.equal(new Set(firsts.map((t) => planKey(t.config, setting))).size, firsts.length);
  for (const t of a.trials.filter((x) => x.repeatOf !== undefined))
    assert.equal(planKey(t.config, setting), planKey(a.trials[t.repeatOf! - 1].config, setting));
  assert.equal(a.trials[0].config['quantize.accuracy_level'], 4, 'the prior prefers int8 compute on this CPU');
  assert.equal(a.outcome, 'budget');
  assert.equal(a.trials.length, 10);
});

test("the offline optimizer beats random search at equal trials, and gets near the sweep's best", async () => {
  const truth = await groundTruth();
  const ratios = { offline: [] as number[], random: [] as number[] };
  for (let seed = 0; seed < 5; seed++) {
    for (const p of [new TpeSearch({ seed }), new RandomSearch(seed)]) {
      const r = await runLoop(opts(p, new SyntheticEvaluator(setting, { seed }), 12));
      const best = r.best!;
      ratios[p.name as 'offline' | 'random'].push(best.feasible ? best.score! / truth : 100);
    }
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  assert.ok(mean(ratios.offline) < mean(ratios.random), `offline ${ratios.offline} vs random ${ratios.random}`);
  assert.ok(
    ratios.offline.filter((x) => x <= 1.05).length >= 4,
    `offline within 5% of the sweep in 4 of 5 seeds: ${ratios.offline}`,
  );
});

test('hopeless trials are pruned before the accuracy stage', async () => {
  const ev = new SyntheticEvaluator(setting, { seed: 1 });
  const r = await runLoop(opts(new RandomSearch(1), ev, 20));
  const pruned = r.trials.filter((t) => t.status === 'pruned');
  assert.ok(pruned.length > 0);
  assert.equal(ev.accuracyRuns, r.trials.length - pruned.length);
  for (const t of pruned) {
    assert.equal(t.metrics.ppl, undefined);
    assert.equal(t.feasible, false);
    const bestBefore = r.trials
      .slice(0, t.index - 1)
      .filter((x) => x.feasible)
      .map((x) => x.score!);
    assert.ok(t.score! > Math.min(...bestBefore) * 1.3);
  }
});

test('events report each trial and the best so far; the result carries the baseline', async () => {
  const events: LoopEvent[] = [];
  const r = await runLoop(
    opts(new TpeSearch({ seed: 2 }), new SyntheticEvaluator(setting, { seed: 2 }), 5, {
      onEvent: (e) => events.push(e),
    }),
  );
  assert.equal(events[0].type, 'baseline');
  assert.equal(events.filter((e) => e.type === 'trial-start').length, 5);
  const ends = events.filter((e): e is Extract<LoopEvent, { type: 'trial-end' }> => e.type === 'trial-end');
  assert.deepEqual(
    ends.map((e) => e.trialsLeft),
    [4, 3, 2, 1, 0],
  );
  assert.equal(ends[4].best, r.best);
  assert.equal(events[events.length - 1].type, 'done');
  assert.ok(r.baseline!.ppl! > 0);
});

test('cancellation mid-trial ends the loop cleanly with the trials so far', async () => {
  const ctl = new AbortController();
  const events: LoopEvent[] = [];
  const p = runLoop(
    opts(new TpeSearch({ seed: 1 }), new SyntheticEvaluator(setting, { seed: 1, delayMs: 20 }), 50, {
      signal: ctl.signal,
      onEvent: (e) => {
        events.push(e);
        if (e.type === 'trial-end' && e.trial.index === 2) setTimeout(() => ctl.abort(), 5);
      },
    }),
  );
  const r = await p;
  assert.equal(r.outcome, 'cancelled');
  assert.ok(r.trials.length >= 2 && r.trials.length < 50);
  assert.equal(events[events.length - 1].type, 'done');
});

test('a wall-time budget stops the loop', async () => {
  const r = await runLoop(
    opts(new RandomSearch(0), new SyntheticEvaluator(setting, { seed: 0, delayMs: 15 }), 1000, {
      budget: { trials: 1000, minutes: 0.002 },
    }),
  );
  assert.equal(r.outcome, 'budget');
  assert.match(r.reason, /wall-time/);
  assert.ok(r.trials.length < 1000);
});

test('bad proposals: refused with reasons and never evaluated; a proposer that keeps failing is stopped', async () => {
  const seen: string[][] = [];
  const bad: Proposer = {
    name: 'bad',
    async propose() {
      return { kind: 'trial', config: { 'quantize.bits': 3 } };
    },
    observe(o) {
      if (o.kind === 'refused') seen.push(o.reasons);
    },
  };
  const ev = new SyntheticEvaluator(setting, { seed: 0 });
  const r = await runLoop(opts(bad, ev, 5));
  assert.equal(r.outcome, 'error');
  assert.equal(ev.evaluations.length, 0);
  assert.equal(r.refusals, 8);
  assert.match(seen[0][0], /outside the search space/);
  // duplicates are refused too
  let n = 0;
  const dup: Proposer = {
    name: 'dup',
    async propose() {
      return n++ < 3
        ? { kind: 'trial', config: { 'quantize.bits': 8, 'quantize.accuracy_level': 4 } }
        : { kind: 'done', outcome: 'completed', reason: 'ok' };
    },
  };
  const r2 = await runLoop(opts(dup, new SyntheticEvaluator(setting, { seed: 0 }), 5));
  assert.equal(r2.trials.length, 1);
  assert.equal(r2.refusals, 2);
  assert.equal(r2.outcome, 'completed');
});

test('evaluator failures become failed trials; three in a row end the loop', async () => {
  const ev = new SyntheticEvaluator(setting, { seed: 0 });
  ev.evaluate = async () => {
    throw new Error('onnxruntime: bad model');
  };
  const r = await runLoop(opts(new RandomSearch(0), ev, 10));
  assert.equal(r.outcome, 'error');
  assert.equal(r.trials.length, 3);
  assert.ok(r.trials.every((t) => t.status === 'failed' && t.error === 'onnxruntime: bad model' && !t.feasible));
});

test('pruning reads paired ratios as ranking does: load-slowed windows keep a plan its race found faster', async () => {
  // Scripted trials: the unpaired decode figure of trial 2 is 3× the incumbent's (a loaded window), but its
  // paired race says 0.8 of fp32 against the incumbent's 0.9; trial 3 looks as fast unpaired but races 1.5.
  const script = [
    { decode: 1.0, ratio: 0.9 },
    { decode: 3.0, ratio: 0.8 },
    { decode: 1.0, ratio: 1.5 },
  ];
  let i = 0;
  const race = (ratio: number) => ({
    paired: true,
    verdict: 'better' as const,
    series: 'decode' as const,
    threshold: 0,
    tolerance: 0.03,
    pairs: 6,
    wall_ms: 1,
    decode: { ratio, lo: ratio * 0.99, hi: ratio * 1.01, n: 6 },
  });
  const evaluator = {
    baseline: async () => ({ decode_ms_per_token: 1.1, ppl: 10, model_bytes: 100 }),
    evaluate: async (_c: unknown, o: { afterSpeed?: (m: Record<string, unknown>) => string }) => {
      const s = script[i++];
      const speed = { decode_ms_per_token: s.decode, race: race(s.ratio), model_bytes: 50 };
      if (o.afterSpeed?.(speed) === 'prune') return { metrics: speed, status: 'pruned' as const };
      return { metrics: { ...speed, ppl: 10 }, status: 'ok' as const };
    },
  };
  const r = await runLoop(opts(new Sweep(), evaluator as unknown as SyntheticEvaluator, 3));
  assert.deepEqual(
    r.trials.map((t) => t.status),
    ['ok', 'ok', 'pruned'],
    JSON.stringify(r.trials.map((t) => [t.feasible, t.violations, t.score])),
  );
  assert.equal(r.best!.index, 2, 'the plan the race found fastest is the answer');
});
