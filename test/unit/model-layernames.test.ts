// Layer names from real export naming: weight initializers, graph structure and node scopes together.
// The graphs are built the way torch.onnx and Optimum name them, small and runnable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { DataType, makeTensor, writeModel, onnx } from '../../server/src/model/onnx';
import { node, valueInfo, model } from '../../server/src/model/build';
import { inspectModel } from '../../server/src/model/graph';
import { normalizeScopeName, stripDedupSuffix } from '../../server/src/model/layerNames';
import { familyById } from '../../server/src/config/families';
import { layerIndex } from '../../server/src/config/layers';
import { compressModel } from '../../server/src/compress/pipeline';
import { recipeFor } from './compress-helpers';
import { randn, tempDir } from '../helpers/tinyModel';

interface Proj {
  node: string;
  weight: string;
  K: number;
  N: number;
}

/**
 * input_ids → Gather(embedding) → the projections in order (each MatMul, plus a residual-free chain) →
 * the head → logits. `head.transposedCopy`: the exporter stored the tied head as its own transposed
 * initializer (`onnx::MatMul_900`), as torch.onnx does when it folds the Transpose of a tied weight.
 */
function exportLike(
  embedName: string,
  H: number,
  V: number,
  projs: Proj[],
  head: { node: string; weight?: string; gemm?: boolean },
): onnx.ModelProto {
  const nodes: onnx.NodeProto[] = [];
  const inits: onnx.TensorProto[] = [makeTensor(embedName, DataType.FLOAT, [V, H], randn(V * H, 1))];
  nodes.push(
    node('Gather', [embedName, 'input_ids'], ['emb'], { name: '/transformer/wte/Gather', attrs: { axis: 0 } }),
  );
  let x = 'emb';
  projs.forEach((p, i) => {
    inits.push(makeTensor(p.weight, DataType.FLOAT, [p.K, p.N], randn(p.K * p.N, 10 + i)));
    nodes.push(node('MatMul', [x, p.weight], [`h${i}`], { name: p.node }));
    x = `h${i}`;
  });
  if (head.gemm) {
    // Optimum's tied head: Gemm(transB) straight over the embedding, on [B*S, H].
    nodes.push(node('Reshape', [x, 'flat_shape'], ['flat'], { name: '/Reshape_3' }));
    inits.push(makeTensor('flat_shape', DataType.INT64, [2], BigInt64Array.from([-1n, BigInt(H)])));
    nodes.push(node('Gemm', ['flat', embedName], ['logits2d'], { name: head.node, attrs: { transB: 1 } }));
    nodes.push(node('Reshape', ['logits2d', 'out_shape'], ['logits'], { name: '/Reshape_4' }));
    inits.push(makeTensor('out_shape', DataType.INT64, [3], BigInt64Array.from([1n, -1n, BigInt(V)])));
  } else {
    const w = head.weight!;
    inits.push(makeTensor(w, DataType.FLOAT, [H, V], randn(H * V, 99)));
    nodes.push(node('MatMul', [x, w], ['logits'], { name: head.node }));
  }
  return model(
    {
      name: 'export',
      node: nodes,
      initializer: inits,
      input: [valueInfo('input_ids', DataType.INT64, [1, 'sequence_length'])],
      output: [valueInfo('logits', DataType.FLOAT, [1, 'sequence_length', V])],
    },
    { producer: 'pytorch' },
  );
}

const H = 32,
  V = 64;
/** GPT-2 traced so that the scopes skip `attn`/`mlp` (the parent's forward calls the submodules). */
function gpt2Traced(): onnx.ModelProto {
  const p: Proj[] = [];
  for (let i = 0; i < 2; i++) {
    const m = `transformer.h.${i}`;
    p.push({ node: `/h.${i}/c_attn/MatMul`, weight: `${m}.attn.c_attn.weight`, K: H, N: 3 * H });
    p.push({ node: `/h.${i}/c_proj/MatMul`, weight: `${m}.attn.c_proj.weight`, K: 3 * H, N: H });
    p.push({ node: `/h.${i}/c_fc/MatMul`, weight: `${m}.mlp.c_fc.weight`, K: H, N: 4 * H });
    p.push({ node: `/h.${i}/c_proj_1/MatMul`, weight: `${m}.mlp.c_proj.weight`, K: 4 * H, N: H });
  }
  return exportLike('transformer.wte.weight', H, V, p, { node: 'MatMul_422', weight: 'onnx::MatMul_900' });
}

test('GPT-2 export whose scopes skip the module tree: HF names from initializers; tied head is lm_head', async () => {
  const dir = tempDir('haqa-names-');
  const file = path.join(dir, 'model.onnx');
  await writeModel(gpt2Traced(), file);
  const g = await inspectModel(file);
  const names = g.layers.map((l) => l.name);
  assert.deepEqual(names, [
    'transformer.h.0.attn.c_attn',
    'transformer.h.0.attn.c_proj',
    'transformer.h.0.mlp.c_fc',
    'transformer.h.0.mlp.c_proj',
    'transformer.h.1.attn.c_attn',
    'transformer.h.1.attn.c_proj',
    'transformer.h.1.mlp.c_fc',
    'transformer.h.1.mlp.c_proj',
    'lm_head',
  ]);
  const ix = layerIndex(g.layers);
  const mlpProj = ix.match('transformer.h.*.mlp.c_proj').map((i) => g.layers[i].name);
  assert.deepEqual(mlpProj, ['transformer.h.0.mlp.c_proj', 'transformer.h.1.mlp.c_proj']);
  assert.equal(ix.match('lm_head').length, 1);
});

test('quantize with HF names in the recipe skips the tied head and quantizes the MLP projections named', async () => {
  const dir = tempDir('haqa-names-');
  const file = path.join(dir, 'model.onnx');
  await writeModel(gpt2Traced(), file);
  const recipe = recipeFor(file, { quantize: { method: 'rtn', bits: 4, block_size: 32, skip: ['lm_head'] } });
  const res = await compressModel(recipe, { out: path.join(dir, 'q.onnx') });
  const g = await inspectModel(res.out);
  const by = Object.fromEntries(g.layers.map((l) => [l.name, l.op]));
  assert.equal(by.lm_head, 'MatMul', 'the head the recipe skips stays fp32');
  assert.equal(by['transformer.h.1.mlp.c_proj'], 'MatMulNBits');
  // Names survive quantization: the packed weight keeps the module's name.
  assert.deepEqual(
    g.layers.map((l) => l.name).sort(),
    [...(await inspectModel(file)).layers.map((l) => l.name)].sort(),
  );
});

test('Optimum Llama export: exporter-named weights fall back to scopes; a Gemm on the embedding: lm_head', async () => {
  const dir = tempDir('haqa-names-');
  const file = path.join(dir, 'model.onnx');
  const p: Proj[] = [
    { node: '/model/layers.0/self_attn/q_proj/MatMul', weight: 'onnx::MatMul_1234', K: H, N: H },
    { node: '/model/layers.0/self_attn/o_proj/MatMul', weight: 'onnx::MatMul_1240', K: H, N: H },
    { node: '/model/layers.0/mlp/down_proj/MatMul', weight: 'val_77', K: H, N: H },
  ];
  await writeModel(exportLike('model.embed_tokens.weight', H, V, p, { node: '/Gemm', gemm: true }), file);
  const g = await inspectModel(file);
  assert.deepEqual(
    g.layers.map((l) => l.name),
    ['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.o_proj', 'model.layers.0.mlp.down_proj', 'lm_head'],
  );
  assert.deepEqual([g.layers[3].K, g.layers[3].N], [H, V]);
});

test('scopes alone: de-duplication suffixes are stripped and the family root restored', async () => {
  const dir = tempDir('haqa-names-');
  const file = path.join(dir, 'model.onnx');
  const p: Proj[] = [
    { node: '/h.0/attn/c_attn/MatMul', weight: 'onnx::MatMul_5', K: H, N: H },
    { node: '/transformer/h.0/mlp/c_proj_1/MatMul', weight: 'onnx::MatMul_6', K: H, N: H },
  ];
  await writeModel(
    exportLike('transformer.wte.weight', H, V, p, { node: '/lm_head/MatMul', weight: 'onnx::MatMul_7' }),
    file,
  );
  const g = await inspectModel(file);
  assert.deepEqual(
    g.layers.map((l) => l.name),
    ['transformer.h.0.attn.c_attn', 'transformer.h.0.mlp.c_proj', 'lm_head'],
  );
  assert.equal(stripDedupSuffix('gate_up_proj_2'), 'gate_up_proj');
  assert.equal(stripDedupSuffix('layers_1'), 'layers_1', 'only suffixes on projection names some family has');
  assert.equal(normalizeScopeName('h.3.mlp.c_fc', familyById('gpt2')), 'transformer.h.3.mlp.c_fc');
  assert.equal(normalizeScopeName('model.layers.3.mlp.up_proj', familyById('llama')), 'model.layers.3.mlp.up_proj');
});
