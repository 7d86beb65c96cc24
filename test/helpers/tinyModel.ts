// A tiny Llama-shaped MLP stack that tests build in memory: named like an Optimum export
// (`/model/layers.0/mlp/up_proj/MatMul`, initializer `model.layers.0.mlp.up_proj.weight`), with random
// weights from a seeded generator. Input `x` [batch, seq, hidden], output `y`.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataType, makeTensor, writeModel, onnx } from '../../server/src/model/onnx';
import { node, valueInfo, model } from '../../server/src/model/build';

export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
}

export function randn(n: number, seed: number, std = 0.05): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(r(), 1e-12),
      v = r();
    const m = Math.sqrt(-2 * Math.log(u)) * std;
    out[i] = m * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = m * Math.sin(2 * Math.PI * v);
  }
  return out;
}

export interface TinySpec {
  hidden: number;
  intermediate: number;
  layers: number;
  seed?: number;
}

/** y = x + Σ_layers down(relu(up(x))) — small, but every MatMul is a real compressible layer. */
export function tinyMlpModel(spec: TinySpec = { hidden: 64, intermediate: 128, layers: 2 }): onnx.ModelProto {
  const { hidden: H, intermediate: I, layers: L } = spec;
  const seed = spec.seed ?? 1;
  const nodes: onnx.NodeProto[] = [];
  const inits: onnx.TensorProto[] = [];
  let x = 'x';
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}.mlp`;
    const s = `/model/layers.${i}/mlp`;
    inits.push(makeTensor(`${p}.up_proj.weight`, DataType.FLOAT, [H, I], randn(H * I, seed * 100 + i * 2)));
    inits.push(makeTensor(`${p}.down_proj.weight`, DataType.FLOAT, [I, H], randn(I * H, seed * 100 + i * 2 + 1)));
    nodes.push(
      node('MatMul', [x, `${p}.up_proj.weight`], [`${s}/up_proj/MatMul_output_0`], { name: `${s}/up_proj/MatMul` }),
    );
    nodes.push(node('Relu', [`${s}/up_proj/MatMul_output_0`], [`${s}/act/Relu_output_0`], { name: `${s}/act/Relu` }));
    nodes.push(
      node('MatMul', [`${s}/act/Relu_output_0`, `${p}.down_proj.weight`], [`${s}/down_proj/MatMul_output_0`], {
        name: `${s}/down_proj/MatMul`,
      }),
    );
    const out = i === L - 1 ? 'y' : `/model/layers.${i}/Add_output_0`;
    nodes.push(node('Add', [x, `${s}/down_proj/MatMul_output_0`], [out], { name: `/model/layers.${i}/Add` }));
    x = out;
  }
  return model({
    name: 'tiny-mlp',
    node: nodes,
    input: [valueInfo('x', DataType.FLOAT, ['batch', 'sequence', H])],
    output: [valueInfo('y', DataType.FLOAT, ['batch', 'sequence', H])],
    initializer: inits,
  });
}

/** A fresh temporary folder, removed when the process exits. */
export function tempDir(prefix = 'haqa-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export async function writeTinyModel(dir: string, spec?: TinySpec, name = 'model.onnx'): Promise<string> {
  const file = path.join(dir, name);
  await writeModel(tinyMlpModel(spec), file);
  return file;
}
