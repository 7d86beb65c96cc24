import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { compressModel, calibrateModel } from '../../server/src/compress/pipeline';
import { gptq, rtnOnGrid, nbitsGrid, dequantizeGrid, int8ChannelGrid } from '../../server/src/compress/gptq';
import { prune } from '../../server/src/compress/sparsity';
import { lowRank, singularValues } from '../../server/src/compress/lowrank';
import { gaussian, matmul, matmulTN } from '../../server/src/compress/linalg';
import { readModel, readTensorFloat32, writeModel } from '../../server/src/model/onnx';
import { calibrate } from '../../server/src/compress/calibrate';
import { tempDir, writeTinyModel, randn, tinyMlpModel } from '../helpers/tinyModel';
import { recipeFor, reference, runOrt, input, relMaxDiff, relL2 } from './compress-helpers';
import { int8Saturates } from '../../server/src/util/cpu';

/** Rows of correlated activations: Gaussian × a mixing matrix with a decaying spectrum, some features loud. */
function activations(rows: number, K: number, seed: number): Float64Array {
  const z = gaussian(rows * K, seed);
  const mix = gaussian(K * K, seed + 1).map((v, i) => v / (1 + (i % K)) + (Math.floor(i / K) === i % K ? 1 : 0));
  const x = matmul(z, mix, rows, K, K);
  for (let r = 0; r < rows; r++) for (let k = 0; k < K; k += 7) x[r * K + k] *= 8;
  return x;
}

function outputError(
  x: Float64Array,
  rows: number,
  K: number,
  N: number,
  w: ArrayLike<number>,
  wq: ArrayLike<number>,
): number {
  const d = new Float64Array(K * N);
  for (let i = 0; i < K * N; i++) d[i] = w[i] - wq[i];
  const e = matmul(x, d, rows, K, N);
  const y = matmul(x, w, rows, K, N);
  let a = 0,
    b = 0;
  for (let i = 0; i < e.length; i++) {
    a += e[i] * e[i];
    b += y[i] * y[i];
  }
  return Math.sqrt(a / b);
}

test('GPTQ has lower output error than RTN on the calibration activations (same grid)', () => {
  const K = 96,
    N = 24,
    rows = 400;
  const x = activations(rows, K, 3);
  const H = matmulTN(x, x, rows, K, K);
  const w = randn(K * N, 17, 0.1);
  for (const [grid, label] of [
    [nbitsGrid(4, 32, true), '4-bit b32 sym'],
    [nbitsGrid(4, 16, false), '4-bit b16 asym'],
    [int8ChannelGrid(K), 'int8 per-channel'],
  ] as const) {
    const rtn = dequantizeGrid(rtnOnGrid(w, K, N, grid), K, N, grid.groupSize);
    const gq = dequantizeGrid(gptq(w, K, N, H, grid), K, N, grid.groupSize);
    const eR = outputError(x, rows, K, N, w, rtn);
    const eG = outputError(x, rows, K, N, w, gq);
    assert.ok(eG < 0.85 * eR, `${label}: gptq ${eG} vs rtn ${eR}`);
  }
});

test('GPTQ through the pipeline: calibrated, runs in onnxruntime, and beats RTN on fresh inputs', async () => {
  const dir = tempDir();
  const file = await writeTinyModel(dir, { hidden: 64, intermediate: 128, layers: 2 });
  const calibration = { samples: 8, seq_len: 32 };
  const q = { bits: 4, block_size: 32, symmetric: true };
  const outR = path.join(dir, 'rtn.onnx');
  const outG = path.join(dir, 'gptq.onnx');
  await compressModel(recipeFor(file, { quantize: { ...q, method: 'rtn' }, calibration }), { out: outR });
  const res = await compressModel(recipeFor(file, { quantize: { ...q, method: 'gptq' }, calibration }), { out: outG });
  // Statistics collected once for everything give the same model as the run's own calibration.
  const outC = path.join(dir, 'gptq-cached.onnx');
  const cached = await calibrateModel(recipeFor(file, { calibration }));
  await compressModel(recipeFor(file, { quantize: { ...q, method: 'gptq' }, calibration }), {
    out: outC,
    calibration: cached,
  });
  const xs = input([1, 2, 64], 5);
  assert.deepEqual((await runOrt(outC, { x: xs })).y, (await runOrt(outG, { x: xs })).y);
  assert.ok(
    res.layers.every((l) => l.actions.some((a) => a.endsWith('gptq'))),
    JSON.stringify(res.layers),
  );
  assert.deepEqual(res.calibration, { samples: 8, source: 'gaussian' });
  const x = input([4, 32, 64], 99);
  const fp32 = (await reference(file, { x })).y.data;
  const refG = (await reference(outG, { x })).y.data;
  assert.ok(relMaxDiff((await runOrt(outG, { x })).y, refG) < 1e-5);
  const eR = relL2((await reference(outR, { x })).y.data, fp32);
  const eG = relL2(refG, fp32);
  assert.ok(eG < eR, `gptq ${eG} vs rtn ${eR}`);
});

test('N:M sparsity holds exactly and the pruned model runs', async () => {
  const dir = tempDir();
  const file = await writeTinyModel(dir, { hidden: 64, intermediate: 96, layers: 1 });
  for (const pattern of ['2:4', '1:4', '4:8']) {
    const [n, m] = pattern.split(':').map(Number);
    const out = path.join(dir, `nm-${n}-${m}.onnx`);
    const res = await compressModel(
      recipeFor(file, { sparsity: { method: 'magnitude', rules: [{ match: '**', pattern }] } }),
      { out },
    );
    assert.ok(res.layers.every((l) => l.actions[0] === `sparsity ${pattern} magnitude`));
    const mm = await readModel(out);
    for (const t of mm.proto.graph!.initializer!) {
      const [K, N] = t.dims!.map(Number);
      const w = await readTensorFloat32(t, mm.baseDir);
      for (let col = 0; col < N; col++)
        for (let k0 = 0; k0 < K; k0 += m) {
          let nz = 0;
          for (let j = 0; j < m; j++) if (w[(k0 + j) * N + col] !== 0) nz++;
          assert.equal(nz, n, `${t.name} column ${col} group ${k0}`);
        }
    }
    const x = input([2, 5, 64], 1);
    assert.ok(relMaxDiff((await runOrt(out, { x })).y, (await reference(out, { x })).y.data) < 1e-5);
  }
});

test('Wanda has lower output error than magnitude pruning at equal sparsity', () => {
  const K = 64,
    N = 32,
    rows = 300;
  const x = activations(rows, K, 8);
  const sq = new Float64Array(K);
  for (let r = 0; r < rows; r++) for (let k = 0; k < K; k++) sq[k] += x[r * K + k] ** 2;
  const norms = sq.map(Math.sqrt);
  const w = randn(K * N, 23, 0.1);
  for (const rule of [{ ratio: 0.5 }, { n: 2, m: 4 }]) {
    const mag = Float32Array.from(w);
    const wan = Float32Array.from(w);
    const a = prune(mag, K, N, rule);
    const b = prune(wan, K, N, rule, norms);
    assert.equal(a.zeroed, b.zeroed, 'equal sparsity');
    assert.equal(a.zeroed, (K * N) / 2);
    const eM = outputError(x, rows, K, N, w, mag);
    const eW = outputError(x, rows, K, N, w, wan);
    assert.ok(eW < 0.9 * eM, `${JSON.stringify(rule)}: wanda ${eW} vs magnitude ${eM}`);
  }
});

test('Wanda and unstructured sparsity through the pipeline', async () => {
  const dir = tempDir();
  const file = await writeTinyModel(dir, { hidden: 64, intermediate: 96, layers: 1 });
  const out = path.join(dir, 'wanda.onnx');
  const res = await compressModel(
    recipeFor(file, {
      sparsity: { method: 'wanda', rules: [{ match: '**', ratio: 0.25 }] },
      calibration: { samples: 4, seq_len: 16 },
    }),
    { out },
  );
  assert.deepEqual(
    res.layers.map((l) => l.actions),
    [['sparsity 25% wanda'], ['sparsity 25% wanda']],
  );
  const mm = await readModel(out);
  for (const t of mm.proto.graph!.initializer!) {
    const w = await readTensorFloat32(t, mm.baseDir);
    const zeros = w.filter((v) => v === 0).length;
    assert.equal(zeros, Math.round(0.25 * Number(t.dims![0])) * Number(t.dims![1]));
  }
});

test('low rank: error falls with rank and equals the SVD tail', () => {
  const K = 40,
    N = 56;
  // A matrix with a known decaying spectrum plus noise.
  const u = gaussian(K * 12, 1),
    v = gaussian(12 * N, 2);
  for (let i = 0; i < 12; i++) for (let n = 0; n < N; n++) v[i * N + n] /= (1 + i) ** 1.5;
  const base = matmul(u, v, K, 12, N);
  const noise = gaussian(K * N, 3);
  const w = Float32Array.from(base, (b, i) => b + 0.01 * noise[i]);
  const sig = singularValues(w, K, N);
  let prev = Infinity;
  for (const r of [1, 2, 4, 8, 16]) {
    const tail = sig.slice(r).reduce((s, x) => s + x * x, 0);
    const ex = lowRank(w, K, N, r, { method: 'svd' });
    assert.ok(Math.abs(ex.sqErr - tail) <= 1e-4 * ex.sqNorm + 1e-3 * tail, `exact r=${r}: ${ex.sqErr} vs tail ${tail}`);
    const rnd = lowRank(w, K, N, r, { method: 'randomized_svd' });
    assert.ok(rnd.sqErr <= tail * 1.05 + 1e-4 * rnd.sqNorm, `randomized r=${r}: ${rnd.sqErr} vs tail ${tail}`);
    assert.ok(ex.sqErr < prev);
    prev = ex.sqErr;
  }
});

test('low rank in the pipeline: two MatMuls, quantized factors when they fit the block', async () => {
  const dir = tempDir();
  const file = await writeTinyModel(dir, { hidden: 64, intermediate: 128, layers: 1 });
  const x = input([2, 3, 64], 4);
  const outF = path.join(dir, 'lr.onnx');
  const r1 = await compressModel(recipeFor(file, { low_rank: { method: 'svd', rules: [{ match: '**', rank: 32 }] } }), {
    out: outF,
  });
  assert.deepEqual(r1.layers[0].actions, ['lowrank r=32 svd']);
  const m1 = await readModel(outF);
  assert.equal(m1.proto.graph!.node!.filter((n) => n.opType === 'MatMul').length, 4);
  assert.ok(relMaxDiff((await runOrt(outF, { x })).y, (await reference(outF, { x })).y.data) < 1e-5);

  const outQ = path.join(dir, 'lrq.onnx');
  const r2 = await compressModel(
    recipeFor(file, {
      low_rank: { rules: [{ match: '**', rank: 32 }] },
      quantize: { bits: 4, block_size: 32 },
    }),
    { out: outQ },
  );
  assert.deepEqual(r2.layers[0].actions, ['lowrank r=32 randomized_svd', 'int4 b32 sym rtn']);
  const m2 = await readModel(outQ);
  assert.equal(m2.proto.graph!.node!.filter((n) => n.opType === 'MatMulNBits').length, 4);
  assert.ok(relMaxDiff((await runOrt(outQ, { x })).y, (await reference(outQ, { x })).y.data) < 1e-5);
  // Reported error is the whole layer's: worse than low rank alone.
  assert.ok(r2.layers[0].relError! > r1.layers[0].relError!);

  const outO = path.join(dir, 'lro.onnx');
  const r3 = await compressModel(
    recipeFor(file, {
      low_rank: { rules: [{ match: '**', rank: 24 }] },
      quantize: { bits: 4, block_size: 32 },
    }),
    { out: outO },
  );
  assert.ok(
    r3.layers[0].actions.includes('factor K=24 kept in float (not a multiple of block 32)'),
    JSON.stringify(r3.layers[0]),
  );
  assert.ok(relMaxDiff((await runOrt(outO, { x })).y, (await reference(outO, { x })).y.data) < 1e-5);
});

test('8-bit activations: dynamic (MatMulInteger) and static (QDQ) run and match their reference', async () => {
  const dir = tempDir();
  const file = await writeTinyModel(dir, { hidden: 64, intermediate: 96, layers: 2 });
  const x = input([2, 8, 64], 12);
  const fp32 = (await reference(file, { x })).y.data;
  for (const acts of ['dynamic', 'static'] as const) {
    const out = path.join(dir, `a8-${acts}.onnx`);
    const recipe = recipeFor(file, {
      quantize: { bits: 8, activations: acts, overrides: [{ match: 'model.layers.1.mlp.down_proj', skip: true }] },
      calibration: { samples: 4, seq_len: 16 },
    });
    const wtype = int8Saturates() ? 'uint8' : 'int8';
    assert.equal(
      recipe.quantize!.weight_type,
      wtype,
      "uint8 weights by default where this CPU's u8×s8 kernels saturate",
    );
    const res = await compressModel(recipe, { out });
    assert.deepEqual(
      res.layers.map((l) => l.name),
      ['model.layers.0.mlp.up_proj', 'model.layers.0.mlp.down_proj', 'model.layers.1.mlp.up_proj'],
    );
    assert.ok(res.layers.every((l) => l.actions[0] === `w8a8 ${acts} ${wtype} per-channel rtn`));
    const m = await readModel(out);
    const ops = m.proto.graph!.node!.map((n) => n.opType);
    if (acts === 'dynamic') {
      // One DynamicQuantizeLinear per distinct input tensor.
      assert.equal(ops.filter((o) => o === 'DynamicQuantizeLinear').length, 3);
      assert.equal(ops.filter((o) => o === 'MatMulInteger').length, 3);
    } else {
      assert.equal(ops.filter((o) => o === 'QuantizeLinear').length, 3);
    }
    assert.equal(
      ops.filter((o) => o === 'MatMul').length,
      acts === 'static' ? 4 : 1,
      'the skipped layer stays a float MatMul',
    );
    const ref = (await reference(out, { x })).y.data;
    const got = (await runOrt(out, { x })).y;
    assert.ok(relMaxDiff(got, ref) < 2e-3, `${acts}: ${relMaxDiff(got, ref)}`);
    assert.ok(relL2(ref, fp32) < 0.05, `${acts} vs fp32 ${relL2(ref, fp32)}`);
  }
});

test('calibration reduces inside onnxruntime (opset ≥ 13) and in JS (older models) to equal statistics', async () => {
  const dir = tempDir();
  const stats = [];
  for (const opset of [17, 12]) {
    const m = tinyMlpModel({ hidden: 32, intermediate: 48, layers: 1 });
    m.opsetImport[0].version = opset;
    const file = path.join(dir, `m${opset}.onnx`);
    await writeModel(m, file);
    const lm = await readModel(file);
    const needs = new Map([
      ['x', { K: 32, hessian: true, norms: true, range: true }],
      ['/model/layers.0/mlp/act/Relu_output_0', { K: 48, hessian: false, norms: true, range: true }],
    ]);
    stats.push(await calibrate(lm, needs, { samples: 3, seq_len: 8 }));
  }
  const [a, b] = stats;
  for (const t of ['x', '/model/layers.0/mlp/act/Relu_output_0']) {
    const sa = a.inputs.get(t)!,
      sb = b.inputs.get(t)!;
    assert.equal(sa.rows, 24);
    assert.equal(sa.rows, sb.rows);
    assert.equal(sa.min, sb.min);
    assert.equal(sa.max, sb.max);
    assert.ok(relL2(sa.sqSum!, sb.sqSum!) < 1e-6);
    if (sa.xtx) assert.ok(relL2(sa.xtx, sb.xtx!) < 1e-6);
  }
});
