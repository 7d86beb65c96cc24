// Graph validation (model/validate.ts) before anything runs: cyclic, dangling-input, no-input and
// no-output graphs, impossible dims and bad external-data offsets are refused with the node, tensor or
// key named — by inspect, by check (a diagnostic on the recipe's `model:` line), by quantize and by
// bench (exit 2 or a clear run error, never exit 70) — and nothing is written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { main } from '../../server/src/cli';
import type { CliIO } from '../../server/src/cli/command';
import { onnx, writeModel, readModel, encodeModel, OnnxError } from '../../server/src/model/onnx';
import { validateModel } from '../../server/src/model/validate';
import { inspectModel } from '../../server/src/model/graph';
import { analyzeRecipe } from '../../server/src/config/check';
import { ModelCache } from '../../server/src/config/modelCache';
import { messageText } from '../../server/src/config/diagnostics';
import { runRecipe } from '../../server/src/bench/run';
import { resolveRecipe } from '../../server/src/config/recipe';
import { tempDir, tinyMlpModel } from '../helpers/tinyModel';

async function cli(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIO = { out: (l) => out.push(l), err: (l) => err.push(l), signal: new AbortController().signal };
  const code = await main(argv, io);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const tiny = () => tinyMlpModel({ hidden: 16, intermediate: 32, layers: 2 });

/** Each broken model: how to break the tiny MLP, and what the refusal must say. */
const BROKEN: { name: string; mutate: (m: onnx.ModelProto) => void; error: RegExp }[] = [
  {
    name: 'cycle',
    mutate: (m) => {
      m.graph!.node![0].input![0] = '/model/layers.0/Add_output_0';
    },
    error: /cycle through node \/model\/layers\.0\//,
  },
  {
    name: 'dangling',
    mutate: (m) => {
      m.graph!.node![1].input![0] = 'nowhere';
    },
    error: /node \/model\/layers\.0\/mlp\/act\/Relu reads 'nowhere', which is no graph input/,
  },
  {
    name: 'no-inputs',
    mutate: (m) => {
      m.graph!.input = [];
    },
    error: /has no inputs/,
  },
  {
    name: 'no-outputs',
    mutate: (m) => {
      m.graph!.output = [];
    },
    error: /has no outputs/,
  },
  {
    name: 'negative-dim',
    mutate: (m) => {
      m.graph!.initializer![0].dims = [-16, 32];
    },
    error: /tensor model\.layers\.0\.mlp\.up_proj\.weight has dimension -16/,
  },
  {
    name: 'huge-dim',
    mutate: (m) => {
      m.graph!.initializer![0].dims = [1e12, 32];
    },
    error: /tensor model\.layers\.0\.mlp\.up_proj\.weight: holds 2048 bytes, its shape \[1000000000000,32\]/,
  },
  {
    name: 'twice',
    mutate: (m) => {
      m.graph!.node![2].output![0] = '/model/layers.0/mlp/up_proj/MatMul_output_0';
    },
    error: /produced twice/,
  },
  {
    name: 'output-unproduced',
    mutate: (m) => {
      m.graph!.output![0].name = 'z';
    },
    error: /graph output 'z' is produced by no node/,
  },
];

async function writeBroken(dir: string, b: (typeof BROKEN)[number]): Promise<string> {
  const m = tiny();
  b.mutate(m);
  const file = path.join(dir, `${b.name}.onnx`);
  fs.writeFileSync(file, encodeModel(m));
  return file;
}

test('the validator accepts the fixtures it should', async () => {
  const dir = tempDir();
  const ok = path.join(dir, 'ok.onnx');
  await writeModel(tiny(), ok);
  await readModel(ok);
  const ext = path.join(dir, 'ext.onnx');
  await writeModel(tiny(), ext, { externalData: true });
  await readModel(ext);
  await readModel(path.resolve(__dirname, '../../examples/tiny-llama/model.onnx'));
});

test('broken graphs are refused by readModel and inspect, naming what is wrong', async () => {
  const dir = tempDir();
  for (const b of BROKEN) {
    const file = await writeBroken(dir, b);
    await assert.rejects(
      inspectModel(file),
      (e: Error) => e instanceof OnnxError && e.name === 'GraphError' && b.error.test(e.message),
      b.name,
    );
    const r = await cli('inspect', file);
    assert.equal(r.code, 2, `${b.name}: ${r.err}`);
    assert.match(r.err, b.error, b.name);
  }
});

test('the cycle check is iterative: a 100,000-node chain closed into a loop is refused without recursion', () => {
  const n = 100_000;
  const node = Array.from({ length: n }, (_, i) => ({
    opType: 'Relu',
    name: `r${i}`,
    input: [i === 0 ? `v${n - 1}` : `v${i - 1}`],
    output: [`v${i}`],
  }));
  const proto = { graph: { node, input: [{ name: 'x' }], output: [{ name: `v${n - 1}` }], initializer: [] } };
  assert.throws(() => validateModel(proto, '/tmp', 'loop.onnx'), /cycle through node r\d+ \(100000 of 100000 nodes/);
  node[0].input = ['x'];
  validateModel(proto, '/tmp', 'chain.onnx');
});

test('check puts model-invalid on the recipe model line; quantize refuses with exit 2 and writes nothing', async () => {
  const dir = tempDir();
  for (const b of BROKEN) {
    const file = await writeBroken(dir, b);
    const recipe = path.join(dir, `${b.name}.haqa.yaml`);
    fs.writeFileSync(recipe, `version: 1\nmodel: ./${b.name}.onnx\nquantize:\n  bits: 4\n  block_size: 16\n`);
    const a = await analyzeRecipe(fs.readFileSync(recipe, 'utf8'), recipe, { models: new ModelCache() });
    const d = a.diagnostics.find((x) => x.code === 'model-invalid');
    assert.ok(d, `${b.name}: ${a.diagnostics.map((x) => x.code)}`);
    assert.equal(d.range.start.line, 1);
    assert.match(messageText(d), b.error);
    const before = fs.readdirSync(dir).sort();
    const r = await cli('quantize', recipe, '-o', path.join(dir, `${b.name}.out.onnx`));
    assert.equal(r.code, 2, `${b.name}: ${r.err}`);
    assert.match(r.err, /model-invalid/);
    assert.doesNotMatch(r.err, /internal error|\n\s+at /);
    assert.deepEqual(fs.readdirSync(dir).sort(), before);
    void file;
  }
});

test('external data: non-numeric, negative, out-of-range offset/length is refused naming tensor and key', async () => {
  const dir = tempDir();
  const src = path.join(dir, 'src.onnx');
  await writeModel(tiny(), src, { externalData: true });
  const cases: { key: string; value: string; error: RegExp }[] = [
    {
      key: 'offset',
      value: 'abc',
      error:
        /tensor model\.layers\.0\.mlp\.up_proj\.weight: external data 'offset' is "abc", not a non-negative integer/,
    },
    {
      key: 'length',
      value: '12x',
      error: /tensor model\.layers\.0\.mlp\.up_proj\.weight: external data 'length' is "12x"/,
    },
    { key: 'offset', value: '-64', error: /'offset' is "-64"/ },
    { key: 'offset', value: '1e30', error: /'offset' is "1e30"/ },
    {
      key: 'offset',
      value: '99999999',
      error: /up_proj\.weight: external data truncated: bytes 99999999\.\.\d+ are past the end/,
    },
    { key: 'length', value: '4', error: /up_proj\.weight: external data length 4 does not match its shape \[16,32\]/ },
  ];
  for (const [i, c] of cases.entries()) {
    const proto = (await readModel(src)).proto;
    const t = proto.graph!.initializer!.find((x) => x.name === 'model.layers.0.mlp.up_proj.weight')!;
    t.externalData!.find((e) => e.key === c.key)!.value = c.value;
    const file = path.join(dir, `m${i}.onnx`);
    fs.writeFileSync(file, encodeModel(proto));
    fs.copyFileSync(src + '.data', path.join(dir, 'src.onnx.data'));
    await assert.rejects(readModel(file), (e: Error) => c.error.test(e.message), `${c.key}=${c.value}`);
    const r = await cli('inspect', file);
    assert.equal(r.code, 2);
  }
});

test('bench refuses a broken graph at setup with a clear run error, before any worker starts', async () => {
  const dir = tempDir();
  const b = BROKEN[0];
  await writeBroken(dir, b);
  const recipe = resolveRecipe({ model: `./${b.name}.onnx` }, path.join(dir, 'haqa.yaml'));
  const rec = await runRecipe(recipe, { noStore: true, quick: true });
  assert.equal(rec.status, 'error');
  assert.match(rec.error!.message, b.error);
  assert.deepEqual(rec.error!.recipe_path, ['model']);
});
