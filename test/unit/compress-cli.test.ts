import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { main } from '../../server/src/cli';
import { inspectModel } from '../../server/src/model/graph';
import { tempDir, writeTinyModel } from '../helpers/tinyModel';
import { listDir } from './compress-helpers';

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

test('haqa quantize writes <model>.haqa.onnx beside the recipe and reports per-layer actions', async () => {
  const dir = tempDir();
  await writeTinyModel(dir, { hidden: 64, intermediate: 96, layers: 1 });
  const recipe = path.join(dir, 'haqa.yaml');
  fs.writeFileSync(
    recipe,
    'model: model.onnx\nquantize:\n  bits: 4\n  block_size: 32\n' +
      '  overrides:\n    - match: "**.down_proj"\n      bits: 8\n',
  );
  const r = await run(['quantize', recipe]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /model\.layers\.0\.mlp\.up_proj\s+int4 b32 sym rtn/);
  assert.match(r.out, /model\.layers\.0\.mlp\.down_proj\s+int8 b32 sym rtn/);
  assert.match(r.out, /size .* → .*smaller/);
  const g = await inspectModel(path.join(dir, 'model.haqa.onnx'));
  assert.deepEqual(
    g.layers.map((l) => [l.name, l.bits]),
    [
      ['model.layers.0.mlp.up_proj', 4],
      ['model.layers.0.mlp.down_proj', 8],
    ],
  );

  const j = await run(['quantize', recipe, '-o', path.join(dir, 'x.onnx'), '--json']);
  assert.equal(j.code, 0);
  const res = JSON.parse(j.out);
  assert.equal(res.layers.length, 2);
  assert.ok(res.bytes < res.bytesBefore);
});

test('haqa quantize refuses a broken recipe with line:col and never overwrites the model', async () => {
  const dir = tempDir();
  await writeTinyModel(dir, { hidden: 32, intermediate: 48, layers: 1 });
  const bad = path.join(dir, 'bad.yaml');
  fs.writeFileSync(bad, 'model: model.onnx\nquantize:\n  bits: [4\n');
  const before = listDir(dir);
  const r = await run(['quantize', bad]);
  assert.equal(r.code, 2);
  assert.match(r.err, /bad\.yaml:\d+:\d+ error/);
  const good = path.join(dir, 'good.yaml');
  fs.writeFileSync(good, 'model: model.onnx\nquantize:\n  bits: 4\n  block_size: 16\n');
  const model = fs.readFileSync(path.join(dir, 'model.onnx'));
  const o = await run(['quantize', good, '-o', path.join(dir, 'model.onnx')]);
  assert.equal(o.code, 2);
  assert.match(o.err, /is the input model/);
  assert.deepEqual(fs.readFileSync(path.join(dir, 'model.onnx')), model);
  assert.deepEqual(listDir(dir), [...before, 'good.yaml'].sort());
});
