// The method table (config/methods.ts) is the one declaration of the method sections: the schema users
// validate against is built from it (and schemas/haqa.schema.json is that build), a recipe's sections are
// resolved by it, every knob's value schema resolves, and the knob language follows each
// section's kind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import schemaJson from '../../schemas/haqa.schema.json';
import {
  KNOB_NAMES,
  SECTIONS,
  defaultKnobValues,
  knobDecl,
  knobNamePattern,
  scopeError,
} from '../../server/src/config/methods';
import { knobSchema, knobValueError, schemaAt } from '../../server/src/config/schema';
import { applyKnobs } from '../../server/src/config/plan';
import { knobEdits, RecipeEditError } from '../../server/src/config/edit';
import { resolveRecipe } from '../../server/src/config/recipe';
import { buildRecipeSchema } from '../../server/src/config/recipeSchema';

test("schemas/haqa.schema.json is the schema the method table builds, and its knob pattern is the table's", () => {
  const built = buildRecipeSchema();
  assert.deepStrictEqual(schemaJson, built, 'run `npm run schema` to write schemas/haqa.schema.json from the table');
  for (const s of SECTIONS) assert.deepStrictEqual(built.properties[s.name], s.schema, `${s.name} is the table's`);
  const pattern = built.properties.search.properties.space.propertyNames.pattern;
  assert.equal(pattern, knobNamePattern());
  const re = new RegExp(pattern);
  for (const k of KNOB_NAMES) assert.ok(re.test(k) && re.test(`${k}@lm_head`), k);
  assert.ok(!re.test('quantize.weight_type') && !re.test('target.threads'));
});

test('a resolved recipe has one member per table entry, each as its resolve says', () => {
  const bare = resolveRecipe({ model: './m.onnx', target: { threads: 3 } }, '/tmp/haqa.yaml');
  for (const s of SECTIONS) {
    const value = (bare as unknown as Record<string, unknown>)[s.name];
    if (s.always) assert.deepStrictEqual(value, s.resolve({}, { doc: {}, threads: 3 }), `${s.name} is always there`);
    else assert.equal(value, undefined, `${s.name} is absent when the document has none`);
  }
  assert.equal(bare.runtime.intra_op_threads, 3, 'runtime threads default to target.threads');
  const full = resolveRecipe(
    { model: './m.onnx', quantize: { bits: 8 }, sparsity: { rules: [{ match: '**', pattern: '2:4' }] } },
    '/tmp/haqa.yaml',
  );
  assert.equal(full.quantize?.bits, 8);
  assert.equal(full.quantize?.block_size, 32, 'the table default');
  assert.deepStrictEqual(full.sparsity, { method: 'magnitude', rules: [{ match: '**', pattern: '2:4' }] });
  const llama = resolveRecipe({ model: './m.onnx', quantize: {}, runtime: { engine: 'llama.cpp' } }, '/tmp/h.yaml');
  assert.equal(llama.quantize?.gguf_type, 'Q4_K_M', 'a quantize default may read another section');
});

test('every knob has a value schema with editor text, in the section the table names', () => {
  for (const s of SECTIONS) {
    assert.ok(schemaAt([s.name]), `schema has a ${s.name} section`);
    for (const k of s.knobs) {
      const name = `${s.name}.${k.field}`;
      const schema = knobSchema(name);
      assert.ok(schema, `${name} has a schema`);
      assert.equal(
        typeof schema.description === 'string' || Array.isArray(schema.enum),
        true,
        `${name} has text or values for the editor`,
      );
      assert.equal(knobDecl(name)?.knob, k);
    }
  }
  assert.equal(knobSchema('quantize.weight_type'), undefined, 'not a knob');
  assert.match(knobValueError('quantize.bits@lm_head', 9) ?? '', /not a value of quantize.bits/);
  assert.equal(knobValueError('low_rank.rank@lm_head', 0), undefined, '0 removes a rule');
  assert.match(knobValueError('quantize.bits', 0) ?? '', /not a value/, '0 removes rules only');
});

test('the section kind decides where a knob lands', () => {
  const r = resolveRecipe({ model: './m.onnx', quantize: { bits: 4 } }, '/tmp/haqa.yaml');
  const out = applyKnobs(r, {
    'quantize.bits': 8,
    'quantize.bits@lm_head': 32,
    'runtime.execution_mode': 'parallel',
    'sparsity.pattern@**.mlp.*': '2:4',
    'sparsity.ratio@**.mlp.*': 0.5,
    'low_rank.rank': 16,
  });
  assert.equal(out.quantize!.bits, 8);
  assert.deepEqual(out.quantize!.overrides, [{ match: 'lm_head', bits: 32 }]);
  assert.equal(out.runtime.execution_mode, 'parallel');
  assert.deepEqual(
    out.sparsity,
    { method: 'magnitude', rules: [{ match: '**.mlp.*', ratio: 0.5 }] },
    'the same match replaces the rule',
  );
  assert.deepEqual(out.low_rank, { method: 'randomized_svd', rules: [{ match: '**', rank: 16 }] });
  assert.throws(() => applyKnobs(r, { 'quantize.skip': true }), /needs a layer scope/);
  assert.throws(() => applyKnobs(r, { 'quantize.weight_type': 'int8' }), /unknown knob/);
  assert.throws(() => knobEdits({ 'sparsity.method': 'wanda' }, {}), RecipeEditError);
  assert.equal(
    scopeError(knobDecl('runtime.inter_op_threads')!, 'lm_head'),
    'runtime knobs apply to the whole session and take no @scope',
  );
});

test('the default search values come from the table, shaped by the model and the machine', () => {
  const layer = {
    name: 'a',
    node: 'a',
    nodeIndex: 0,
    op: 'MatMul' as const,
    weight: 'w',
    K: 48,
    N: 8,
    transB: false,
    dtype: 'FLOAT',
    bits: 32,
    params: 1,
    bytes: 4,
  };
  const one = defaultKnobValues({ quantizable: [layer], cores: 1 });
  assert.deepEqual(
    one.map((k) => k.knob),
    ['quantize.bits', 'quantize.block_size', 'quantize.accuracy_level', 'quantize.symmetric'],
  );
  assert.deepEqual(one[1].values, [16]);
  const many = defaultKnobValues({ quantizable: [{ ...layer, K: 7 }], cores: 12 });
  assert.deepEqual(
    many.map((k) => k.knob),
    ['quantize.bits', 'quantize.accuracy_level', 'quantize.symmetric', 'runtime.intra_op_threads'],
  );
  assert.deepEqual(many[3].values, [1, 2, 4, 8, 12]);
});
