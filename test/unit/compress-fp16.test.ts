// Sources as exports ship them: fp16 and bf16 weights, inline or in external data (one file or
// several), quantized slice by slice; the result must match the fp32 twin of the same model within the
// scales' rounding, and a weight type that cannot be compressed is refused naming the tensor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { compressModel } from '../../server/src/compress/pipeline';
import {
  DataType,
  onnx,
  readModel,
  readTensorBytes,
  readTensorFloat32,
  tensorDims,
  writeModel,
} from '../../server/src/model/onnx';
import { floatType } from '../../server/src/model/floatTypes';
import { node, valueInfo, model } from '../../server/src/model/build';
import { synthesizeDecoder } from '../../server/src/model/synth';
import { architectureFromConfig } from '../../server/src/config/hfConfig';
import { randn, tempDir } from '../helpers/tinyModel';
import { recipeFor, unpackNBits, T64 } from './compress-helpers';

const dir = tempDir('haqa-fp16-');
const K = 64;
const N = 48;
const LAYERS = 3;

/** Weights of the chain, rounded to `dt` so the fp32 twin holds exactly the same values. */
function weights(dt: number): Float32Array[] {
  const ft = floatType(dt)!;
  return Array.from({ length: LAYERS }, (_, i) => {
    const w = randn(K * N, 11 + i, 0.05);
    const out = new Float32Array(w.length);
    ft.decode(new Uint8Array(ft.encode(w).buffer), w.length, out);
    return out;
  });
}

/**
 * A MatMul chain [K]→[N]→… (the layers are named like a decoder's so the recipe's defaults pick them),
 * stored as `stored`, from values rounded to `round`. `files`: 0 inline, 1 one data file, 2 one per layer.
 */
function chain(file: string, stored: number, round: number, files: 0 | 1 | 2): void {
  const ft = floatType(stored)!;
  const ws = weights(round);
  const inits: onnx.ITensorProto[] = [];
  const nodes: onnx.INodeProto[] = [];
  const dataOffsets = new Map<string, number>();
  fs.mkdirSync(path.dirname(file), { recursive: true });
  let x = 'x';
  for (let i = 0; i < LAYERS; i++) {
    const name = `model.layers.${i}.mlp.down_proj.weight`;
    const dims = i === 0 ? [K, N] : [N, N];
    const w = i === 0 ? ws[i] : ws[i].subarray(0, N * N);
    const bytes = new Uint8Array(ft.encode(w).buffer);
    if (files === 0) {
      inits.push(onnx.TensorProto.create({ name, dataType: stored, dims, rawData: bytes }));
    } else {
      const loc = files === 1 ? 'weights.bin' : `w${i}.bin`;
      const at = dataOffsets.get(loc) ?? 0;
      fs.appendFileSync(path.join(path.dirname(file), loc), bytes);
      dataOffsets.set(loc, at + bytes.length);
      inits.push(
        onnx.TensorProto.create({
          name,
          dataType: stored,
          dims,
          dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
          externalData: [
            { key: 'location', value: loc },
            { key: 'offset', value: String(at) },
            { key: 'length', value: String(bytes.length) },
          ],
        }),
      );
    }
    const y = i === LAYERS - 1 ? 'y' : `h${i}`;
    nodes.push(node('MatMul', [x, name], [y], { name: `/model/layers.${i}/mlp/down_proj/MatMul` }));
    x = y;
  }
  const m = model({
    name: 'chain',
    node: nodes,
    initializer: inits as onnx.TensorProto[],
    input: [valueInfo('x', stored, ['batch', K])],
    output: [valueInfo('y', stored, ['batch', N])],
  });
  fs.writeFileSync(file, onnx.ModelProto.encode(m).finish());
}

async function t64(t: onnx.ITensorProto, baseDir: string): Promise<T64> {
  return { data: Float64Array.from(await readTensorFloat32WithInts(t, baseDir)), dims: tensorDims(t) };
}
async function readTensorFloat32WithInts(t: onnx.ITensorProto, baseDir: string): Promise<ArrayLike<number>> {
  if (t.dataType === DataType.UINT8) return readTensorBytes(t, baseDir);
  return readTensorFloat32(t, baseDir);
}

/** The dequantized weight of every MatMulNBits in `file`, in node order, and its scales' type. */
async function dequantized(file: string): Promise<{ W: Float64Array; scaleType: number }[]> {
  const m = await readModel(file);
  const g = m.proto.graph!;
  const init = new Map((g.initializer ?? []).map((t) => [t.name!, t]));
  const out: { W: Float64Array; scaleType: number }[] = [];
  for (const n of g.node ?? []) {
    if (n.opType !== 'MatMulNBits') continue;
    const a = (k: string) => Number((n.attribute ?? []).find((x) => x.name === k)!.i);
    const [b, s, z] = [1, 2, 3].map((i) => (n.input![i] ? init.get(n.input![i]) : undefined));
    const W = unpackNBits(
      await t64(b!, m.baseDir),
      await t64(s!, m.baseDir),
      z ? await t64(z, m.baseDir) : undefined,
      a('K'),
      a('N'),
      a('bits'),
      a('block_size'),
    );
    out.push({ W, scaleType: s!.dataType! });
  }
  return out;
}

const RECIPE = { quantize: { bits: 4, block_size: 32, symmetric: false } };

for (const [label, dt, tol] of [
  ['fp16', DataType.FLOAT16, 2 ** -10],
  ['bf16', DataType.BFLOAT16, 2 ** -7],
] as const) {
  for (const files of [0, 1, 2] as const) {
    const where = files === 0 ? 'inline' : files === 1 ? 'one external data file' : 'one external data file per tensor';
    test(`a ${label} source (${where}) quantizes like its fp32 twin, within scales' ${label} rounding`, async () => {
      const sub = path.join(dir, `${label}-${files}`);
      const src16 = path.join(sub, 'm16', 'model.onnx');
      const src32 = path.join(sub, 'm32', 'model.onnx');
      chain(src16, dt, dt, files);
      chain(src32, DataType.FLOAT, dt, files);
      // Tiny slices: every streamed layer is read and converted in several pieces.
      const chunkBytes = 16 * N * 4;
      const r16 = await compressModel(recipeFor(src16, RECIPE), { out: path.join(sub, 'q16.onnx'), chunkBytes });
      const r32 = await compressModel(recipeFor(src32, RECIPE), { out: path.join(sub, 'q32.onnx'), chunkBytes });
      assert.equal(
        r16.layers.filter((l) => l.actions.some((a) => a.startsWith('int4'))).length,
        LAYERS,
        JSON.stringify(r16.layers),
      );
      const d16 = await dequantized(r16.out);
      const d32 = await dequantized(r32.out);
      assert.equal(d16.length, LAYERS);
      for (let i = 0; i < LAYERS; i++) {
        assert.equal(d16[i].scaleType, dt, "scales are in the source type (MatMulNBits T1 is the activations' type)");
        assert.equal(d32[i].scaleType, DataType.FLOAT);
        let maxAbs = 0;
        let maxDiff = 0;
        for (let j = 0; j < d32[i].W.length; j++) {
          maxAbs = Math.max(maxAbs, Math.abs(d32[i].W[j]));
          maxDiff = Math.max(maxDiff, Math.abs(d16[i].W[j] - d32[i].W[j]));
        }
        assert.ok(maxAbs > 0);
        assert.ok(maxDiff <= tol * maxAbs, `layer ${i}: max |Ŵ16 − Ŵ32| = ${maxDiff}, over ${tol} × ${maxAbs}`);
      }
      assert.ok(
        Math.abs((r16.relError ?? 1) - (r32.relError ?? 0)) < 1e-2,
        `relError ${r16.relError} vs ${r32.relError}`,
      );
    });
  }
}

test('a weight type that cannot be compressed is refused, naming the layer and the tensor', async () => {
  const sub = path.join(dir, 'double');
  fs.mkdirSync(sub, { recursive: true });
  const file = path.join(sub, 'model.onnx');
  const w = Float64Array.from(randn(K * N, 5));
  const m = model({
    name: 'd',
    node: [
      node('MatMul', ['x', 'model.layers.0.mlp.down_proj.weight'], ['y'], {
        name: '/model/layers.0/mlp/down_proj/MatMul',
      }),
    ],
    initializer: [
      onnx.TensorProto.create({
        name: 'model.layers.0.mlp.down_proj.weight',
        dataType: DataType.DOUBLE,
        dims: [K, N],
        rawData: new Uint8Array(w.buffer),
      }),
    ],
    input: [valueInfo('x', DataType.DOUBLE, ['batch', K])],
    output: [valueInfo('y', DataType.DOUBLE, ['batch', N])],
  });
  await writeModel(m, file);
  await assert.rejects(
    compressModel(recipeFor(file, RECIPE), { out: path.join(sub, 'q.onnx') }),
    /model\.layers\.0\.mlp\.down_proj.*DOUBLE.*FLOAT, FLOAT16 and BFLOAT16/,
  );
});

test("haqa synth --dtype fp16|bf16: the fp32 model's draws, rounded to the type, in a graph of that type", async () => {
  const arch = architectureFromConfig({
    model_type: 'llama',
    hidden_size: 32,
    intermediate_size: 48,
    num_hidden_layers: 1,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    vocab_size: 50,
    max_position_embeddings: 64,
  });
  const r32 = await synthesizeDecoder(arch, { out: path.join(dir, 'synth32', 'model.onnx'), seed: 3 });
  const m32 = await readModel(r32.out);
  for (const [dtype, dt] of [
    ['fp16', DataType.FLOAT16],
    ['bf16', DataType.BFLOAT16],
  ] as const) {
    const r = await synthesizeDecoder(arch, {
      out: path.join(dir, `synth-${dtype}`, 'model.onnx'),
      seed: 3,
      dtype,
      externalData: true,
    });
    assert.ok(r.dataFile);
    const m = await readModel(r.out);
    const g = m.proto.graph!;
    assert.equal(g.output![0].type!.tensorType!.elemType, dt, 'logits in the type');
    const ft = floatType(dt)!;
    for (const t of g.initializer ?? []) {
      assert.equal(t.dataType, dt, t.name!);
      const t32 = m32.proto.graph!.initializer!.find((u) => u.name === t.name)!;
      const want = ft.encode(await readTensorFloat32(t32, m32.baseDir));
      const got = new Uint16Array(new Uint8Array(await readTensorBytes(t, m.baseDir)).buffer);
      assert.deepEqual(got, want, t.name!);
    }
    const q = await compressModel(recipeFor(r.out, RECIPE), { out: path.join(dir, `synth-${dtype}`, 'q.onnx') });
    assert.ok(
      q.layers.filter((l) => l.actions.some((a) => a.startsWith('int4'))).length >= 7,
      JSON.stringify(q.layers),
    );
  }
});
