// Compression on worker threads (compress/parallel.ts): the output is byte-identical to one thread's,
// for [K, N] and transposed [N, K] weights, symmetric and asymmetric (packed zero points), 2/4/8 bits,
// fp32 and fp16 sources, with slices small enough that every layer is split over the threads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { compressModel } from '../../server/src/compress/pipeline';
import { parallelStats } from '../../server/src/compress/parallel';
import { DataType, ExternalDataWriter, onnx } from '../../server/src/model/onnx';
import { floatType } from '../../server/src/model/floatTypes';
import { node, valueInfo, model } from '../../server/src/model/build';
import { randn, tempDir } from '../helpers/tinyModel';
import { recipeFor } from './compress-helpers';

const dir = tempDir('haqa-parallel-');
const H = 96;
const V = 200;

/** x → MatMul [H, H] ×2 → Gemm(transB) with a [V, H] weight (a tied lm_head), in external data. */
async function write(file: string, dt: number): Promise<void> {
  const ft = floatType(dt)!;
  const w = new ExternalDataWriter(file);
  const inits: onnx.ITensorProto[] = [];
  const nodes: onnx.NodeProto[] = [];
  let x = 'x';
  for (let i = 0; i < 2; i++) {
    const name = `model.layers.${i}.mlp.down_proj.weight`;
    inits.push(await w.append(name, dt, [H, H], ft.encode(randn(H * H, 40 + i, 0.05))));
    nodes.push(node('MatMul', [x, name], [`h${i}`], { name: `/model/layers.${i}/mlp/down_proj/MatMul` }));
    x = `h${i}`;
  }
  inits.push(await w.append('lm_head.weight', dt, [V, H], ft.encode(randn(V * H, 50, 0.05))));
  nodes.push(node('Gemm', [x, 'lm_head.weight'], ['y'], { name: '/lm_head/Gemm', attrs: { transB: 1 } }));
  await w.commit(
    model({
      name: 'p',
      node: nodes,
      initializer: inits as onnx.TensorProto[],
      input: [valueInfo('x', dt, ['batch', H])],
      output: [valueInfo('y', dt, ['batch', V])],
    }),
  );
}

function bytesOf(out: string): Buffer[] {
  return [fs.readFileSync(out), fs.readFileSync(out + '.data')];
}

for (const [label, dt] of [
  ['fp32', DataType.FLOAT],
  ['fp16', DataType.FLOAT16],
] as const) {
  test(`${label}: three threads write the bytes one does (MatMul, transposed Gemm, 2/4/8 bits, sym/asym)`, async () => {
    const src = path.join(dir, label, 'model.onnx');
    fs.mkdirSync(path.dirname(src), { recursive: true });
    await write(src, dt);
    for (const q of [
      { bits: 4, block_size: 16, symmetric: false },
      { bits: 2, block_size: 16, symmetric: false },
      { bits: 8, block_size: 32, symmetric: true },
    ]) {
      const doc = { quantize: { ...q, overrides: [{ match: 'lm_head', bits: q.bits }] } };
      const outs = [1, 3].map((t) => {
        fs.mkdirSync(path.join(dir, label, `t${t}`), { recursive: true });
        return path.join(dir, label, `t${t}`, 'q.onnx');
      });
      // Slices of 64 rows of [K, N] (4 blocks of 16) or of a few rows of [N, K]: every layer is split.
      const chunkBytes = 64 * H * 4;
      const one = await compressModel(recipeFor(src, doc), { out: outs[0], chunkBytes, threads: 1 });
      const before = parallelStats.slices;
      const three = await compressModel(recipeFor(src, doc), { out: outs[1], chunkBytes, threads: 3 });
      assert.ok(parallelStats.slices - before >= 6, `slices on threads: ${parallelStats.slices - before}`);
      assert.equal(
        three.layers.filter((l) => l.actions.some((a) => a.startsWith(`int${q.bits}`))).length,
        3,
        JSON.stringify(three.layers),
      );
      assert.deepEqual(bytesOf(outs[1]), bytesOf(outs[0]), `${JSON.stringify(q)}: the same model, byte for byte`);
      assert.deepEqual(three.layers, one.layers, 'the same reports, errors included');
      assert.equal(three.relError, one.relError);
    }
  });
}

test('a layer smaller than one read chunk is still split over the threads (at the default chunk size)', async () => {
  // Each weight here is far below the 32 MB read chunk: before, each layer was one slice, so layers
  // (written in order) ran on one thread at a time and two threads were no faster than one.
  const src = path.join(dir, 'small', 'model.onnx');
  fs.mkdirSync(path.dirname(src), { recursive: true });
  await write(src, DataType.FLOAT16);
  const doc = { quantize: { bits: 4, block_size: 16, symmetric: true, overrides: [{ match: 'lm_head', bits: 4 }] } };
  const outs = [1, 2].map((t) => {
    fs.mkdirSync(path.join(dir, 'small', `t${t}`), { recursive: true });
    return path.join(dir, 'small', `t${t}`, 'q.onnx');
  });
  const one = await compressModel(recipeFor(src, doc), { out: outs[0], threads: 1 });
  const before = parallelStats.slices;
  const two = await compressModel(recipeFor(src, doc), { out: outs[1], threads: 2 });
  assert.ok(parallelStats.slices - before >= 3 * 2, `3 layers, slices on threads: ${parallelStats.slices - before}`);
  assert.deepEqual(bytesOf(outs[1]), bytesOf(outs[0]), 'the same model, byte for byte');
  assert.deepEqual(two.layers, one.layers, 'the same reports, errors included');
});
