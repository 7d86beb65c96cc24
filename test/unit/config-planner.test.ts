// The one per-layer planner (config/planner.ts): its rules, the skip reasons and sources it records,
// the projections that read it (planLayers, planWithSources, compression's skip test) and its memo.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Layer } from '../../server/src/model/graph';
import { resolveRecipe } from '../../server/src/config/recipe';
import { isSkipped, planRecipe, plansComputed } from '../../server/src/config/planner';
import { planLayers } from '../../server/src/config/plan';
import { planWithSources } from '../../server/src/config/layers';
import { analyzeRecipe } from '../../server/src/config/check';
import { ModelCache } from '../../server/src/config/modelCache';
import { tempDir } from '../helpers/tinyModel';
import { writeLlamaShapes, SMALL } from '../lsp/llamaShapes';

function layer(name: string, op: Layer['op'] = 'MatMul'): Layer {
  return {
    name,
    node: name,
    nodeIndex: 0,
    op,
    weight: `${name}.weight`,
    K: 64,
    N: 64,
    transB: false,
    dtype: 'FLOAT',
    bits: 32,
    params: 4096,
    bytes: 16384,
  };
}
const LAYERS: Layer[] = [
  layer('model.layers.0.self_attn.q_proj'),
  layer('model.layers.0.mlp.down_proj'),
  layer('model.layers.1.self_attn.q_proj'),
  layer('model.layers.1.mlp.down_proj'),
  layer('lm_head'),
  layer('model.layers.2.mlp.packed', 'MatMulNBits'),
];
const recipe = (doc: object) => resolveRecipe({ model: './m.onnx', ...doc }, '/tmp/haqa.yaml');
const byName = <T extends { layer: Layer }>(ps: readonly T[], name: string): T =>
  ps.find((p) => p.layer.name === name)!;

test('the planner applies section, skip, overrides (last wins per field), rules; a reason per float layer', () => {
  const doc = {
    quantize: {
      bits: 4,
      block_size: 32,
      skip: ['lm_head', 'model.layers.1.**'],
      overrides: [
        { match: 'model.layers.*.mlp.down_proj', bits: 8 },
        { match: 'model.layers.1.mlp.down_proj', symmetric: false }, // re-enables a skipped layer
        { match: 'model.layers.0.mlp.down_proj', block_size: 64 },
        { match: 'model.layers.0.self_attn.q_proj', bits: 32 },
        { match: 'model.layers.1.mlp.down_proj', skip: true },
        { match: 'model.layers.1.mlp.down_proj', method: 'gptq' }, // and again
      ],
    },
    sparsity: {
      rules: [
        { match: '**', pattern: '2:4' },
        { match: 'model.layers.0.**', ratio: 0.25 },
        { match: 'lm_head', pattern: '9:4' },
      ],
    },
    low_rank: {
      rules: [
        { match: '**.mlp.*', rank: 8 },
        { match: 'model.layers.1.**', rank: 4 },
      ],
    },
  };
  const plan = planRecipe(recipe(doc), LAYERS);
  const q0 = byName(plan, 'model.layers.0.self_attn.q_proj');
  assert.equal(q0.quant, undefined);
  assert.deepEqual(q0.float, { kind: 'bits-32' });
  assert.equal(isSkipped(q0), false, 'kept at 32 bits is not skipped: 8-bit activations still apply');
  assert.deepEqual(q0.sparsity, { ratio: 0.25 });
  assert.equal(q0.sparsityRule, 1);

  const d0 = byName(plan, 'model.layers.0.mlp.down_proj');
  assert.deepEqual(d0.quant, { method: 'rtn', bits: 8, block_size: 64, symmetric: true, accuracy_level: 0 });
  assert.deepEqual(d0.origin, {
    method: {},
    bits: { override: 0 },
    block_size: { override: 2 },
    symmetric: {},
    accuracy_level: {},
  });
  assert.deepEqual([d0.lowRank, d0.lowRankRule], [{ rank: 8 }, 0]);

  const q1 = byName(plan, 'model.layers.1.self_attn.q_proj');
  assert.deepEqual(q1.float, { kind: 'skip', index: 1 });
  assert.equal(isSkipped(q1), true);
  assert.deepEqual([q1.lowRank, q1.lowRankRule], [{ rank: 4 }, 1]);

  // Skipped by glob, re-enabled (from the section's bits 4, not the earlier override's 8), skipped by
  // override 4, re-enabled by override 5: the fields override 5 does not set trace to override 4's match.
  const d1 = byName(plan, 'model.layers.1.mlp.down_proj');
  assert.deepEqual(d1.quant, { method: 'gptq', bits: 4, block_size: 32, symmetric: true, accuracy_level: 0 });
  assert.deepEqual(d1.origin!.method, { override: 5 });
  assert.deepEqual(d1.origin!.bits, { override: 4, viaSkip: true });
  assert.equal(d1.float, undefined);

  const head = byName(plan, 'lm_head');
  assert.deepEqual(head.float, { kind: 'skip', index: 0 });
  assert.deepEqual(head.sparsity, { n: 2, m: 4 }, 'an N:M pattern that does not parse keeps the earlier rule');
  assert.equal(head.sparsityRule, 2);
  assert.deepEqual(byName(plan, 'model.layers.2.mlp.packed').float, { kind: 'already-quantized' });

  const none = planRecipe(recipe({}), LAYERS);
  assert.ok(none.every((p) => p.float?.kind === 'no-quantize' && !p.quant && !p.sparsity && !p.lowRank));
});

test('a skipping override is a skip reason; a later skip glob does not outrank an override', () => {
  const overrides = [
    { match: 'lm_head', bits: 8 },
    { match: '**.q_proj', skip: true },
  ];
  const plan = planRecipe(recipe({ quantize: { skip: ['lm_head'], overrides } }), LAYERS);
  assert.deepEqual(byName(plan, 'model.layers.0.self_attn.q_proj').float, { kind: 'override-skip', index: 1 });
  assert.equal(byName(plan, 'lm_head').quant?.bits, 8);
});

test('planLayers and planWithSources are projections of the one plan', () => {
  const overrides = [
    { match: '**.down_proj', bits: 8 },
    { match: 'lm_head', skip: true },
    { match: 'lm_head', accuracy_level: 4 },
  ];
  const doc = { quantize: { bits: 4, overrides } };
  const r = recipe(doc);
  const one = planRecipe(r, LAYERS);
  const layers = planLayers(r, LAYERS);
  assert.equal(layers.length, one.length);
  layers.forEach((p, i) => {
    assert.equal(p.quant, one[i].quant, 'read from the one plan, not recomputed');
    assert.deepEqual(
      Object.keys(p).filter((k) => !['layer', 'quant', 'sparsity', 'lowRank'].includes(k)),
      [],
      'no sources or reasons',
    );
  });
  assert.deepEqual(planLayers(r, LAYERS), layers);
  const src = planWithSources(r, doc, LAYERS);
  const down = byName(src, 'model.layers.0.mlp.down_proj');
  assert.deepEqual(down.source.bits, ['quantize', 'overrides', 0, 'bits']);
  assert.deepEqual(down.source.block_size, ['quantize'], 'a built-in default points at the section');
  assert.deepEqual(
    byName(src, 'model.layers.0.self_attn.q_proj').source.bits,
    ['quantize', 'bits'],
    'a document value points at itself',
  );
  const head = byName(src, 'lm_head');
  assert.deepEqual(head.source.accuracy_level, ['quantize', 'overrides', 2, 'accuracy_level']);
  assert.deepEqual(
    head.source.bits,
    ['quantize', 'overrides', 1, 'match'],
    're-enabled after a skip: the skip decided the rest',
  );
  assert.deepEqual(byName(src, 'model.layers.2.mlp.packed').source, {}, 'no sources for a layer that is not quantized');
});

test('the plan is computed once per layer list and recipe content, and is frozen', () => {
  const doc = { quantize: { bits: 8, overrides: [{ match: 'lm_head', bits: 4 }] } };
  const before = plansComputed();
  const a = planRecipe(recipe(doc), LAYERS);
  const b = planRecipe(recipe(structuredClone(doc)), LAYERS);
  assert.equal(a, b);
  assert.equal(plansComputed() - before, 1);
  const c = planRecipe(recipe({ quantize: { bits: 8, overrides: [{ match: 'lm_head', bits: 2 }] } }), LAYERS);
  assert.notEqual(c, a);
  assert.equal(byName(c, 'lm_head').quant?.bits, 2);
  const d = planRecipe(recipe(doc), [...LAYERS]);
  assert.notEqual(d, a, 'another layer list is another model');
  assert.equal(plansComputed() - before, 3);
  assert.ok(Object.isFrozen(a) && Object.isFrozen(a[0]) && Object.isFrozen(byName(a, 'lm_head').quant));
  assert.throws(() => ((a[0] as { quant?: unknown }).quant = undefined));
});

test('the language server analyses of equal recipes share one plan', async () => {
  const dir = tempDir('haqa-planner-');
  await writeLlamaShapes(dir, SMALL);
  const models = new ModelCache();
  const file = path.join(dir, 'haqa.yaml');
  const text = 'model: ./model.onnx\nquantize:\n  bits: 4\n  overrides:\n    - match: lm_head\n      bits: 8\n';
  fs.writeFileSync(file, text);
  const first = await analyzeRecipe(text, file, { models });
  const before = plansComputed();
  const edited = await analyzeRecipe(`# a comment\n${text}\n`, file, { models });
  assert.equal(plansComputed(), before, 'a comment does not change the plan');
  assert.equal(first.plan?.length, edited.plan?.length);
  const changed = await analyzeRecipe(text.replace('bits: 8', 'bits: 2'), file, { models });
  assert.equal(plansComputed(), before + 1);
  assert.equal(changed.plan?.find((p) => p.layer.name === 'lm_head')?.quant?.bits, 2);
});
