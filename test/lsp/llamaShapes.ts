// A Llama-shaped layer stack for the language-service tests and bench/lsp.ts: per decoder layer the
// seven projections a Hugging Face Llama has (q, k, v, o, gate, up, down), then lm_head, named the way
// an Optimum export names them. Only inspected (never run), so weights are zeros and the wiring is
// the minimum a valid graph needs.
import * as path from 'node:path';
import { DataType, makeTensor, writeModel, onnx } from '../../server/src/model/onnx';
import { node, valueInfo, model } from '../../server/src/model/build';

export interface LlamaShape {
  hidden: number;
  intermediate: number;
  kv: number;
  layers: number;
  vocab: number;
}

export const SMALL: LlamaShape = { hidden: 64, intermediate: 96, kv: 16, layers: 2, vocab: 128 };

export function llamaShapesModel(s: LlamaShape): onnx.ModelProto {
  const nodes: onnx.NodeProto[] = [];
  const inits: onnx.TensorProto[] = [];
  const proj = (scope: string, module: string, K: number, N: number, input: string) => {
    const w = `${module}.weight`;
    inits.push(makeTensor(w, DataType.FLOAT, [K, N], new Float32Array(K * N)));
    const out = `${scope}/MatMul_output_0`;
    nodes.push(node('MatMul', [input, w], [out], { name: `${scope}/MatMul` }));
    return out;
  };
  let x = 'x';
  for (let i = 0; i < s.layers; i++) {
    const m = `model.layers.${i}`;
    const sc = `/model/layers.${i}`;
    const q = proj(`${sc}/self_attn/q_proj`, `${m}.self_attn.q_proj`, s.hidden, s.hidden, x);
    proj(`${sc}/self_attn/k_proj`, `${m}.self_attn.k_proj`, s.hidden, s.kv, x);
    proj(`${sc}/self_attn/v_proj`, `${m}.self_attn.v_proj`, s.hidden, s.kv, x);
    const o = proj(`${sc}/self_attn/o_proj`, `${m}.self_attn.o_proj`, s.hidden, s.hidden, q);
    const g = proj(`${sc}/mlp/gate_proj`, `${m}.mlp.gate_proj`, s.hidden, s.intermediate, o);
    proj(`${sc}/mlp/up_proj`, `${m}.mlp.up_proj`, s.hidden, s.intermediate, o);
    x = proj(`${sc}/mlp/down_proj`, `${m}.mlp.down_proj`, s.intermediate, s.hidden, g);
  }
  const logits = proj('/lm_head', 'lm_head', s.hidden, s.vocab, x);
  nodes.push(node('Identity', [logits], ['logits'], { name: '/Identity' }));
  return model({
    name: 'llama-shapes',
    node: nodes,
    input: [valueInfo('x', DataType.FLOAT, ['batch', 'sequence', s.hidden])],
    output: [valueInfo('logits', DataType.FLOAT, ['batch', 'sequence', s.vocab])],
    initializer: inits,
  });
}

export async function writeLlamaShapes(dir: string, s: LlamaShape = SMALL, name = 'model.onnx'): Promise<string> {
  const file = path.join(dir, name);
  await writeModel(llamaShapesModel(s), file);
  return file;
}
