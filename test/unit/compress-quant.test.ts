import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { compressModel } from '../../server/src/compress/pipeline';
import {
  blockParams,
  quantizeRTN,
  dequantize,
  ORT_DEFAULT_4BIT,
  floatToHalf,
  quantizeValue,
  toHalfArray,
} from '../../server/src/compress/quant';
import { readModel, writeModel, halfToFloat, DataType, makeTensor } from '../../server/src/model/onnx';
import { node, valueInfo, model } from '../../server/src/model/build';
import * as ort from 'onnxruntime-node';
import { inspectModel } from '../../server/src/model/graph';
import { tempDir, writeTinyModel, randn } from '../helpers/tinyModel';
import { recipeFor, reference, runOrt, input, relMaxDiff, relL2, gemmModel, unpackNBits } from './compress-helpers';

test("scale and zero point follow onnxruntime's rules", () => {
  // Symmetric: the larger-magnitude extreme maps to code 0 (scale = extreme / −8).
  assert.deepEqual(blockParams(-1, 0.5, 4, true), { scale: 0.125, zp: 8 });
  assert.deepEqual(blockParams(-0.25, 2, 4, true), { scale: -0.25, zp: 8 });
  // Asymmetric: range widened to include 0, zp = round(−min/scale).
  const a = blockParams(-1, 0.5, 4, false);
  assert.equal(a.zp, 10);
  assert.ok(Math.abs(a.scale - 0.1) < 1e-7);
  assert.deepEqual(blockParams(0.2, 0.8, 8, false).zp, 0);
  assert.deepEqual(blockParams(0, 0, 4, true), { scale: -0, zp: 8 });
});

test('the branch-free rounding equals C roundf (halves away from zero) after the clamp', () => {
  const roundf = (x: number) => Math.sign(x) * Math.floor(Math.abs(x) + 0.5);
  const xs = [-2.5, -1.5, -0.5, -0.49, -0.0, 0, 0.49, 0.5, 1.5, 2.5, 14.5, 15.5, 16.7];
  for (let i = 0; i < 2000; i++) xs.push(Math.fround((i / 2000) * 22 - 3));
  for (const x of xs) {
    const want = Math.min(15, Math.max(0, roundf(Math.fround(x))));
    assert.equal(quantizeValue(x, 1, 0, 15), want, String(x));
  }
});

test('RTN packing round-trips through an independent unpacker, K not a multiple of the block', () => {
  for (const [bits, bs, sym] of [
    [4, 32, true],
    [4, 16, false],
    [8, 64, false],
    [8, 32, true],
    [2, 16, false],
  ] as const) {
    const K = 72,
      N = 5;
    const w = randn(K * N, 11 + bits + bs);
    const pw = quantizeRTN(w, K, N, { bits, blockSize: bs, symmetric: sym });
    assert.equal(pw.packed.length, (N * Math.ceil(K / bs) * (bs * bits)) / 8);
    const mine = dequantize(pw);
    const ref = unpackNBits(
      { data: Float64Array.from(pw.packed), dims: [] },
      { data: Float64Array.from(pw.scales), dims: [] },
      pw.zeroPoints ? { data: Float64Array.from(pw.zeroPoints), dims: [] } : undefined,
      K,
      N,
      bits,
      bs,
    );
    assert.deepEqual(Array.from(mine), Array.from(ref));
    // Within half a step, except at the clipped end of ORT's grids (at most one step): never worse.
    let within = 0;
    for (let n = 0; n < N; n++)
      for (let k = 0; k < K; k++) {
        const s = Math.abs(pw.scales[n * Math.ceil(K / bs) + Math.floor(k / bs)]);
        const d = Math.abs(mine[k * N + n] - w[k * N + n]);
        assert.ok(d <= s + 1e-6, `bits ${bits} bs ${bs} (${k},${n})`);
        if (d <= s / 2 + 1e-6) within++;
      }
    assert.ok(within >= 0.95 * K * N);
  }
});

test('MatMulNBits models run in onnxruntime and match the float64 reference of their own weights', async () => {
  const dir = tempDir();
  const file = await writeTinyModel(dir, { hidden: 80, intermediate: 96, layers: 2 });
  const x = input([2, 3, 80], 5);
  const fp32 = (await reference(file, { x })).y.data;
  const errs: Record<string, number> = {};
  const cases: [string, Record<string, unknown>][] = [
    ['4 sym b32', { bits: 4, block_size: 32, symmetric: true }],
    ['4 asym b16', { bits: 4, block_size: 16, symmetric: false }],
    ['4 asym b128 (K padded)', { bits: 4, block_size: 128, symmetric: false }],
    ['8 sym b64', { bits: 8, block_size: 64, symmetric: true }],
    ['8 asym b256', { bits: 8, block_size: 256, symmetric: false }],
    ['4 sym b32 acc4', { bits: 4, block_size: 32, symmetric: true, accuracy_level: 4 }],
    ['2 asym b32', { bits: 2, block_size: 32, symmetric: false }],
  ];
  for (const [label, q] of cases) {
    const out = path.join(dir, `${label.replace(/\W+/g, '_')}.onnx`);
    const res = await compressModel(recipeFor(file, { quantize: q }), { out });
    assert.equal(res.layers.length, 4);
    const g = await inspectModel(out);
    assert.deepEqual(
      g.layers.map((l) => l.op),
      ['MatMulNBits', 'MatMulNBits', 'MatMulNBits', 'MatMulNBits'],
    );
    assert.ok(g.layers.every((l) => l.bits === (q.bits as number)));
    assert.deepEqual(
      g.inputs.map((i) => i.name),
      ['x'],
    );
    const ref = (await reference(out, { x })).y.data;
    const got = (await runOrt(out, { x })).y;
    // accuracy_level 4 quantizes the activations to int8 inside the kernel: looser by design.
    const tol = label.includes('acc4') ? 2e-2 : 1e-5;
    assert.ok(relMaxDiff(got, ref) < tol, `${label}: ort vs reference ${relMaxDiff(got, ref)}`);
    errs[label] = relL2(ref, fp32);
  }
  // 8-bit is far closer to fp32 than 4-bit; smaller blocks are closer than larger ones.
  assert.ok(errs['8 sym b64'] * 8 < errs['4 sym b32'], JSON.stringify(errs));
  assert.ok(errs['4 asym b16'] < errs['4 asym b128 (K padded)'], JSON.stringify(errs));
  assert.ok(errs['4 sym b32'] < errs['2 asym b32'], JSON.stringify(errs));
});

test("ORT_DEFAULT_4BIT is onnxruntime's default quantizer: block 128, asymmetric, no accuracy_level", async () => {
  const dir = tempDir();
  const file = await writeTinyModel(dir, { hidden: 128, intermediate: 256, layers: 1 });
  const out = path.join(dir, 'ortdefault.onnx');
  await compressModel(recipeFor(file, { quantize: { ...ORT_DEFAULT_4BIT } }), { out });
  const m = await readModel(out);
  const nb = m.proto.graph!.node!.filter((n) => n.opType === 'MatMulNBits');
  assert.equal(nb.length, 2);
  for (const n of nb) {
    assert.equal(n.input!.length, 4, 'zero points present');
    const attrs = Object.fromEntries(n.attribute!.map((a) => [a.name, Number(a.i)]));
    assert.deepEqual(attrs, { K: attrs.K, N: attrs.N, bits: 4, block_size: 128 });
    assert.ok(n.input![1].endsWith('_Q4') && n.input![2].endsWith('_scales') && n.input![3].endsWith('_zero_points'));
  }
  const x = input([1, 4, 128], 9);
  assert.ok(relMaxDiff((await runOrt(out, { x })).y, (await reference(out, { x })).y.data) < 1e-5);
});

test('Gemm with transB, alpha, beta and a bias becomes MatMulNBits + Add and computes the same', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'gemm.onnx');
  await writeModel(gemmModel(48, 40), file);
  const x = input([3, 48], 2);
  for (const sym of [true, false]) {
    const out = path.join(dir, `gemm-${sym}.onnx`);
    const res = await compressModel(recipeFor(file, { quantize: { bits: 4, block_size: 16, symmetric: sym } }), {
      out,
    });
    assert.deepEqual(
      res.layers.map((l) => l.name),
      ['fc', 'out'],
    );
    const m = await readModel(out);
    assert.ok(!m.proto.graph!.initializer!.some((t) => t.name === 'fc.weight'), 'original weight dropped');
    const ref = (await reference(out, { x })).y.data;
    const got = (await runOrt(out, { x })).y;
    assert.ok(relMaxDiff(got, ref) < 1e-5, `sym=${sym}: ${relMaxDiff(got, ref)}`);
    assert.ok(relL2(ref, (await reference(file, { x })).y.data) < 0.2);
  }
});

test('float16 conversion rounds to nearest', () => {
  for (const v of [0, 1, -2.5, 65504, 1e-7, 0.1, 3.14159, -1e-5]) {
    const back = halfToFloat(floatToHalf(v));
    assert.ok(Math.abs(back - v) <= Math.abs(v) * 2 ** -11 + 6e-8, `${v} → ${back}`);
  }
});

test('float16 models: MatMulNBits with float16 scales, pruned and factorized weights stay float16, run', async () => {
  const dir = tempDir();
  const K = 64,
    N = 32;
  const w = randn(K * N, 1, 0.1);
  const m = model({
    name: 'h',
    node: [node('MatMul', ['x', 'p.weight'], ['y'], { name: '/p/MatMul' })],
    input: [valueInfo('x', DataType.FLOAT16, [2, K])],
    output: [valueInfo('y', DataType.FLOAT16, [2, N])],
    initializer: [makeTensor('p.weight', DataType.FLOAT16, [K, N], toHalfArray(w))],
  });
  const file = path.join(dir, 'h.onnx');
  await writeModel(m, file);
  const xs = randn(2 * K, 2);
  const x = new ort.Tensor('float16', toHalfArray(xs), [2, K]);
  const run = async (f: string) =>
    Float64Array.from((await (await ort.InferenceSession.create(f)).run({ x })).y.data as Uint16Array, halfToFloat);
  const base = await run(file);
  for (const [doc, tol] of [
    [{ quantize: { bits: 4, block_size: 32 } }, 0.2],
    [{ quantize: { bits: 8, block_size: 32, symmetric: false } }, 0.02],
    [{ sparsity: { rules: [{ match: '**', pattern: '2:4' }] } }, 0.8],
    [{ low_rank: { rules: [{ match: '**', rank: 32 }] } }, 0.05],
  ] as const) {
    const out = path.join(dir, 'o.onnx');
    await compressModel(recipeFor(file, doc), { out });
    const mm = await readModel(out);
    for (const t of mm.proto.graph!.initializer!)
      assert.ok([DataType.FLOAT16, DataType.UINT8].includes(t.dataType!), `${t.name} ${t.dataType}`);
    const e = relL2(await run(out), base);
    assert.ok(e > 0 && e < tol, `${JSON.stringify(doc)}: ${e}`);
  }
});
