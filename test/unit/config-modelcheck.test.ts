// What the benchmark needs, checked before it runs: config.json vs the graph (kv heads, head_dim, vocab)
// and the tokenizer's ids vs the model's vocabulary, as recipe diagnostics; at run time the graph wins.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { analyzeRecipe } from '../../server/src/config/check';
import { ModelCache } from '../../server/src/config/modelCache';
import { messageText, severityName } from '../../server/src/config/diagnostics';
import { architectureFromConfig } from '../../server/src/config/hfConfig';
import { synthesizeDecoder } from '../../server/src/model/synth';
import { resolveRecipe } from '../../server/src/config/recipe';
import { runRecipe } from '../../server/src/bench/run';
import { tempDir } from '../helpers/tinyModel';

const ROOT = path.resolve(__dirname, '../..');
const TOKENIZER = path.join(ROOT, 'examples/tiny-llama/tokenizer.json'); // ids 0..1023
const EVAL_SRC = path.join(ROOT, 'examples/tiny-llama/data/eval.txt');
const CONFIG = {
  model_type: 'llama',
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 1024,
  max_position_embeddings: 256,
};

async function workspace(graphCfg: Record<string, unknown>, writtenCfg: Record<string, unknown>): Promise<string> {
  const ws = tempDir('haqa-mcheck-');
  await synthesizeDecoder(architectureFromConfig(graphCfg), { out: path.join(ws, 'model.onnx'), seed: 1 });
  fs.writeFileSync(path.join(ws, 'config.json'), JSON.stringify(writtenCfg, null, 2));
  fs.copyFileSync(TOKENIZER, path.join(ws, 'tokenizer.json'));
  fs.copyFileSync(EVAL_SRC, path.join(ws, 'eval.txt'));
  return ws;
}

const RECIPE = 'version: 1\nmodel: ./model.onnx\nevaluation:\n  text: ./eval.txt\n  window: 32\n  max_windows: 1\n';

test('config.json whose kv heads disagree with the graph: error on the model line naming the config line', async () => {
  const ws = await workspace(CONFIG, { ...CONFIG, num_key_value_heads: 4 });
  const a = await analyzeRecipe(RECIPE, path.join(ws, 'haqa.yaml'), { models: new ModelCache() });
  const d = a.diagnostics.filter((x) => x.code === 'model-config-mismatch');
  assert.equal(d.length, 1, JSON.stringify(a.diagnostics.map((x) => x.code)));
  assert.equal(severityName(d[0].severity), 'error');
  assert.equal(d[0].range.start.line, 1, 'on `model:`');
  assert.match(
    messageText(d[0]),
    /config\.json:7 says num_key_value_heads 4, but model\.onnx has 2 \(past_key_values\.0\.key dim 1\)/,
  );
  assert.ok(a.dependencies.some((f) => f.endsWith('config.json')));
});

test('head_dim and vocabulary mismatches are reported too; a consistent workspace has none', async () => {
  const ws = await workspace(CONFIG, { ...CONFIG, head_dim: 16, vocab_size: 2048 });
  const a = await analyzeRecipe(RECIPE, path.join(ws, 'haqa.yaml'), { models: new ModelCache() });
  const msgs = a.diagnostics.filter((x) => x.code === 'model-config-mismatch').map(messageText);
  assert.equal(msgs.length, 2, msgs.join('\n'));
  assert.match(msgs[0], /head_dim 16, but model\.onnx has 8/);
  assert.match(msgs[1], /vocab_size 2048, but model\.onnx has 1024 \(logits last dim\)/);
  const ok = await workspace(CONFIG, CONFIG);
  const b = await analyzeRecipe(RECIPE, path.join(ok, 'haqa.yaml'), { models: new ModelCache() });
  assert.deepEqual(
    b.diagnostics.filter((x) => severityName(x.severity) === 'error').map((x) => x.code),
    [],
  );
});

test('a tokenizer with more ids than the model has embedding rows is an error before the run', async () => {
  const small = { ...CONFIG, vocab_size: 512 };
  const ws = await workspace(small, small);
  const text = RECIPE.replace('  text: ./eval.txt\n', '  text: ./eval.txt\n  tokenizer: ./tokenizer.json\n');
  const a = await analyzeRecipe(text, path.join(ws, 'haqa.yaml'), { models: new ModelCache() });
  const d = a.diagnostics.find((x) => x.code === 'tokenizer-vocab-mismatch');
  assert.ok(d, JSON.stringify(a.diagnostics.map((x) => x.code)));
  assert.equal(d.range.start.line, 4, 'on evaluation.tokenizer');
  assert.match(messageText(d), /token ids up to 1023, but model\.onnx has 512 embedding rows/);
});

test('at run time the graph wins over config.json, and the record says so', async () => {
  const ws = await workspace(CONFIG, { ...CONFIG, num_key_value_heads: 4 });
  const recipe = resolveRecipe(
    {
      model: 'model.onnx',
      target: { threads: 1 },
      objective: { workload: { prompt_length: 8, decode_tokens: 2, batch: 1 } },
    },
    path.join(ws, 'haqa.yaml'),
  );
  const rec = await runRecipe(recipe, { quick: true, measure: { accuracy: false }, noStore: true });
  assert.equal(rec.status, 'ok', rec.error?.message);
  assert.ok(rec.metrics.decode_ms_per_token);
  assert.equal(rec.notes?.length, 1);
  assert.match(rec.notes![0], /config\.json says 4 kv heads but the graph's past_key_values\.0\.key dim 1 is 2/);
});

test('a sliding window smaller than the workload gets a note on the workload', async () => {
  const mistral = { ...CONFIG, model_type: 'mistral', sliding_window: 16 };
  const ws = await workspace(mistral, mistral);
  const text =
    'version: 1\nmodel: ./model.onnx\nobjective:\n  workload:\n' +
    '    prompt_length: 16\n    decode_tokens: 8\n    batch: 1\n';
  const a = await analyzeRecipe(text, path.join(ws, 'haqa.yaml'), { models: new ModelCache() });
  const d = a.diagnostics.find((x) => x.code === 'sliding-window-workload');
  assert.ok(d, JSON.stringify(a.diagnostics.map((x) => x.code)));
  assert.equal(d.range.start.line, 3);
  assert.match(messageText(d), /sliding_window 16 is smaller than this workload's 24 tokens/);
  const short = text.replace('prompt_length: 16', 'prompt_length: 4');
  const b = await analyzeRecipe(short, path.join(ws, 'haqa.yaml'), { models: new ModelCache() });
  assert.equal(
    b.diagnostics.find((x) => x.code === 'sliding-window-workload'),
    undefined,
  );
});
