// Recipe edits keep comments and formatting; knob assignments become edits that mean what
// applyKnobs means.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { parse } from 'yaml';
import { applyRecipeEdits, recipeTextEdits, knobEdits, RecipeEditError } from '../../server/src/config/edit';
import { LineIndex } from '../../server/src/config/diagnostics';
import { resolveRecipe } from '../../server/src/config/recipe';
import { applyKnobs, planLayers } from '../../server/src/config/plan';
import type { Layer } from '../../server/src/model/graph';
import type { SearchValue } from '../../server/src/config/recipe';

const RECIPE = `# tiny recipe
model: ./model.onnx   # the model
quantize:
  bits: 4 # default bits
  skip:
    - lm_head # keep the head
    - model.layers.9.mlp.up_proj
  overrides:
    # down_proj gets more bits
    - match: model.layers.*.mlp.down_proj
      bits: 8
    - {match: model.layers.0.*, block_size: 64}
search:
  space: {quantize.bits: [4, 8]}
`;

const comments = (t: string) =>
  t
    .split('\n')
    .filter((l) => l.includes('#'))
    .map((l) => l.slice(l.indexOf('#')));

test('set a value in place: only that value changes', () => {
  const out = applyRecipeEdits(RECIPE, [{ path: ['quantize', 'bits'], value: 8 }]);
  assert.equal(out, RECIPE.replace('bits: 4 # default bits', 'bits: 8 # default bits'));
  const edits = recipeTextEdits(RECIPE, [{ path: ['quantize', 'bits'], value: 8 }]);
  assert.equal(edits.length, 1);
  assert.deepEqual(edits[0], {
    range: { start: { line: 3, character: 8 }, end: { line: 3, character: 9 } },
    newText: '8',
  });
});

test('a value in a flow mapping is replaced in place', () => {
  const out = applyRecipeEdits(RECIPE, [{ path: ['quantize', 'overrides', 1, 'block_size'], value: 32 }]);
  assert.match(out, /- \{match: model\.layers\.0\.\*, block_size: 32\}/);
  assert.deepEqual(parse(out).quantize.overrides[1], { match: 'model.layers.0.*', block_size: 32 });
});

test('delete a sequence item: the whole item goes, every comment elsewhere stays', () => {
  const out = applyRecipeEdits(RECIPE, [{ path: ['quantize', 'overrides', 0], delete: true }]);
  assert.deepEqual(parse(out).quantize.overrides, [{ match: 'model.layers.0.*', block_size: 64 }]);
  assert.deepEqual(comments(out), comments(RECIPE));
  const skip = applyRecipeEdits(RECIPE, [{ path: ['quantize', 'skip', 1], delete: true }]);
  assert.deepEqual(parse(skip).quantize.skip, ['lm_head']);
  assert.equal(skip, RECIPE.replace('    - model.layers.9.mlp.up_proj\n', ''));
});

test('deleting the last item leaves an empty list, not null', () => {
  const out = applyRecipeEdits('model: m\nquantize:\n  skip:\n    - a # c\n', [
    { path: ['quantize', 'skip', 0], delete: true },
  ]);
  assert.deepEqual(parse(out), { model: 'm', quantize: { skip: [] } });
});

test('delete a key of a flow mapping and of a block mapping', () => {
  const out = applyRecipeEdits(RECIPE, [
    { path: ['quantize', 'overrides', 1, 'block_size'], delete: true },
    { path: ['quantize', 'bits'], delete: true },
  ]);
  const v = parse(out);
  assert.deepEqual(v.quantize.overrides[1], { match: 'model.layers.0.*' });
  assert.equal(v.quantize.bits, undefined);
  assert.ok(!out.includes('# default bits'), 'the deleted line goes with its own comment');
  assert.ok(out.includes('# keep the head'));
});

test('append to a block sequence and create missing parents in block style', () => {
  const out = applyRecipeEdits(RECIPE, [
    { path: ['quantize', 'overrides'], append: { match: 'model.layers.1.self_attn.*', bits: 8 } },
    { path: ['target', 'memory_limit'], value: '1GiB' },
    { path: ['low_rank', 'rules'], append: { match: '**', rank: 16 } },
  ]);
  const v = parse(out);
  assert.deepEqual(v.quantize.overrides[2], { match: 'model.layers.1.self_attn.*', bits: 8 });
  assert.deepEqual(v.target, { memory_limit: '1GiB' });
  assert.deepEqual(v.low_rank, { rules: [{ match: '**', rank: 16 }] });
  assert.match(
    out,
    new RegExp(
      /    - \{match: model\.layers\.0\.\*, block_size: 64\}\n/.source +
        /    - match: model\.layers\.1\.self_attn\.\*\n      bits: 8\n/.source,
    ),
  );
  assert.match(out, /\ntarget:\n  memory_limit: 1GiB\n/);
  assert.deepEqual(comments(out), comments(RECIPE));
});

test('add a key to a flow mapping; fill an empty key; an empty document', () => {
  const out = applyRecipeEdits(RECIPE, [{ path: ['search', 'space', 'quantize.bits@lm_head'], value: [8, 32] }]);
  assert.deepEqual(parse(out).search.space, { 'quantize.bits': [4, 8], 'quantize.bits@lm_head': [8, 32] });
  const empty = applyRecipeEdits('model: m\nquantize: # later\n', [{ path: ['quantize', 'bits'], value: 8 }]);
  assert.deepEqual(parse(empty), { model: 'm', quantize: { bits: 8 } });
  assert.ok(empty.includes('# later'));
  assert.deepEqual(parse(applyRecipeEdits('', [{ path: ['model'], value: './m.onnx' }])), { model: './m.onnx' });
});

test('TextEdits applied to the original text give the same result', () => {
  const edits = [
    { path: ['quantize', 'skip', 0], delete: true as const },
    { path: ['quantize', 'overrides', 0, 'bits'], value: 4 },
  ];
  const [e] = recipeTextEdits(RECIPE, edits);
  const li = new LineIndex(RECIPE);
  const applied = RECIPE.slice(0, li.offset(e.range.start)) + e.newText + RECIPE.slice(li.offset(e.range.end));
  assert.equal(applied, applyRecipeEdits(RECIPE, edits));
});

test('edits refuse a document with YAML errors, or a path through a scalar', () => {
  assert.throws(() => applyRecipeEdits('a: [1\n', [{ path: ['a'], value: 2 }]), RecipeEditError);
  assert.throws(() => applyRecipeEdits('model: m\n', [{ path: ['model', 'x'], value: 2 }]), RecipeEditError);
});

// ---------------------------------------------------------------- knobs

const layers: Layer[] = [
  'model.layers.0.mlp.up_proj',
  'model.layers.0.mlp.down_proj',
  'model.layers.1.mlp.up_proj',
  'model.layers.1.mlp.down_proj',
  'lm_head',
].map((name, i) => ({
  name,
  node: name,
  nodeIndex: i,
  op: 'MatMul',
  weight: name,
  K: 64,
  N: 64,
  transB: false,
  dtype: 'FLOAT',
  bits: 32,
  params: 4096,
  bytes: 16384,
}));

const KNOB_RECIPE = `model: ./model.onnx
quantize:
  bits: 4
  overrides:
    - match: model.layers.*.mlp.down_proj # existing override
      bits: 8
sparsity:
  rules:
    - match: model.layers.1.*
      ratio: 0.5
low_rank:
  rules:
    - {match: lm_head, rank: 8}
`;

test('knobEdits: the edited text means what applyKnobs means', () => {
  const assignments: Record<string, SearchValue>[] = [
    { 'quantize.bits': 8, 'quantize.bits@model.layers.*.mlp.down_proj': 4, 'runtime.intra_op_threads': 2 },
    {
      'quantize.bits@model.layers.0.*': 32,
      'quantize.block_size@lm_head': 64,
      'quantize.skip@model.layers.1.mlp.up_proj': true,
    },
    { 'sparsity.pattern@model.layers.1.*': '2:4', 'low_rank.rank@lm_head': null, 'sparsity.ratio': 0.25 },
    {
      'sparsity.ratio@model.layers.1.*': null,
      'low_rank.rank@model.layers.*.mlp.up_proj': 16,
      'low_rank.rank@lm_head': 4,
    },
  ];
  const file = path.join('/tmp', 'haqa.yaml');
  for (const a of assignments) {
    const doc = parse(KNOB_RECIPE);
    const text = applyRecipeEdits(KNOB_RECIPE, knobEdits(a, doc));
    assert.ok(text.includes('# existing override'), 'comments stay');
    const viaText = planLayers(resolveRecipe(parse(text), file), layers);
    const viaKnobs = planLayers(applyKnobs(resolveRecipe(doc, file), a), layers);
    assert.deepEqual(viaText, viaKnobs, JSON.stringify(a));
    if ('runtime.intra_op_threads' in a) assert.equal(parse(text).runtime.intra_op_threads, 2);
  }
});

test('knobEdits edits an existing override in place instead of appending', () => {
  const edits = knobEdits({ 'quantize.bits@model.layers.*.mlp.down_proj': 4 }, parse(KNOB_RECIPE));
  assert.deepEqual(edits, [{ path: ['quantize', 'overrides', 0, 'bits'], value: 4 }]);
  const add = knobEdits({ 'quantize.bits@lm_head': 8 }, parse(KNOB_RECIPE));
  assert.deepEqual(add, [{ path: ['quantize', 'overrides'], append: { match: 'lm_head', bits: 8 } }]);
  assert.throws(() => knobEdits({ 'quantize.skip': true }, {}), RecipeEditError);
  assert.throws(() => knobEdits({ 'bogus.knob': 1 }, {}), RecipeEditError);
});
