// `haqa synth`: writes the model and the config that describes it, and reports bad configs by key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { main } from '../../server/src/cli';
import { inspectModel } from '../../server/src/model/graph';
import { architectureFromConfig, parameterCount } from '../../server/src/config/hfConfig';
import { FAMILIES } from '../../server/src/config/families';
import { tempDir } from '../helpers/tinyModel';

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

const dir = tempDir('haqa-synth-cli-');
const TINY = {
  model_type: 'qwen2',
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 3,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 50,
  tie_word_embeddings: true,
  max_position_embeddings: 128,
};

test('haqa synth writes the model and a config.json describing it (layers override included)', async () => {
  const cfg = path.join(dir, 'tiny.json');
  fs.writeFileSync(cfg, JSON.stringify(TINY));
  const model = path.join(dir, 'out', 'model.onnx');
  const r = await run(['synth', cfg, '-o', model, '--seed', '4', '--layers', '2']);
  assert.equal(r.code, 0, r.err);
  const written = JSON.parse(fs.readFileSync(path.join(dir, 'out', 'config.json'), 'utf8'));
  assert.equal(written.num_hidden_layers, 2);
  assert.equal(written.model_type, 'qwen2');
  const params = parameterCount(architectureFromConfig(written));
  assert.equal((await inspectModel(model)).totals.params, params);
  assert.match(r.out, /parameters/);
  assert.match(r.out, /seed 4/);
  // the whole examples config set parses and is Llama-family
  for (const f of fs
    .readdirSync(path.resolve(__dirname, '../../examples/configs'))
    .filter((n) => n.endsWith('.json'))) {
    const a = architectureFromConfig(
      JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../examples/configs', f), 'utf8')),
    );
    assert.ok(parameterCount(a) > 4e8, f);
  }
});

test('haqa synth: bad configs and arguments are usage errors naming the problem', async () => {
  const write = (name: string, content: string) => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, content);
    return f;
  };
  const o = ['-o', path.join(dir, 'bad', 'model.onnx')];
  const missing = await run([
    'synth',
    write('m.json', JSON.stringify({ ...TINY, intermediate_size: undefined })),
    ...o,
  ]);
  assert.equal(missing.code, 2);
  assert.match(missing.err, /m\.json: missing 'intermediate_size'/);
  const heads = await run(['synth', write('h.json', JSON.stringify({ ...TINY, num_attention_heads: 5 })), ...o]);
  assert.equal(heads.code, 2);
  assert.match(heads.err, /num_attention_heads/);
  const json = await run(['synth', write('j.json', '{"hidden_size": 32,'), ...o]);
  assert.equal(json.code, 2);
  assert.match(json.err, /j\.json: not valid JSON/);
  // The refusal lists exactly the model types synth accepts (the family table's), no fewer.
  const unknown = await run(['synth', write('g.json', JSON.stringify({ ...TINY, model_type: 'mamba' })), ...o]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /'model_type' "mamba"/);
  const listed = /\(([^)]*)\)\s*$/.exec(unknown.err.trim())?.[1].split(', ').sort();
  assert.deepEqual(listed, FAMILIES.flatMap((f) => f.modelTypes).sort());
  assert.equal((await run(['synth', write('ok.json', JSON.stringify(TINY))])).code, 2, 'no -o');
  assert.match(
    (await run(['synth', path.join(dir, 'ok.json'), ...o, '--layers', 'x'])).err,
    /--layers must be a positive integer/,
  );
  assert.match((await run(['synth', path.join(dir, 'nope.json'), ...o])).err, /config file not found/);
  assert.equal(fs.existsSync(path.join(dir, 'bad', 'model.onnx')), false);
});
