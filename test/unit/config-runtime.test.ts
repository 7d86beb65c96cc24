// Recipe checks and knobs of the runtime choice (config/runtimeCheck.ts, runtime.engine in the schema,
// the tuner's runtime.engine / quantize.gguf_type knobs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { analyzeRecipe } from '../../server/src/config/check';
import { ModelCache } from '../../server/src/config/modelCache';
import { applyKnobs } from '../../server/src/config/plan';
import { hoverRecipe } from '../../server/src/config/hover';
import { completeRecipe } from '../../server/src/config/complete';
import { knobValueError } from '../../server/src/config/schema';
import { ggufFileType } from '../../server/src/compress/gguf';
import { compressionSections, compresses } from '../../server/src/bench/record';

const file = path.resolve(__dirname, '../../examples/tiny-llama/runtime.haqa.yaml');
const check = async (text: string) =>
  (await analyzeRecipe(`version: 1\nmodel: ./model.onnx\n${text}`, file, { models: new ModelCache() })).diagnostics;
const codes = (ds: { code?: unknown }[]) => ds.map((d) => d.code).sort();

test('llama.cpp recipe: clean when it says only llama.cpp things; its knobs are schema-checked', async () => {
  assert.deepEqual(
    codes(
      await check(
        'quantize:\n  gguf_type: Q4_K_M\nruntime:\n  engine: llama.cpp\n' +
          '  llama: { threads: 1, flash_attention: true, type_k: q8_0, type_v: q8_0 }\n',
      ),
    ),
    [],
  );
  assert.deepEqual(codes(await check('runtime:\n  engine: tvm\n')), ['invalid-value']);
  assert.deepEqual(codes(await check('quantize:\n  gguf_type: Q3_K\nruntime:\n  engine: llama.cpp\n')), [
    'invalid-value',
  ]);
});

test('knobs for the other runtime, quantized V cache without flash attention, batch > 1', async () => {
  assert.deepEqual(codes(await check('quantize:\n  gguf_type: Q4_0\n')), ['runtime-knob-unused']);
  assert.deepEqual(codes(await check('runtime:\n  llama: { threads: 1 }\n')), ['runtime-knob-unused']);
  assert.deepEqual(codes(await check('quantize:\n  bits: 4\nruntime:\n  engine: llama.cpp\n')), [
    'runtime-knob-unused',
  ]);
  assert.deepEqual(codes(await check('runtime:\n  engine: llama.cpp\n  llama: { type_v: q4_0 }\n')), [
    'kv-type-needs-flash-attention',
  ]);
  assert.deepEqual(codes(await check('objective:\n  workload: { batch: 2 }\nruntime:\n  engine: llama.cpp\n')), [
    'runtime-batch-unsupported',
  ]);
});

test('the tuner can switch engine and GGUF type; onnxruntime recipes keep their artifacts and hashes', async () => {
  assert.equal(knobValueError('runtime.engine', 'llama.cpp'), undefined);
  assert.match(knobValueError('runtime.engine', 'tvm') ?? '', /allowed: 'onnxruntime', 'llama.cpp'/);
  assert.equal(knobValueError('quantize.gguf_type', 'Q8_0'), undefined);
  const a = await analyzeRecipe('version: 1\nmodel: ./model.onnx\nquantize:\n  bits: 4\n', file, {
    models: new ModelCache(),
  });
  const ort = a.recipe!;
  assert.equal(ort.runtime.engine, undefined);
  assert.equal('engine' in compressionSections(ort) && compressionSections(ort).engine !== undefined, false);
  const ll = applyKnobs(ort, { 'runtime.engine': 'llama.cpp', 'quantize.gguf_type@lm_head': 'Q8_0' });
  assert.equal(ll.runtime.engine, 'llama.cpp');
  assert.equal(ggufFileType(ll), 'Q4_K_M'); // the quantize section names no gguf_type
  assert.deepEqual(ll.quantize!.overrides.at(-1), { match: 'lm_head', gguf_type: 'Q8_0' });
  assert.notEqual(JSON.stringify(compressionSections(ll)), JSON.stringify(compressionSections(ort)));
  // llama.cpp needs its own artifact even at full precision
  assert.equal(compresses(applyKnobs({ ...ort, quantize: undefined }, { 'runtime.engine': 'llama.cpp' })), true);
});

test('hover and completion know runtime.engine, its values and runtime.llama', async () => {
  const a = await analyzeRecipe('version: 1\nmodel: ./model.onnx\nruntime:\n  engine: llama.cpp\n', file, {
    models: new ModelCache(),
  });
  assert.match(JSON.stringify(hoverRecipe(a, { line: 3, character: 4 })?.contents), /Which runtime runs the model/);
  assert.deepEqual(
    completeRecipe('version: 1\nmodel: ./model.onnx\nruntime:\n  engine: ', { line: 3, character: 10 }).map(
      (c) => c.label,
    ),
    ['onnxruntime', 'llama.cpp'],
  );
  const keys = completeRecipe('version: 1\nmodel: ./model.onnx\nruntime:\n  ', { line: 3, character: 2 }).map(
    (c) => c.label,
  );
  assert.ok(keys.includes('engine') && keys.includes('llama'), keys.join(','));
});
