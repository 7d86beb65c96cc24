// Shared by the compress-* tests: recipes, a float64 interpreter for the ops compressed graphs use
// (independent of the engine: it unpacks MatMulNBits bytes itself), and small model builders.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { resolveRecipe, Recipe } from '../../server/src/config/recipe';
import { DataType, makeTensor, onnx, readModel, readTensorBytes, tensorDims, num } from '../../server/src/model/onnx';
import { node, valueInfo, model } from '../../server/src/model/build';
import { randn } from '../helpers/tinyModel';

/* eslint-disable @typescript-eslint/no-explicit-any */
export function recipeFor(modelPath: string, doc: Record<string, any>): Recipe {
  return resolveRecipe({ model: path.basename(modelPath), ...doc }, path.join(path.dirname(modelPath), 'haqa.yaml'));
}

export interface T64 {
  data: Float64Array;
  dims: number[];
}

function tensorValue(t: onnx.ITensorProto, bytes: Uint8Array): T64 {
  const dims = tensorDims(t);
  const n = dims.reduce((a, b) => a * b, 1);
  const b = new Uint8Array(bytes); // aligned copy
  const dt = t.dataType;
  let src: ArrayLike<number>;
  if (dt === DataType.FLOAT) src = new Float32Array(b.buffer, 0, n);
  else if (dt === DataType.UINT8) src = b;
  else if (dt === DataType.INT8) src = new Int8Array(b.buffer, 0, n);
  else if (dt === DataType.INT32) src = new Int32Array(b.buffer, 0, n);
  else if (dt === DataType.INT64) src = Array.from(new BigInt64Array(b.buffer, 0, n), Number);
  else throw new Error(`reference: tensor type ${dt}`);
  return { data: Float64Array.from(src), dims };
}

/** Unpack MatMulNBits B / scales / zero_points into W [K, N] (float64), straight from the spec. */
export function unpackNBits(
  B: T64,
  scales: T64,
  zp: T64 | undefined,
  K: number,
  N: number,
  bits: number,
  bs: number,
): Float64Array {
  const nb = Math.ceil(K / bs);
  const blob = (bs * bits) / 8;
  const zpRow = Math.ceil((nb * bits) / 8);
  const W = new Float64Array(K * N);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const b = Math.floor(k / bs);
      const j = k % bs;
      const byte = B.data[n * nb * blob + b * blob + Math.floor((j * bits) / 8)];
      const code = (byte >> ((j * bits) % 8)) & ((1 << bits) - 1);
      let z = 1 << (bits - 1);
      if (zp) z = (zp.data[n * zpRow + Math.floor((b * bits) / 8)] >> ((b * bits) % 8)) & ((1 << bits) - 1);
      W[k * N + n] = (code - z) * scales.data[n * nb + b];
    }
  }
  return W;
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function matmul(a: T64, b: T64): T64 {
  const K = a.dims[a.dims.length - 1];
  const N = b.dims[1];
  const M = a.data.length / K;
  const out = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let k = 0; k < K; k++) {
      const v = a.data[i * K + k];
      if (v) for (let j = 0; j < N; j++) out[i * N + j] += v * b.data[k * N + j];
    }
  return { data: out, dims: [...a.dims.slice(0, -1), N] };
}

function broadcast2(a: T64, b: T64, f: (x: number, y: number) => number): T64 {
  const big = a.data.length >= b.data.length ? a : b;
  const out = new Float64Array(big.data.length);
  for (let i = 0; i < out.length; i++) out[i] = f(a.data[i % a.data.length], b.data[i % b.data.length]);
  return { data: out, dims: big.dims };
}

/** Run a graph in float64. Supports the ops our tests' models and the compressor emit. */
export async function reference(file: string, feeds: Record<string, T64>): Promise<Record<string, T64>> {
  const m = await readModel(file);
  const g = m.proto.graph!;
  const env = new Map<string, T64>(Object.entries(feeds));
  for (const t of g.initializer ?? []) env.set(t.name!, tensorValue(t, await readTensorBytes(t, m.baseDir)));
  const attrI = (n: onnx.INodeProto, k: string, d: number) => {
    const a = (n.attribute ?? []).find((x) => x.name === k);
    return a ? num(a.i as never) : d;
  };
  const attrF = (n: onnx.INodeProto, k: string, d: number) => (n.attribute ?? []).find((x) => x.name === k)?.f ?? d;
  for (const n of g.node ?? []) {
    const ins = (n.input ?? []).map((i) => (i ? env.get(i) : undefined));
    const op = n.opType;
    let outs: T64[];
    if (op === 'MatMul') outs = [matmul(ins[0]!, ins[1]!)];
    else if (op === 'MatMulNBits') {
      const K = attrI(n, 'K', 0),
        N = attrI(n, 'N', 0);
      const W = unpackNBits(ins[1]!, ins[2]!, ins[3], K, N, attrI(n, 'bits', 4), attrI(n, 'block_size', 0));
      outs = [matmul(ins[0]!, { data: W, dims: [K, N] })];
    } else if (op === 'Gemm') {
      const B = ins[1]!;
      let W = B;
      if (attrI(n, 'transB', 0)) {
        const [N, K] = B.dims;
        const d = new Float64Array(K * N);
        for (let i = 0; i < N; i++) for (let j = 0; j < K; j++) d[j * N + i] = B.data[i * K + j];
        W = { data: d, dims: [K, N] };
      }
      let y = matmul(ins[0]!, W);
      const alpha = attrF(n, 'alpha', 1),
        beta = attrF(n, 'beta', 1);
      y = { data: y.data.map((v) => v * alpha), dims: y.dims };
      if (ins[2]) y = broadcast2(y, { data: ins[2].data.map((v) => v * beta), dims: ins[2].dims }, (a, b) => a + b);
      outs = [y];
    } else if (op === 'Relu') outs = [{ data: ins[0]!.data.map((v) => Math.max(v, 0)), dims: ins[0]!.dims }];
    else if (op === 'Tanh') outs = [{ data: ins[0]!.data.map(Math.tanh), dims: ins[0]!.dims }];
    else if (op === 'Add') outs = [broadcast2(ins[0]!, ins[1]!, (a, b) => a + b)];
    else if (op === 'Mul') outs = [broadcast2(ins[0]!, ins[1]!, (a, b) => a * b)];
    else if (op === 'Cast') outs = [ins[0]!];
    else if (op === 'DynamicQuantizeLinear') {
      const x = ins[0]!;
      let mn = 0,
        mx = 0;
      for (const v of x.data) {
        mn = Math.min(mn, Math.fround(v));
        mx = Math.max(mx, Math.fround(v));
      }
      const scale = Math.fround((mx - mn) / 255);
      const zp = Math.max(0, Math.min(255, roundHalfEven(Math.fround(-mn / scale))));
      const q = x.data.map((v) => Math.max(0, Math.min(255, roundHalfEven(Math.fround(v / scale)) + zp)));
      outs = [
        { data: q, dims: x.dims },
        { data: Float64Array.of(scale), dims: [] },
        { data: Float64Array.of(zp), dims: [] },
      ];
    } else if (op === 'MatMulInteger') {
      const a = ins[0]!,
        b = ins[1]!;
      const az = ins[2] ? ins[2].data[0] : 0;
      const N = b.dims[1];
      const bz = ins[3] ?? { data: new Float64Array(N), dims: [N] };
      const A = { data: a.data.map((v) => v - az), dims: a.dims };
      const B = { data: b.data.map((v, i) => v - bz.data[bz.data.length === 1 ? 0 : i % N]), dims: b.dims };
      outs = [matmul(A, B)];
    } else if (op === 'QuantizeLinear') {
      const s = ins[1]!.data[0],
        z = ins[2]!.data[0];
      outs = [
        {
          data: ins[0]!.data.map((v) => Math.max(0, Math.min(255, roundHalfEven(Math.fround(v / s)) + z))),
          dims: ins[0]!.dims,
        },
      ];
    } else if (op === 'DequantizeLinear') {
      const x = ins[0]!,
        s = ins[1]!,
        z = ins[2];
      const axis = attrI(n, 'axis', 1);
      if (s.data.length === 1)
        outs = [{ data: x.data.map((v) => (v - (z ? z.data[0] : 0)) * s.data[0]), dims: x.dims }];
      else {
        const N = x.dims[1];
        if (axis !== 1) throw new Error('reference: per-channel DQ axis');
        outs = [{ data: x.data.map((v, i) => (v - (z ? z.data[i % N] : 0)) * s.data[i % N]), dims: x.dims }];
      }
    } else throw new Error(`reference: op ${op}`);
    (n.output ?? []).forEach((o, i) => env.set(o, outs[i]));
  }
  return Object.fromEntries((g.output ?? []).map((o) => [o.name!, env.get(o.name!)!]));
}

export async function runOrt(file: string, feeds: Record<string, T64>): Promise<Record<string, Float32Array>> {
  const s = await ort.InferenceSession.create(file, { intraOpNumThreads: 1 });
  const f: Record<string, ort.Tensor> = {};
  for (const [k, v] of Object.entries(feeds)) f[k] = new ort.Tensor('float32', Float32Array.from(v.data), v.dims);
  const r = await s.run(f);
  await s.release();
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.data as Float32Array]));
}

export function input(dims: number[], seed: number, std = 1): T64 {
  const n = dims.reduce((a, b) => a * b, 1);
  return { data: Float64Array.from(randn(n, seed, std)), dims };
}

/** max |a − b| / max |b|. */
export function relMaxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0,
    m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / (m || 1);
}

/** ‖a − b‖ / ‖b‖. */
export function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0,
    m = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i] - b[i]) ** 2;
    m += b[i] ** 2;
  }
  return Math.sqrt(d / (m || 1));
}

/**
 * y = Gemm(x, W[N,K] (transB=1), bias[N]) → Tanh → MatMul(·, W2[N,N]); plus a pass-through MatMul of two activations.
 */
export function gemmModel(K: number, N: number, seed = 3, alpha = 0.5): onnx.ModelProto {
  return model({
    name: 'gemm',
    node: [
      node('Gemm', ['x', 'fc.weight', 'fc.bias'], ['h'], {
        name: '/fc/Gemm',
        attrs: { transB: 1, alpha: { float: alpha }, beta: { float: 2 } },
      }),
      node('Tanh', ['h'], ['t'], { name: '/act/Tanh' }),
      node('MatMul', ['t', 'out.weight'], ['y'], { name: '/out/MatMul' }),
    ],
    input: [valueInfo('x', DataType.FLOAT, ['batch', K])],
    output: [valueInfo('y', DataType.FLOAT, ['batch', N])],
    initializer: [
      makeTensor('fc.weight', DataType.FLOAT, [N, K], randn(N * K, seed, 0.1)),
      makeTensor('fc.bias', DataType.FLOAT, [N], randn(N, seed + 1, 0.1)),
      makeTensor('out.weight', DataType.FLOAT, [N, N], randn(N * N, seed + 2, 0.1)),
    ],
  });
}

export function listDir(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}
