// Batches for a fleet: the constant liar makes any proposer give N distinct new plans at once, where
// asking it N times without the lies gives the same plan N times.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runLoop } from '../../server/src/agent/loop';
import { TpeSearch } from '../../server/src/agent/offline';
import { RandomSearch } from '../../server/src/agent/random';
import { Sweep } from '../../server/src/agent/sweep';
import { defaultSpace, planKey, validateConfig } from '../../server/src/agent/space';
import { objectiveOf } from '../../server/src/agent/objective';
import { SyntheticEvaluator, syntheticSetting } from '../../server/src/agent/synthetic';
import { liarLoss, proposeBatch } from '../../server/src/agent/batch';
import type { ProposerContext } from '../../server/src/agent/proposer';
import type { Trial } from '../../server/src/agent/types';

const setting = syntheticSetting();
const space = defaultSpace(setting);
const objective = objectiveOf(setting.recipe);

async function contextAfter(trials: number): Promise<ProposerContext> {
  const r = await runLoop({
    setting,
    space,
    objective,
    evaluator: new SyntheticEvaluator(setting, { seed: 1 }),
    proposer: new TpeSearch({ seed: 1 }),
    budget: { trials },
    pruneFactor: Infinity,
  });
  const byPlan = new Map(r.trials.map((t) => [planKey(t.config, setting), t] as [string, Trial]));
  return {
    space,
    setting,
    objective,
    trials: r.trials,
    baseline: r.baseline,
    budget: { trialsLeft: 20 },
    validate: (c) => validateConfig(c, space, setting),
    duplicateOf: (c) => byPlan.get(planKey(c, setting)),
    signal: new AbortController().signal,
  };
}

test('a batch of 4 from TPE: distinct plans, none run before; the lies make the sweep name four, not one', async () => {
  const ctx = await contextAfter(8);
  const tpe = new TpeSearch({ seed: 5, rematch: 'never' });
  const batch = await proposeBatch(tpe, ctx, 4);
  assert.equal(batch.proposals.length, 4);
  const plans = batch.proposals.map((p) => planKey(p.config as Record<string, never>, setting));
  assert.equal(new Set(plans).size, 4, 'four different plans');
  for (const p of batch.proposals)
    assert.equal(ctx.duplicateOf(p.config as Record<string, never>), undefined, 'none ran before');

  // The lies are what makes a batch: the sweep, deterministic, names the same next plan each time it is
  // asked in the same state; through proposeBatch it names the next four.
  const again = [];
  for (let i = 0; i < 4; i++) {
    const p = await new Sweep().propose(ctx);
    assert.equal(p.kind, 'trial');
    if (p.kind === 'trial') again.push(planKey(p.config as Record<string, never>, setting));
  }
  assert.equal(new Set(again).size, 1);
  const swept = await proposeBatch(new Sweep(), ctx, 4);
  assert.equal(new Set(swept.proposals.map((p) => planKey(p.config as Record<string, never>, setting))).size, 4);
});

test('pending trials are lied about too', async () => {
  const ctx = await contextAfter(4);
  const first = await proposeBatch(new RandomSearch(3), ctx, 2);
  const second = await proposeBatch(
    new RandomSearch(3),
    ctx,
    2,
    first.proposals.map((p) => p.config as Record<string, never>),
  );
  const a = new Set(first.proposals.map((p) => planKey(p.config as Record<string, never>, setting)));
  for (const p of second.proposals)
    assert.ok(!a.has(planKey(p.config as Record<string, never>, setting)), 'no plan still running is proposed');
  assert.equal(liarLoss(ctx.trials), Math.max(...ctx.trials.map((t) => t.loss).filter(Number.isFinite)));
});
