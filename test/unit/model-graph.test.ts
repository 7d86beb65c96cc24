import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { inspectModel, moduleFromNodeName } from '../../server/src/model/graph';
import { readModel, readTensorFloat32, writeModel, OnnxError } from '../../server/src/model/onnx';
import { tempDir, writeTinyModel, tinyMlpModel } from '../helpers/tinyModel';

test('module names come from scoped node names', () => {
  assert.equal(moduleFromNodeName('/model/layers.3/mlp/down_proj/MatMul'), 'model.layers.3.mlp.down_proj');
  assert.equal(moduleFromNodeName('/lm_head/MatMul'), 'lm_head');
  assert.equal(moduleFromNodeName('MatMul_12'), undefined);
});

test('inspect finds every MatMul layer with K, N and HF names', async () => {
  const dir = tempDir();
  const file = await writeTinyModel(dir, { hidden: 32, intermediate: 48, layers: 3 });
  const g = await inspectModel(file);
  assert.equal(g.layers.length, 6);
  const up = g.layers.find((l) => l.name === 'model.layers.1.mlp.up_proj');
  assert.ok(up);
  assert.deepEqual([up.K, up.N, up.dtype, up.bits], [32, 48, 'FLOAT', 32]);
  assert.equal(g.totals.layerParams, 3 * 2 * 32 * 48);
  assert.deepEqual(
    g.inputs.map((i) => i.name),
    ['x'],
  );
});

test('external data round-trips and the model still runs in onnxruntime', async () => {
  const dir = tempDir();
  const inline = await writeTinyModel(dir, { hidden: 32, intermediate: 48, layers: 2 }, 'inline.onnx');
  const ext = path.join(dir, 'ext.onnx');
  await writeModel(tinyMlpModel({ hidden: 32, intermediate: 48, layers: 2 }), ext, { externalData: true });
  assert.ok(fs.existsSync(ext + '.data'));
  assert.ok(fs.statSync(ext).size < 2000, 'graph file holds no weights');
  const g = await inspectModel(ext);
  assert.equal(g.usesExternalData, true);
  const a = await readModel(inline);
  const b = await readModel(ext);
  const wa = await readTensorFloat32(a.proto.graph!.initializer![0], a.baseDir);
  const wb = await readTensorFloat32(b.proto.graph!.initializer![0], b.baseDir);
  assert.deepEqual(wa, wb);
  const x = new ort.Tensor(
    'float32',
    Float32Array.from({ length: 32 }, (_, i) => i / 32),
    [1, 1, 32],
  );
  const ra = await (await ort.InferenceSession.create(inline)).run({ x });
  const rb = await (await ort.InferenceSession.create(ext)).run({ x });
  assert.deepEqual(ra.y.data, rb.y.data);
});

test('corrupt, empty and directory paths give clear errors', async () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'junk.onnx'), Buffer.from([0xff, 0xff, 0xff, 0x01, 0x02, 0x03]));
  fs.writeFileSync(path.join(dir, 'empty.onnx'), '');
  await assert.rejects(
    readModel(path.join(dir, 'junk.onnx')),
    (e: unknown) => e instanceof OnnxError && /not a valid ONNX model/.test(e.message),
  );
  await assert.rejects(readModel(path.join(dir, 'empty.onnx')), /is empty/);
  await assert.rejects(readModel(dir), /is a directory/);
  await assert.rejects(readModel(path.join(dir, 'nope.onnx')), /not found/);
});
