// `haqa bench` and `haqa runs` from the command line, on a small synthesized decoder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { main } from '../../server/src/cli';
import { synthesizeDecoder } from '../../server/src/model/synth';
import { architectureFromConfig } from '../../server/src/config/hfConfig';
import type { RunRecord } from '../../server/src/bench/record';
import { tempDir } from '../helpers/tinyModel';

const ROOT = path.resolve(__dirname, '../..');
const TOKENIZER = path.join(ROOT, 'examples/tiny-llama/tokenizer.json');
const EVAL = path.join(ROOT, 'examples/tiny-llama/data/eval.txt');

async function run(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, {
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    signal: new AbortController().signal,
  });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const ws = tempDir('haqa-bench-cli-');
const CONFIG = {
  model_type: 'llama',
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 1024,
  tie_word_embeddings: false,
  max_position_embeddings: 256,
};

test('haqa bench prints the record with the fp32 speedup; haqa runs lists and prunes', async () => {
  fs.writeFileSync(path.join(ws, 'config.json'), JSON.stringify(CONFIG));
  fs.copyFileSync(TOKENIZER, path.join(ws, 'tokenizer.json'));
  fs.copyFileSync(EVAL, path.join(ws, 'eval.txt'));
  await synthesizeDecoder(architectureFromConfig(CONFIG), { out: path.join(ws, 'model.onnx'), seed: 5 });
  const recipe = path.join(ws, 'haqa.yaml');
  fs.writeFileSync(
    recipe,
    [
      'model: ./model.onnx',
      'target: { threads: 1 }',
      'objective:',
      '  workload: { prompt_length: 16, decode_tokens: 4, batch: 1 }',
      'quantize: { bits: 4, block_size: 32, accuracy_level: 4 }',
      'evaluation: { text: ./eval.txt, window: 32, max_windows: 2 }',
      '',
    ].join('\n'),
  );

  const human = await run(['bench', recipe, '--quick']);
  assert.equal(human.code, 0, human.err + human.out);
  assert.match(human.out, /decode .* per token {3}fp32 [\d.]+ ms {3}[\d.]+×/);
  assert.match(human.out, /ppl [\d.]+ \(fp32 [\d.]+, [+-][\d.]+%\)/);
  assert.match(human.out, /smaller than fp32/);

  const json = await run(['bench', recipe, '--quick', '--json', '--no-baseline']);
  assert.equal(json.code, 0, json.err);
  const rec = JSON.parse(json.out) as RunRecord;
  assert.equal(rec.status, 'ok');
  assert.equal(rec.artifact_reused, true, 'second bench of the same recipe reuses the artifact');
  assert.equal(rec.baseline, undefined);
  assert.ok(!/ANTHROPIC|API_KEY/i.test(json.out), 'no secrets or environment in records');

  const list = await run(['runs', 'list', '--dir', recipe]);
  assert.equal(list.code, 0);
  assert.equal(list.out.split('\n').filter((l) => /^\d{8}T\d{6}Z-/.test(l)).length, 2);
  const listJson = JSON.parse((await run(['runs', 'list', '--json', '--dir', ws])).out) as RunRecord[];
  assert.deepEqual(listJson.map((r) => r.id).at(-1), rec.id);

  // Prune keeping none: the artifact is only kept while young; with --keep 0 and an old mtime it goes.
  const artDir = path.dirname(rec.artifact!);
  const old = new Date(Date.now() - 3600_000);
  fs.utimesSync(artDir, old, old);
  const pruned = await run(['runs', 'prune', '--keep', '0', '--dir', ws]);
  assert.equal(pruned.code, 0);
  assert.match(pruned.out, /removed 1 artifacts/);
  assert.equal(fs.existsSync(artDir), false);
});

test('haqa bench: bad arguments and recipes are usage errors', async () => {
  assert.equal((await run(['bench'])).code, 2);
  const missing = await run(['bench', path.join(ws, 'nope.yaml')]);
  assert.equal(missing.code, 2);
  assert.match(missing.err, /recipe not found/);
  const bad = path.join(ws, 'bad.yaml');
  fs.writeFileSync(bad, 'model: ./model.onnx\nquantize: { bits: 5x }\n');
  const r = await run(['bench', bad]);
  assert.equal(r.code, 2);
  assert.match(r.err, /bad\.yaml:2:\d+: error:/);
  assert.match((await run(['bench', bad, '--timeout', 'x'])).err, /--timeout/);
  assert.equal((await run(['runs', 'explode', '--dir', ws])).code, 2);
});
