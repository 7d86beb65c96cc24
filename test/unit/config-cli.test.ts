// `haqa check`: the editor's diagnostics on the command line — human lines with 1-based positions,
// JSON with 0-based LSP ranges, exit 1 on errors, 0 otherwise, 2 on usage errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { main } from '../../server/src/cli';
import type { CliIO } from '../../server/src/cli/command';
import type { CheckOutput } from '../../server/src/cli/check';
import { tempDir } from '../helpers/tinyModel';
import { writeLlamaShapes, SMALL } from '../lsp/llamaShapes';

async function run(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIO = { out: (l) => out.push(l), err: (l) => err.push(l), signal: new AbortController().signal };
  const code = await main(['check', ...argv], io);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const dir = tempDir('haqa-check-cli-');
const ready = writeLlamaShapes(dir, SMALL);

test('errors: human output with 1-based positions, exit 1', async () => {
  await ready;
  const file = path.join(dir, 'bad.haqa.yaml');
  fs.writeFileSync(file, 'model: ./model.onnx\nquantize:\n  bitz: 4\n  block_size: 64\n');
  const r = await run(file);
  assert.equal(r.code, 1);
  const lines = r.out.split('\n');
  assert.equal(
    lines[0],
    `${file}:3:3 error unknown-key unknown key 'bitz' in quantize; did you mean 'bits'? Allowed: method, ` +
      'bits, block_size, symmetric, accuracy_level, activations, weight_type, skip, overrides, gguf_type',
  );
  assert.match(
    lines[1],
    new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4:15 error block-size-not-divisor `),
  );
  assert.match(r.err, /2 errors, 0 warnings/);
});

test('--json: an array of {file, range, severity, code, message} with 0-based positions', async () => {
  await ready;
  const file = path.join(dir, 'warn.haqa.yaml');
  fs.writeFileSync(file, 'model: ./model.onnx\nquantize:\n  skip: [nothing.matches]\n');
  const r = await run(file, '--json');
  assert.equal(r.code, 0, 'warnings alone do not fail');
  const arr = JSON.parse(r.out) as CheckOutput[];
  assert.deepEqual(
    arr.map((d) => [d.file, d.range, d.severity, d.code]),
    [[file, { start: { line: 2, character: 9 }, end: { line: 2, character: 24 } }, 'warning', 'pattern-no-match']],
  );
  assert.equal(typeof arr[0].message, 'string');
});

test('config.json, a clean recipe, and usage errors', async () => {
  await ready;
  const cfg = path.join(dir, 'config.json');
  fs.writeFileSync(
    cfg,
    JSON.stringify({
      model_type: 'llama',
      hidden_size: 64,
      intermediate_size: 96,
      num_hidden_layers: 2,
      num_attention_heads: 8,
      num_key_value_heads: 3,
      vocab_size: 128,
    }),
  );
  const c = await run(cfg, '--json');
  assert.equal(c.code, 1);
  // model.onnx beside it has 2 kv heads: the count is wrong in itself and disagrees with the graph.
  assert.deepEqual(
    (JSON.parse(c.out) as CheckOutput[]).map((d) => d.code),
    ['kv-heads-not-divisor', 'config-graph-mismatch'],
  );
  const ok = path.join(dir, 'haqa.yaml');
  fs.writeFileSync(ok, 'model: ./model.onnx\n');
  assert.equal((await run(ok)).code, 0);
  assert.equal((await run()).code, 2);
  assert.equal((await run(path.join(dir, 'missing.yaml'))).code, 2);
  assert.equal((await run(dir)).code, 2);
  assert.equal((await run(ok, '--bogus')).code, 2);
});

test('the bundled example recipe checks clean when its model is there', async (t) => {
  const example = path.join(__dirname, '..', '..', 'examples', 'tiny-llama', 'haqa.yaml');
  if (!fs.existsSync(path.join(path.dirname(example), 'model.onnx'))) return t.skip('fixture model not trained yet');
  const r = await run(example, '--json');
  assert.deepEqual(JSON.parse(r.out), []);
  assert.equal(r.code, 0);
});
