// The ONNX graph of a Llama-family decoder (Llama, Qwen2, Mistral shapes), in the interface of
// docs/decoder-interface.md, as the PyTorch exporter would name it: nodes scoped by Hugging Face module
// (`/model/layers.3/self_attn/q_proj/MatMul`), weights named after their module
// (`model.layers.3.self_attn.q_proj.weight`, stored [K, N] for MatMul).
//
// This module only describes the graph and the weights it needs (name, shape, how to fill them); it
// holds no weight values, so a 70B-parameter graph costs a few hundred kilobytes here. synth.ts
// draws the values and writes the file.
//
// Everything that is not a weight (axes, shapes, rotary frequencies, the mask value) is a Constant
// node, so the graph's initializers are exactly the model's parameters.
import { onnx, DataType, makeTensor } from '../onnx';
import { node, valueInfo, model as modelProto, AttrValue } from '../build';
import { ModelArchitecture, HfConfigError } from '../../config/hfConfig';
import { FloatType, floatType } from '../floatTypes';

export interface WeightSpec {
  name: string;
  dims: number[];
  /** `normal`: normal(0, initializer_range); `ones`: RMSNorm scales. */
  fill: 'normal' | 'ones';
}

export interface DecoderGraph {
  model: onnx.ModelProto;
  /** In the order they should be written (embedding, layer by layer, final norm, lm_head). */
  weights: WeightSpec[];
}

/** Symbolic dimensions, spelled as Optimum spells them. */
export const DIMS = {
  batch: 'batch_size',
  seq: 'sequence_length',
  past: 'past_sequence_length',
  total: 'past_sequence_length + sequence_length',
} as const;

/** Added to the scores of masked positions: torch.finfo(float32).min, as HF and Optimum use (finite, unlike -inf);
 * fp16/bf16 graphs use their type's own (floatTypes.ts `lowest`). */
export const MASK_VALUE = -3.4028234663852886e38;

/** Node factory that names nodes and their outputs the way the PyTorch exporter does. */
class Builder {
  readonly nodes: onnx.NodeProto[] = [];
  /** The float type the graph computes and stores its weights in (float32, or an fp16/bf16 export's). */
  constructor(readonly ft: FloatType) {}
  private readonly used = new Map<string, number>();
  private readonly constants = new Map<string, string>();

  /** Add `opType` in module `scope` (e.g. `/model/layers.0/mlp`); returns its output names. */
  ops(scope: string, opType: string, inputs: string[], opts: { attrs?: Record<string, AttrValue>; outputs?: string[]; nOut?: number } = {}): string[] {
    const base = `${scope}/${opType}`;
    const k = this.used.get(base) ?? 0;
    this.used.set(base, k + 1);
    const name = k === 0 ? base : `${base}_${k}`;
    const outputs = opts.outputs ?? Array.from({ length: opts.nOut ?? 1 }, (_, i) => `${name}_output_${i}`);
    this.nodes.push(node(opType, inputs, outputs, { name, attrs: opts.attrs }));
    return outputs;
  }

  op(scope: string, opType: string, inputs: string[], attrs?: Record<string, AttrValue>, output?: string): string {
    return this.ops(scope, opType, inputs, { attrs, outputs: output ? [output] : undefined })[0];
  }

  /** A Constant node, shared by every use of the same value. */
  private constant(key: string, make: (name: string) => onnx.TensorProto): string {
    const hit = this.constants.get(key);
    if (hit) return hit;
    const out = this.op('/model/constants', 'Constant', [], {});
    const last = this.nodes[this.nodes.length - 1];
    last.attribute = [onnx.AttributeProto.create({ name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t: make(out) })];
    this.constants.set(key, out);
    return out;
  }

  i64(values: number[], scalar = false): string {
    return this.constant(`i64:${scalar ? 's' : 'v'}:${values.join(',')}`, (n) =>
      makeTensor(n, DataType.INT64, scalar ? [] : [values.length], BigInt64Array.from(values.map(BigInt))));
  }

  /** A float constant in the graph's float type. */
  f32(values: number[] | Float32Array, scalar = false): string {
    return this.constant(`f32:${scalar ? 's' : 'v'}:${Array.from(values).join(',')}`, (n) =>
      makeTensor(n, this.ft.dataType, scalar ? [] : [values.length], this.ft.encode(Array.from(values))));
  }
}

/** Rotary inverse frequencies, 1 / theta^(2i/d), as HF's default rope computes them. */
export function rotaryInvFreq(headDim: number, theta: number): Float32Array {
  const half = headDim / 2;
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) out[i] = 1 / theta ** ((2 * i) / headDim);
  return out;
}

/** Check that the architecture is one this builder can express; errors name the config key. */
export function checkArchitecture(a: ModelArchitecture): void {
  const fail = (key: string, why: string): never => {
    throw new HfConfigError(`'${key}': ${why}`, key);
  };
  if (a.num_attention_heads % a.num_key_value_heads !== 0) {
    fail('num_key_value_heads', `${a.num_key_value_heads} does not divide num_attention_heads ${a.num_attention_heads}`);
  }
  if (a.head_dim % 2 !== 0) fail('head_dim', `rotary embeddings need an even head_dim, got ${a.head_dim}`);
}

/**
 * The decoder graph with weights, activations, cache and logits in `dataType` (FLOAT by default; FLOAT16
 * or BFLOAT16 as an `--dtype fp16|bf16` export writes them). The mask uses the type's lowest finite value.
 */
export function buildDecoderGraph(a: ModelArchitecture, dataType: number = DataType.FLOAT): DecoderGraph {
  checkArchitecture(a);
  const ft = floatType(dataType);
  if (!ft) throw new RangeError(`synthetic decoders are float32, float16 or bfloat16, not data type ${dataType}`);
  const F = ft.dataType;
  const b = new Builder(ft);
  const H = a.hidden_size;
  const nH = a.num_attention_heads;
  const nKV = a.num_key_value_heads;
  const D = a.head_dim;
  const nRep = nH / nKV;
  const V = a.vocab_size;
  const weights: WeightSpec[] = [];
  const weight = (name: string, dims: number[], fill: WeightSpec['fill'] = 'normal'): string => {
    weights.push({ name, dims, fill });
    return name;
  };

  // ---- embedding
  const embed = weight('model.embed_tokens.weight', [V, H]);
  let x = b.op('/model/embed_tokens', 'Gather', [embed, 'input_ids'], { axis: 0 });

  // ---- rotary cos/sin from position_ids, computed in the graph (a table of max_position_embeddings
  // rows would be 128k × head_dim floats for Llama 3), shared by all layers: [B, 1, S, D].
  const rs = '/model/rotary_emb';
  const pos = b.op(rs, 'Cast', ['position_ids'], { to: F });
  const pos3 = b.op(rs, 'Unsqueeze', [pos, b.i64([-1])]);
  const freqs = b.op(rs, 'Mul', [pos3, b.f32(rotaryInvFreq(D, a.rope_theta))]);
  const emb = b.op(rs, 'Concat', [freqs, freqs], { axis: -1 });
  const cos = b.op(rs, 'Unsqueeze', [b.op(rs, 'Cos', [emb]), b.i64([1])]);
  const sin = b.op(rs, 'Unsqueeze', [b.op(rs, 'Sin', [emb]), b.i64([1])]);

  // ---- attention bias [B, 1, 1, S, T]: query j (cache index past + j) sees key t when t <= past + j
  // and attention_mask[b, t] is 1. Built once from the shapes of input_ids and attention_mask.
  const ms = '/model';
  const zero = b.i64([0], true);
  const one = b.i64([1], true);
  const S = b.op(ms, 'Gather', [b.op(ms, 'Shape', ['input_ids']), one], { axis: 0 });
  const T = b.op(ms, 'Gather', [b.op(ms, 'Shape', ['attention_mask']), one], { axis: 0 });
  const P = b.op(ms, 'Sub', [T, S]);
  const keyIdx = b.op(ms, 'Range', [zero, T, one]);
  const qIdx = b.op(ms, 'Unsqueeze', [b.op(ms, 'Range', [P, T, one]), b.i64([1])]);
  const causal = b.op(ms, 'LessOrEqual', [keyIdx, qIdx]);
  const padOk = b.op(ms, 'Unsqueeze', [b.op(ms, 'Cast', ['attention_mask'], { to: DataType.BOOL }), b.i64([1, 2, 3])]);
  const allowed = b.op(ms, 'And', [causal, padOk]);
  const bias = b.op(ms, 'Where', [allowed, b.f32([0], true), b.f32([ft.lowest], true)]);

  const rmsNorm = (scope: string, input: string, w: string): string => {
    const sq = b.op(scope, 'Pow', [input, b.f32([2], true)]);
    const mean = b.op(scope, 'ReduceMean', [sq], { axes: [-1], keepdims: 1 });
    const rms = b.op(scope, 'Sqrt', [b.op(scope, 'Add', [mean, b.f32([a.rms_norm_eps], true)])]);
    return b.op(scope, 'Mul', [w, b.op(scope, 'Div', [input, rms])]);
  };
  const linear = (scope: string, input: string, module: string, K: number, N: number, hasBias: boolean, output?: string): string => {
    const w = weight(`${module}.weight`, [K, N]);
    const y = b.op(scope, 'MatMul', [input, w], undefined, hasBias ? undefined : output);
    return hasBias ? b.op(scope, 'Add', [weight(`${module}.bias`, [N]), y], undefined, output) : y;
  };
  // [B, S, heads*D] → [B, heads, S, D]
  const toHeads = (scope: string, y: string, heads: number): string =>
    b.op(scope, 'Transpose', [b.op(scope, 'Reshape', [y, b.i64([0, 0, heads, D])])], { perm: [0, 2, 1, 3] });
  // x * cos + rotate_half(x) * sin, rotate_half(x) = concat(-x2, x1) over the two halves of D.
  const rotary = (scope: string, t: string): string => {
    const [x1, x2] = b.ops(scope, 'Split', [t, b.i64([D / 2, D / 2])], { attrs: { axis: -1 }, nOut: 2 });
    const rot = b.op(scope, 'Concat', [b.op(scope, 'Neg', [x2]), x1], { axis: -1 });
    return b.op(scope, 'Add', [b.op(scope, 'Mul', [t, cos]), b.op(scope, 'Mul', [rot, sin])]);
  };

  const inputs: onnx.ValueInfoProto[] = [
    valueInfo('input_ids', DataType.INT64, [DIMS.batch, DIMS.seq]),
    valueInfo('attention_mask', DataType.INT64, [DIMS.batch, DIMS.total]),
    valueInfo('position_ids', DataType.INT64, [DIMS.batch, DIMS.seq]),
  ];
  const outputs: onnx.ValueInfoProto[] = [valueInfo('logits', F, [DIMS.batch, DIMS.seq, V])];
  const presents: onnx.ValueInfoProto[] = [];

  for (let i = 0; i < a.num_hidden_layers; i++) {
    const m = `model.layers.${i}`;
    const s = `/model/layers.${i}`;
    const sa = `${s}/self_attn`;
    inputs.push(valueInfo(`past_key_values.${i}.key`, F, [DIMS.batch, nKV, DIMS.past, D]));
    inputs.push(valueInfo(`past_key_values.${i}.value`, F, [DIMS.batch, nKV, DIMS.past, D]));
    presents.push(valueInfo(`present.${i}.key`, F, [DIMS.batch, nKV, DIMS.total, D]));
    presents.push(valueInfo(`present.${i}.value`, F, [DIMS.batch, nKV, DIMS.total, D]));

    // -- self attention
    const xn = rmsNorm(`${s}/input_layernorm`, x, weight(`${m}.input_layernorm.weight`, [H], 'ones'));
    const q = toHeads(`${sa}/q_proj`, linear(`${sa}/q_proj`, xn, `${m}.self_attn.q_proj`, H, nH * D, a.attention_bias), nH);
    const k = toHeads(`${sa}/k_proj`, linear(`${sa}/k_proj`, xn, `${m}.self_attn.k_proj`, H, nKV * D, a.attention_bias), nKV);
    const v = toHeads(`${sa}/v_proj`, linear(`${sa}/v_proj`, xn, `${m}.self_attn.v_proj`, H, nKV * D, a.attention_bias), nKV);
    const qr = rotary(`${sa}/rotary_q`, q);
    const kr = rotary(`${sa}/rotary_k`, k);
    // The cache holds keys after rotary; present = past ++ new along the sequence axis.
    const presentK = b.op(sa, 'Concat', [`past_key_values.${i}.key`, kr], { axis: 2 }, `present.${i}.key`);
    const presentV = b.op(sa, 'Concat', [`past_key_values.${i}.value`, v], { axis: 2 }, `present.${i}.value`);
    // Grouped-query attention without copying the cache nRep times: query heads are grouped as
    // [B, nKV, nRep, S, D] (head h uses kv head h / nRep, as HF's repeat_kv does) and MatMul
    // broadcasts the kv heads [B, nKV, 1, ·, ·] over the group axis.
    const q5 = b.op(sa, 'Reshape', [qr, b.i64([0, nKV, nRep, -1, D])]);
    const kT5 = b.op(sa, 'Unsqueeze', [b.op(sa, 'Transpose', [presentK], { perm: [0, 1, 3, 2] }), b.i64([2])]);
    const v5 = b.op(sa, 'Unsqueeze', [presentV, b.i64([2])]);
    const scores = b.op(sa, 'Mul', [b.op(sa, 'MatMul', [q5, kT5]), b.f32([1 / Math.sqrt(D)], true)]);
    const probs = b.op(sa, 'Softmax', [b.op(sa, 'Add', [scores, bias])], { axis: -1 });
    const ctx5 = b.op(sa, 'MatMul', [probs, v5]);
    const ctx4 = b.op(sa, 'Reshape', [ctx5, b.i64([0, nH, -1, D])]);
    const ctx = b.op(sa, 'Reshape', [b.op(sa, 'Transpose', [ctx4], { perm: [0, 2, 1, 3] }), b.i64([0, 0, nH * D])]);
    const attnOut = linear(`${sa}/o_proj`, ctx, `${m}.self_attn.o_proj`, nH * D, H, false);
    const h = b.op(s, 'Add', [x, attnOut]);

    // -- SwiGLU MLP: down(silu(gate(x)) * up(x))
    const mp = `${s}/mlp`;
    const hn = rmsNorm(`${s}/post_attention_layernorm`, h, weight(`${m}.post_attention_layernorm.weight`, [H], 'ones'));
    const gate = linear(`${mp}/gate_proj`, hn, `${m}.mlp.gate_proj`, H, a.intermediate_size, false);
    const up = linear(`${mp}/up_proj`, hn, `${m}.mlp.up_proj`, H, a.intermediate_size, false);
    const act = b.op(`${mp}/act_fn`, 'Mul', [gate, b.op(`${mp}/act_fn`, 'Sigmoid', [gate])]);
    const down = linear(`${mp}/down_proj`, b.op(mp, 'Mul', [act, up]), `${m}.mlp.down_proj`, a.intermediate_size, H, false);
    x = b.op(s, 'Add', [h, down]);
  }

  const xf = rmsNorm('/model/norm', x, weight('model.norm.weight', [H], 'ones'));
  if (a.tie_word_embeddings) {
    // Tied: lm_head reuses the embedding [V, H] as a Gemm with transB (no transposed copy), over the
    // tokens flattened to [B*S, H]; inspectModel reads K=H, N=V from transB.
    const flat = b.op('/lm_head', 'Reshape', [xf, b.i64([-1, H])]);
    const y = b.op('/lm_head', 'Gemm', [flat, embed], { transB: 1 });
    const shape = b.op('/lm_head', 'Concat', [b.op('/lm_head', 'Shape', ['input_ids']), b.i64([V])], { axis: 0 });
    b.op('/lm_head', 'Reshape', [y, shape], undefined, 'logits');
  } else {
    linear('/lm_head', xf, 'lm_head', H, V, false, 'logits');
  }

  const model = modelProto(
    { name: `haqa-synth-${a.model_type}`, node: b.nodes, input: inputs, output: [...outputs, ...presents], initializer: [] },
    { opset: 17 },
  );
  return { model, weights };
}
