// config.json checks: syntax, architecture, quantization_config, and agreement with the graph beside it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { analyzeHfConfig, graphArchitecture } from '../../server/src/config/hfCheck';
import { ModelCache } from '../../server/src/config/modelCache';
import { LineIndex, Diagnostic, messageText } from '../../server/src/config/diagnostics';
import { recipeCodeActions } from '../../server/src/config/actions';
import { tempDir } from '../helpers/tinyModel';
import { writeLlamaShapes, SMALL } from '../lsp/llamaShapes';

const models = new ModelCache();
const covered = (text: string, d: Diagnostic) => {
  const li = new LineIndex(text);
  return text.slice(li.offset(d.range.start), li.offset(d.range.end));
};
const cfg = (o: Record<string, unknown>) =>
  JSON.stringify(
    {
      model_type: 'llama',
      hidden_size: 64,
      intermediate_size: 96,
      num_hidden_layers: 2,
      num_attention_heads: 8,
      num_key_value_heads: 2,
      vocab_size: 128,
      ...o,
    },
    null,
    2,
  );
const bare = tempDir('haqa-hf-');
const check = (text: string, dir = bare) => analyzeHfConfig(text, path.join(dir, 'config.json'), { models });

test('a consistent config has no diagnostics; the example configs in the repo are clean', async () => {
  assert.deepEqual((await check(cfg({}))).diagnostics, []);
  const dir = path.join(__dirname, '..', '..', 'examples', 'configs');
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.json'))) {
    const a = await analyzeHfConfig(fs.readFileSync(path.join(dir, f), 'utf8'), path.join(dir, f), { models });
    assert.deepEqual(a.diagnostics, [], f);
    assert.ok(a.arch, f);
  }
});

test('kv heads must divide heads; the diagnostic is on the value', async () => {
  const text = cfg({ num_key_value_heads: 3 });
  const [d] = (await check(text)).diagnostics;
  assert.equal(d.code, 'kv-heads-not-divisor');
  assert.equal(covered(text, d), '3');
});

test('hidden not divisible by heads, missing keys, wrong types name the key', async () => {
  const t1 = cfg({ num_attention_heads: 6 });
  const [d1] = (await check(t1)).diagnostics;
  assert.equal(d1.code, 'hidden-not-divisible');
  assert.equal(covered(t1, d1), '64');
  assert.match(messageText(d1), /not a multiple of num_attention_heads 6/);
  const t2 = cfg({ vocab_size: 'big' });
  const [d2] = (await check(t2)).diagnostics;
  assert.equal(d2.code, 'hf-config-invalid');
  assert.equal(covered(t2, d2), '"big"');
  const [d3] = (await check(JSON.stringify({ model_type: 'llama', hidden_size: 64 }))).diagnostics;
  assert.match(messageText(d3), /missing 'num_attention_heads'/);
});

test('quantization_config: bits, group size dividing hidden and intermediate sizes, booleans', async () => {
  const text = cfg({
    quantization_config: { quant_method: 'gptq', bits: 5, group_size: 64, sym: 'yes', desc_act: false },
  });
  const a = await check(text);
  const by = Object.fromEntries(a.diagnostics.map((d) => [d.code, d]));
  assert.equal(covered(text, by['quant-bits-unsupported']), '5');
  assert.equal(covered(text, by['wrong-type']), '"yes"');
  assert.equal(covered(text, by['group-size-not-divisor']), '64');
  assert.match(
    messageText(by['group-size-not-divisor']),
    /does not divide intermediate_size 96; nearest that divides both: 32/,
  );
  const [fix] = recipeCodeActions(text, 'u', [by['group-size-not-divisor']]);
  assert.equal(fix.title, 'Change to 32');
  const ok = cfg({ quantization_config: { bits: 4, group_size: 32, sym: true, desc_act: false } });
  assert.deepEqual((await check(ok)).diagnostics, []);
  assert.deepEqual((await check(cfg({ quantization_config: { bits: 4, group_size: -1 } }))).diagnostics, []);
});

test('JSON syntax errors are located; junk and non-HF JSON are handled', async () => {
  const text = '{\n  "hidden_size": 64,\n  "num_attention_heads": 8,\n}\n';
  const a = await check(text);
  assert.equal(a.diagnostics[0].code, 'json-syntax');
  assert.equal(a.diagnostics[0].range.start.line, 3);
  assert.deepEqual((await check('{"name": "my-package", "version": "1.0.0"}')).diagnostics, []);
  assert.equal((await check('\u0000\u0001binary')).diagnostics[0].code, 'binary-file');
  assert.equal((await check('[1, 2]')).diagnostics[0].code, 'hf-config-invalid');
  assert.equal((await check('')).diagnostics.length > 0, true);
});

test('a config that disagrees with the ONNX graph beside it is flagged on the key', async () => {
  const dir = tempDir('haqa-hf-graph-');
  await writeLlamaShapes(dir, SMALL);
  assert.deepEqual((await check(cfg({}), dir)).diagnostics, []);
  const text = cfg({ hidden_size: 128, num_attention_heads: 8, num_hidden_layers: 3, vocab_size: 100 });
  const a = await check(text, dir);
  const mism = a.diagnostics.filter((d) => d.code === 'config-graph-mismatch');
  assert.deepEqual(mism.map((d) => covered(text, d)).sort(), ['100', '128', '2', '3']);
  assert.match(messageText(mism.find((d) => covered(text, d) === '128')!), /hidden_size is 128 but model\.onnx has 64/);
  // SMALL's k_proj is 64×16: 2 kv heads of 8 (head_dim 64/8); 4 kv heads disagree.
  const kv = cfg({ num_key_value_heads: 4 });
  const [dk] = (await check(kv, dir)).diagnostics;
  assert.equal(dk.code, 'config-graph-mismatch');
  assert.equal(covered(kv, dk), '4');
  assert.match(messageText(dk), /= 32, but model\.onnx has 16 \(model\.layers\.0\.self_attn\.k_proj N\)/);
  const g = graphArchitecture(a.graph!);
  assert.deepEqual([g.hidden, g.intermediate, g.layers, g.vocab], [64, 96, 2, 128]);
});
