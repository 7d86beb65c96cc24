import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { compressModel } from '../../server/src/compress/pipeline';
import { DataType, makeTensor, onnx, readModel, writeModel, encodeModel } from '../../server/src/model/onnx';
import { node, valueInfo, model } from '../../server/src/model/build';
import { tempDir, writeTinyModel, tinyMlpModel, randn } from '../helpers/tinyModel';
import { recipeFor, reference, runOrt, input, relMaxDiff, gemmModel, listDir } from './compress-helpers';

const Q4 = { quantize: { bits: 4, block_size: 16 } };

test('a corrupt or truncated model is refused with a clear error and nothing is written', async () => {
  const dir = tempDir();
  const junk = path.join(dir, 'junk.onnx');
  fs.writeFileSync(junk, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02]));
  const before = listDir(dir);
  await assert.rejects(compressModel(recipeFor(junk, Q4), { out: path.join(dir, 'o.onnx') }), /not a valid ONNX model/);
  assert.deepEqual(listDir(dir), before);

  // A valid model cut short.
  const whole = await writeTinyModel(dir, { hidden: 32, intermediate: 48, layers: 1 }, 'whole.onnx');
  const cut = path.join(dir, 'cut.onnx');
  const bytes = fs.readFileSync(whole);
  fs.writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
  const before2 = listDir(dir);
  await assert.rejects(
    compressModel(recipeFor(cut, Q4), { out: path.join(dir, 'o.onnx') }),
    /not a valid ONNX model|raw data has|bytes/,
  );
  assert.deepEqual(listDir(dir), before2);

  // External data file truncated: the error names the tensor; no partial output or data file remains.
  const ext = path.join(dir, 'ext.onnx');
  await writeModel(tinyMlpModel({ hidden: 32, intermediate: 48, layers: 1 }), ext, { externalData: true });
  fs.truncateSync(ext + '.data', 3000);
  const before3 = listDir(dir);
  await assert.rejects(
    compressModel(recipeFor(ext, Q4), { out: path.join(dir, 'ext.haqa.onnx') }),
    /model\.layers\.0\.mlp\.(up|down)_proj\.weight.*truncated|truncated.*model\.layers\.0/,
  );
  assert.deepEqual(listDir(dir), before3);
});

test('a weight that is a graph input, or an integer weight, is refused naming the node', async () => {
  const dir = tempDir();
  const K = 32,
    N = 16;
  const mk = (dt: DataType, asInput: boolean) => {
    const data = dt === DataType.FLOAT ? randn(K * N, 1) : new Int8Array(K * N).fill(3);
    const inputs = [valueInfo('x', DataType.FLOAT, ['b', K])];
    if (asInput) inputs.push(valueInfo('proj.weight', dt, [K, N]));
    return model({
      name: 'm',
      node: [node('MatMul', ['x', 'proj.weight'], ['y'], { name: '/proj/MatMul' })],
      input: inputs,
      output: [valueInfo('y', DataType.FLOAT, ['b', N])],
      initializer: [makeTensor('proj.weight', dt, [K, N], data)],
    });
  };
  const a = path.join(dir, 'input-weight.onnx');
  await writeModel(mk(DataType.FLOAT, true), a);
  const before = listDir(dir);
  await assert.rejects(
    compressModel(recipeFor(a, Q4), { out: path.join(dir, 'a.out.onnx') }),
    /node \/proj\/MatMul.*graph input.*not a constant/,
  );
  const b = path.join(dir, 'int-weight.onnx');
  await writeModel(mk(DataType.INT8, false), b);
  await assert.rejects(
    compressModel(recipeFor(b, Q4), { out: path.join(dir, 'b.out.onnx') }),
    /node \/proj\/MatMul.*INT8/,
  );
  assert.deepEqual(listDir(dir), [...before, 'int-weight.onnx'].sort());
});

test('cancelling mid-way leaves no output, inline or external', async () => {
  const dir = tempDir();
  const inline = await writeTinyModel(dir, { hidden: 32, intermediate: 48, layers: 3 }, 'in.onnx');
  const ext = path.join(dir, 'ext.onnx');
  await writeModel(tinyMlpModel({ hidden: 32, intermediate: 48, layers: 3 }), ext, { externalData: true });
  const before = listDir(dir);
  for (const src of [inline, ext]) {
    const ac = new AbortController();
    await assert.rejects(
      compressModel(recipeFor(src, Q4), {
        out: path.join(dir, 'o.onnx'),
        signal: ac.signal,
        onProgress: (d) => d === 2 && ac.abort(),
      }),
      (e: Error) => e.name === 'AbortError',
    );
    assert.deepEqual(listDir(dir), before);
  }
  await assert.rejects(compressModel(recipeFor(inline, Q4), { out: inline }), /refusing to overwrite/);
});

test('unknown ops and non-layer MatMuls pass through untouched; the interface is unchanged', async () => {
  const dir = tempDir();
  const K = 32,
    N = 24;
  const m = model({
    name: 'mixed',
    node: [
      node('Tanh', ['x'], ['t'], { name: '/pre/Tanh' }),
      node('MatMul', ['t', 'z'], ['u'], { name: '/attn/MatMul' }), // activation × activation: not a layer
      node('MatMul', ['t', 'proj.weight'], ['v'], { name: '/proj/MatMul' }),
      node('Add', ['u', 'v'], ['y'], { name: '/Add' }),
    ],
    input: [valueInfo('x', DataType.FLOAT, ['b', K]), valueInfo('z', DataType.FLOAT, [K, N])],
    output: [valueInfo('y', DataType.FLOAT, ['b', N])],
    initializer: [makeTensor('proj.weight', DataType.FLOAT, [K, N], randn(K * N, 5))],
  });
  const file = path.join(dir, 'mixed.onnx');
  await writeModel(m, file);
  const out = path.join(dir, 'mixed.q.onnx');
  const res = await compressModel(recipeFor(file, { quantize: { bits: 4, block_size: 16 } }), { out });
  assert.deepEqual(
    res.layers.map((l) => l.name),
    ['proj'],
  );
  const src = (await readModel(file)).proto.graph!;
  const dst = (await readModel(out)).proto.graph!;
  const enc = (n: onnx.INodeProto) => Buffer.from(onnx.NodeProto.encode(n as onnx.NodeProto).finish()).toString('hex');
  for (const name of ['/pre/Tanh', '/attn/MatMul', '/Add']) {
    assert.equal(enc(dst.node!.find((n) => n.name === name)!), enc(src.node!.find((n) => n.name === name)!), name);
  }
  const io = (g: onnx.IGraphProto) =>
    Buffer.from(encodeModel({ graph: { input: g.input, output: g.output } })).toString('hex');
  assert.equal(io(dst), io(src));
  const feeds = { x: input([3, K], 1), z: input([K, N], 2) };
  assert.ok(relMaxDiff((await runOrt(out, feeds)).y, (await reference(out, feeds)).y.data) < 1e-5);
});

test('external-data models stream in slices and come out with external data, same numbers as inline', async () => {
  const dir = tempDir();
  const spec = { hidden: 64, intermediate: 96, layers: 2 };
  const inline = await writeTinyModel(dir, spec, 'inline.onnx');
  const ext = path.join(dir, 'ext.onnx');
  await writeModel(tinyMlpModel(spec), ext, { externalData: true });
  const gemm = path.join(dir, 'gemm.onnx');
  await writeModel(gemmModel(48, 40, 3, 1), gemm, { externalData: true }); // alpha 1: the streamed [N, K] path
  for (const [q, label] of [
    [{ bits: 4, block_size: 32, symmetric: false }, 'asym4'],
    [{ bits: 8, block_size: 16 }, 'sym8'],
  ] as const) {
    const a = path.join(dir, `inline.${label}.onnx`);
    const b = path.join(dir, `ext.${label}.onnx`);
    await compressModel(recipeFor(inline, { quantize: q }), { out: a });
    // 4 KiB slices: several slices per weight, each a whole number of blocks.
    const rb = await compressModel(recipeFor(ext, { quantize: q }), { out: b, chunkBytes: 4096 });
    assert.ok(fs.existsSync(b + '.data'));
    assert.equal(rb.bytes, fs.statSync(b).size + fs.statSync(b + '.data').size);
    const x = input([2, 3, 64], 7);
    assert.deepEqual((await runOrt(b, { x })).y, (await runOrt(a, { x })).y);
    const g = path.join(dir, `gemm.${label}.onnx`);
    const rg = await compressModel(recipeFor(gemm, { quantize: q }), { out: g, chunkBytes: 1000 });
    assert.ok(rg.layers[0].relError! > 0 && rg.layers[0].relError! < 0.2);
    const xg = input([2, 48], 3);
    assert.ok(relMaxDiff((await runOrt(g, { x: xg })).y, (await reference(g, { x: xg })).y.data) < 1e-5);
  }
});

test('calibrating an external-data model leaves no temporary file behind', async () => {
  const dir = tempDir();
  const ext = path.join(dir, 'ext.onnx');
  await writeModel(tinyMlpModel({ hidden: 32, intermediate: 64, layers: 1 }), ext, { externalData: true });
  const out = path.join(dir, 'ext.gptq.onnx');
  const res = await compressModel(
    recipeFor(ext, { quantize: { bits: 4, block_size: 16, method: 'gptq' }, calibration: { samples: 2, seq_len: 8 } }),
    { out },
  );
  assert.ok(res.layers.every((l) => l.actions[0] === 'int4 b16 sym gptq'));
  assert.deepEqual(listDir(dir), ['ext.gptq.onnx', 'ext.gptq.onnx.data', 'ext.onnx', 'ext.onnx.data']);
  const x = input([1, 4, 32], 3);
  assert.ok(relMaxDiff((await runOrt(out, { x })).y, (await reference(out, { x })).y.data) < 1e-5);
});
