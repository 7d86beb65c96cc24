// The per-layer plan: the knapsack DP finds the optimum a brute force finds on small instances, never
// exceeds the budget, and a plan made from measurements becomes knobs that put each setting on its layer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  bestUniform,
  chooseUnderBudget,
  GroupChoices,
  LayerMeasurements,
  planKnobs,
  planUnderBudget,
} from '../../server/src/agent/layerPlan';
import { DEFAULT_CANDIDATES } from '../../server/src/agent/sensitivity';
import type { ModelProfile } from '../../server/src/bench/profile';
import { applyKnobs, planLayers } from '../../server/src/config/plan';
import { syntheticSetting } from '../../server/src/agent/synthetic';
import { fp32Recipe } from '../../server/src/bench/record';

function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

function brute(groups: GroupChoices[], budget: number): number {
  let best = Infinity;
  const rec = (g: number, time: number, cost: number) => {
    if (cost > budget) return;
    if (g === groups.length) {
      best = Math.min(best, time);
      return;
    }
    for (const c of groups[g].choices) rec(g + 1, time + c.time, cost + Math.max(0, c.cost));
  };
  rec(0, 0, 0);
  return best;
}

test('DP equals brute force on 200 random small instances with integer costs', () => {
  const r = rng(7);
  for (let n = 0; n < 200; n++) {
    const G = 1 + Math.floor(r() * 5);
    const groups: GroupChoices[] = Array.from({ length: G }, (_, g) => ({
      group: `g${g}`,
      choices: [
        { id: 'fp32', time: 10 + Math.floor(r() * 10), cost: 0 },
        ...Array.from({ length: 1 + Math.floor(r() * 3) }, (_, i) => ({
          id: `c${i}`,
          time: Math.floor(r() * 12),
          cost: Math.floor(r() * 9) - 1,
        })),
      ],
    }));
    const budget = 1 + Math.floor(r() * 12);
    const got = chooseUnderBudget(groups, budget, budget);
    assert.equal(got.time, brute(groups, budget), `instance ${n}`);
    assert.ok(got.cost <= budget, `instance ${n}: cost ${got.cost} over ${budget}`);
    // The picks are what the totals say.
    assert.equal(
      got.time,
      got.picks.reduce((s, i, g) => s + groups[g].choices[i].time, 0),
    );
  }
});

test('DP with fractional costs never exceeds the budget (costs round up)', () => {
  const groups: GroupChoices[] = [
    {
      group: 'a',
      choices: [
        { id: 'fp32', time: 10, cost: 0 },
        { id: 'q', time: 1, cost: 0.0333 },
      ],
    },
    {
      group: 'b',
      choices: [
        { id: 'fp32', time: 10, cost: 0 },
        { id: 'q', time: 1, cost: 0.0334 },
      ],
    },
  ];
  const got = chooseUnderBudget(groups, 0.0667, 3);
  assert.ok(got.cost <= 0.0667);
  assert.equal(got.time, 11);
});

const profile = (label: string, times: Record<string, number>, other = 100): ModelProfile => {
  const groups = Object.entries(times).map(([name, us]) => ({
    name,
    layer: true,
    us,
    median_us: us,
    share: 0,
    ops: {},
  }));
  const node = Object.values(times).reduce((a, b) => a + b, 0) + other;
  return { label, model: label, steps: 4, node_us: node, run_us: node, run_median_us: node, groups };
};

test('a plan from measurements: the sensitive layer stays in float, the rest compress; knobs set exactly that', () => {
  const setting = syntheticSetting({});
  const layers = setting.layers;
  const [a, b] = [layers[0].name, layers[1].name];
  const cands = DEFAULT_CANDIDATES.filter((c) => c.id === 'q4' || c.id === 'q8');
  const m: LayerMeasurements = {
    fp32: profile('fp32', { [a]: 100, [b]: 100 }),
    uniform: { q4: profile('q4', { [a]: 30, [b]: 30 }), q8: profile('q8', { [a]: 60, [b]: 60 }) },
    sensitivity: {
      model: 'm',
      ppl_fp32: 10,
      nll_fp32: 2.3,
      tokens: 100,
      windows: 1,
      candidates: cands,
      spectra: [],
      seconds: { total: 0, load: 0, fp32: 0, candidates: 0 },
      groups: [
        { name: a, layers: [a] },
        { name: b, layers: [b] },
      ],
      entries: [
        { group: a, candidate: 'q4', kl: 0, ppl: 0, ppl_change: 0, nll_delta: 0.04, weight_rel_err: 0 },
        { group: a, candidate: 'q8', kl: 0, ppl: 0, ppl_change: 0, nll_delta: 0.001, weight_rel_err: 0 },
        { group: b, candidate: 'q4', kl: 0, ppl: 0, ppl_change: 0, nll_delta: 0.01, weight_rel_err: 0 },
        { group: b, candidate: 'q8', kl: 0, ppl: 0, ppl_change: 0, nll_delta: 0.001, weight_rel_err: 0 },
      ],
    },
  };
  const plan = planUnderBudget(m, 0.02); // log(1.02) ≈ 0.0198: a cannot take q4
  assert.deepEqual(
    plan.groups.map((g) => g.choice),
    ['q8', 'q4'],
  );
  assert.equal(plan.predicted.step_us, 100 + 60 + 30);
  assert.ok(Math.abs(plan.predicted.speedup - 300 / 190) < 1e-9);
  const uni = bestUniform(m, 0.02);
  assert.equal(uni.candidate, 'q8');
  assert.ok(plan.predicted.step_us < uni.predicted.step_us);

  const knobs = planKnobs(plan.groups, cands, layers, 4);
  const planned = planLayers(applyKnobs(fp32Recipe(setting.recipe), knobs), layers);
  assert.equal(planned[0].quant?.bits, 8);
  assert.equal(planned[1].quant?.bits, 4);
  assert.equal(planned[1].quant?.accuracy_level, 4);
  assert.ok(
    planned.slice(2).every((p) => p.quant === undefined),
    'layers outside the plan stay in float',
  );
});
