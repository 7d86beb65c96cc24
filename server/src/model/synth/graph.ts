// The ONNX graph of a decoder of any family in config/families.ts (Llama, Mistral, Qwen 2/3, Phi-3 with
// its fused qkv_proj and gate_up_proj, Gemma, Gemma 2 with soft-capping and alternating sliding windows,
// GPT-2 with fused c_attn, LayerNorm and learned positions), in the interface of
// docs/decoder-interface.md, as the PyTorch exporter would name it: nodes scoped by Hugging Face module
// (`/model/layers.3/self_attn/q_proj/MatMul`), weights named after their module
// (`model.layers.3.self_attn.q_proj.weight`, stored [K, N] for MatMul — GPT-2's Conv1D stores them so).
// What differs between families is read from the family table, not branched on model_type.
//
// This module only describes the graph and the weights it needs (name, shape, how to fill them); it
// holds no weight values, so a 70B-parameter graph costs a few hundred kilobytes here. synth.ts
// draws the values and writes the file.
//
// Everything that is not a weight (axes, shapes, rotary frequencies, the mask value) is a Constant
// node, so the graph's initializers are exactly the model's parameters.
import { onnx, DataType, makeTensor } from '../onnx';
import { node, valueInfo, model as modelProto, AttrValue } from '../build';
import { ModelArchitecture, HfConfigError, familyOfArch } from '../../config/hfConfig';
import { acceptedModelTypes, Family, fusedWidths } from '../../config/families';
import { FloatType, floatType } from '../floatTypes';

export interface WeightSpec {
  name: string;
  dims: number[];
  /** `normal`: normal(0, initializer_range); `ones`: RMSNorm / LayerNorm scales; `zeros`: Gemma's (1 + w) scales. */
  fill: 'normal' | 'ones' | 'zeros';
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
  ops(
    scope: string,
    opType: string,
    inputs: string[],
    opts: { attrs?: Record<string, AttrValue>; outputs?: string[]; nOut?: number } = {},
  ): string[] {
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
    last.attribute = [
      onnx.AttributeProto.create({ name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t: make(out) }),
    ];
    this.constants.set(key, out);
    return out;
  }

  i64(values: number[], scalar = false): string {
    return this.constant(`i64:${scalar ? 's' : 'v'}:${values.join(',')}`, (n) =>
      makeTensor(n, DataType.INT64, scalar ? [] : [values.length], BigInt64Array.from(values.map(BigInt))),
    );
  }

  /** A float constant in the graph's float type. */
  f32(values: number[] | Float32Array, scalar = false): string {
    return this.constant(`f32:${scalar ? 's' : 'v'}:${Array.from(values).join(',')}`, (n) =>
      makeTensor(n, this.ft.dataType, scalar ? [] : [values.length], this.ft.encode(Array.from(values))),
    );
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
export function checkArchitecture(a: ModelArchitecture): Family {
  const fail = (key: string, why: string): never => {
    throw new HfConfigError(`'${key}': ${why}`, key);
  };
  const f = familyOfArch(a);
  if (!f)
    fail('model_type', `${JSON.stringify(a.model_type)} is not a decoder family HAQA knows (${acceptedModelTypes()})`);
  if (a.num_attention_heads % a.num_key_value_heads !== 0) {
    fail(
      'num_key_value_heads',
      `${a.num_key_value_heads} does not divide num_attention_heads ${a.num_attention_heads}`,
    );
  }
  if (!f!.modules.positions && a.head_dim % 2 !== 0)
    fail('head_dim', `rotary embeddings need an even head_dim, got ${a.head_dim}`);
  return f!;
}

/** `transformer.h.0.attn.c_attn` → `/transformer/h.0/attn/c_attn`, the PyTorch exporter's scope of a module. */
export function scopeOf(module: string): string {
  return (
    '/' +
    module
      .split('.')
      .join('/')
      .replace(/\/(\d+)(?=\/|$)/g, '.$1')
  );
}

/** Whether layer `i` attends through the sliding window. */
export function slidingLayer(a: ModelArchitecture, f: Family, i: number): boolean {
  if (a.sliding_window === undefined) return false;
  return f.attention.slidingLayers === 'even' ? i % 2 === 0 : true;
}

/**
 * The decoder graph with weights, activations, cache and logits in `dataType` (FLOAT by default; FLOAT16
 * or BFLOAT16 as an `--dtype fp16|bf16` export writes them). The mask uses the type's lowest finite value.
 */
export function buildDecoderGraph(a: ModelArchitecture, dataType: number = DataType.FLOAT): DecoderGraph {
  const f = checkArchitecture(a);
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
  const I = a.intermediate_size;
  const M = f.modules;
  const allBias = f.attention.bias === 'all';
  const weights: WeightSpec[] = [];
  const weight = (name: string, dims: number[], fill: WeightSpec['fill'] = 'normal'): string => {
    weights.push({ name, dims, fill });
    return name;
  };

  // ---- embedding (Gemma scales it by sqrt(hidden); GPT-2 adds learned positions)
  const embed = weight(`${M.embed}.weight`, [V, H]);
  let x = b.op(scopeOf(M.embed), 'Gather', [embed, 'input_ids'], { axis: 0 });
  if (f.attention.embedScale) x = b.op('/model', 'Mul', [x, b.f32([Math.sqrt(H)], true)]);
  if (M.positions) {
    const wpe = weight(`${M.positions}.weight`, [a.max_position_embeddings, H]);
    x = b.op(scopeOf(M.embed.split('.')[0]), 'Add', [
      x,
      b.op(scopeOf(M.positions), 'Gather', [wpe, 'position_ids'], { axis: 0 }),
    ]);
  }

  // ---- rotary cos/sin from position_ids, computed in the graph (a table of max_position_embeddings
  // rows would be 128k × head_dim floats for Llama 3), shared by all layers: [B, 1, S, D].
  let cos = '',
    sin = '';
  if (!M.positions) {
    const rs = '/model/rotary_emb';
    const pos = b.op(rs, 'Cast', ['position_ids'], { to: F });
    const pos3 = b.op(rs, 'Unsqueeze', [pos, b.i64([-1])]);
    const freqs = b.op(rs, 'Mul', [pos3, b.f32(rotaryInvFreq(D, a.rope_theta))]);
    const emb = b.op(rs, 'Concat', [freqs, freqs], { axis: -1 });
    cos = b.op(rs, 'Unsqueeze', [b.op(rs, 'Cos', [emb]), b.i64([1])]);
    sin = b.op(rs, 'Unsqueeze', [b.op(rs, 'Sin', [emb]), b.i64([1])]);
  }

  // ---- attention bias [B, 1, 1, S, T]: query j (cache index past + j) sees key t when t <= past + j
  // and attention_mask[b, t] is 1. Built once from the shapes of input_ids and attention_mask.
  // Layers with a sliding window also need past + j - t < window (HF's sliding causal mask).
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
  const biasFor = (allowedPos: string): string =>
    b.op(ms, 'Where', [b.op(ms, 'And', [allowedPos, padOk]), b.f32([0], true), b.f32([ft.lowest], true)]);
  const bias = biasFor(causal);
  const slidingBias =
    a.sliding_window === undefined
      ? bias
      : biasFor(
          b.op(ms, 'And', [
            causal,
            b.op(ms, 'Less', [b.op(ms, 'Sub', [qIdx, keyIdx]), b.i64([a.sliding_window], true)]),
          ]),
        );

  const norm = (module: string, input: string, eps = a.rms_norm_eps): string => {
    const scope = scopeOf(module);
    if (f.norm === 'layer') {
      const w = weight(`${module}.weight`, [H], 'ones');
      return b.op(scope, 'LayerNormalization', [input, w, weight(`${module}.bias`, [H])], {
        axis: -1,
        epsilon: { float: eps },
      });
    }
    const dim = module.endsWith('q_norm') || module.endsWith('k_norm') ? D : H;
    const w = weight(`${module}.weight`, [dim], f.norm === 'rms1' ? 'zeros' : 'ones');
    const sq = b.op(scope, 'Pow', [input, b.f32([2], true)]);
    const mean = b.op(scope, 'ReduceMean', [sq], { axes: [-1], keepdims: 1 });
    const rms = b.op(scope, 'Sqrt', [b.op(scope, 'Add', [mean, b.f32([eps], true)])]);
    const scale = f.norm === 'rms1' ? b.op(scope, 'Add', [w, b.f32([1], true)]) : w;
    return b.op(scope, 'Mul', [scale, b.op(scope, 'Div', [input, rms])]);
  };
  const linear = (module: string, input: string, K: number, N: number, hasBias: boolean, output?: string): string => {
    const scope = scopeOf(module);
    const w = weight(`${module}.weight`, [K, N]);
    const y = b.op(scope, 'MatMul', [input, w], undefined, hasBias ? undefined : output);
    return hasBias ? b.op(scope, 'Add', [weight(`${module}.bias`, [N]), y], undefined, output) : y;
  };
  // tanh-approximated GELU (gelu_new, gelu_pytorch_tanh): 0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³)))
  const gelu = (scope: string, t: string): string => {
    const cube = b.op(scope, 'Mul', [b.op(scope, 'Pow', [t, b.f32([3], true)]), b.f32([0.044715], true)]);
    const inner = b.op(scope, 'Mul', [b.op(scope, 'Add', [t, cube]), b.f32([Math.sqrt(2 / Math.PI)], true)]);
    const half = b.op(scope, 'Mul', [t, b.f32([0.5], true)]);
    return b.op(scope, 'Mul', [half, b.op(scope, 'Add', [b.op(scope, 'Tanh', [inner]), b.f32([1], true)])]);
  };
  const softcap = (scope: string, t: string, cap: number): string =>
    b.op(scope, 'Mul', [b.op(scope, 'Tanh', [b.op(scope, 'Div', [t, b.f32([cap], true)])]), b.f32([cap], true)]);
  // [B, S, heads*D] → [B, S, heads, D] (→ per-head norm) → [B, heads, S, D]
  const toHeads = (scope: string, y: string, heads: number, qkNorm?: string): string => {
    let r = b.op(scope, 'Reshape', [y, b.i64([0, 0, heads, D])]);
    if (qkNorm) r = norm(qkNorm, r);
    return b.op(scope, 'Transpose', [r], { perm: [0, 2, 1, 3] });
  };
  // x * cos + rotate_half(x) * sin, rotate_half(x) = concat(-x2, x1) over the two halves of D.
  const rotary = (scope: string, t: string): string => {
    if (M.positions) return t;
    const [x1, x2] = b.ops(scope, 'Split', [t, b.i64([D / 2, D / 2])], { attrs: { axis: -1 }, nOut: 2 });
    const rot = b.op(scope, 'Concat', [b.op(scope, 'Neg', [x2]), x1], { axis: -1 });
    return b.op(scope, 'Add', [b.op(scope, 'Mul', [t, cos]), b.op(scope, 'Mul', [rot, sin])]);
  };
  const fusedOf = (part: string) => f.fused.find((p) => p.parts.includes(part));
  const widths = { heads: nH, kvHeads: nKV, headDim: D, intermediate: I };

  const inputs: onnx.ValueInfoProto[] = [
    valueInfo('input_ids', DataType.INT64, [DIMS.batch, DIMS.seq]),
    valueInfo('attention_mask', DataType.INT64, [DIMS.batch, DIMS.total]),
    valueInfo('position_ids', DataType.INT64, [DIMS.batch, DIMS.seq]),
  ];
  const outputs: onnx.ValueInfoProto[] = [valueInfo('logits', F, [DIMS.batch, DIMS.seq, V])];
  const presents: onnx.ValueInfoProto[] = [];
  const [n1, n2, n3, n4] = M.norms;
  const qkBias = a.attention_bias;

  for (let i = 0; i < a.num_hidden_layers; i++) {
    const m = `${M.blocks}.${i}`;
    const s = scopeOf(m);
    const attnMod = `${m}.${M.attn.o.split('.')[0]}`;
    const sa = scopeOf(attnMod);
    inputs.push(valueInfo(`past_key_values.${i}.key`, F, [DIMS.batch, nKV, DIMS.past, D]));
    inputs.push(valueInfo(`past_key_values.${i}.value`, F, [DIMS.batch, nKV, DIMS.past, D]));
    presents.push(valueInfo(`present.${i}.key`, F, [DIMS.batch, nKV, DIMS.total, D]));
    presents.push(valueInfo(`present.${i}.value`, F, [DIMS.batch, nKV, DIMS.total, D]));

    // -- self attention: q, k, v from their own projections or split from a fused one (Phi-3, GPT-2)
    const xn = norm(`${m}.${n1}`, x);
    let qf: string, kf: string, vf: string;
    const fq = fusedOf('q');
    if (fq) {
      const mod = `${m}.${fq.module}`;
      const y = linear(mod, xn, H, (nH + 2 * nKV) * D, qkBias);
      [qf, kf, vf] = b.ops(scopeOf(mod), 'Split', [y, b.i64(fusedWidths(fq, widths))], {
        attrs: { axis: -1 },
        nOut: 3,
      });
    } else {
      qf = linear(`${m}.${M.attn.q}`, xn, H, nH * D, qkBias);
      kf = linear(`${m}.${M.attn.k}`, xn, H, nKV * D, qkBias);
      vf = linear(`${m}.${M.attn.v}`, xn, H, nKV * D, qkBias);
    }
    const qn = f.attention.qkNorm ? `${attnMod}.q_norm` : undefined;
    const kn = f.attention.qkNorm ? `${attnMod}.k_norm` : undefined;
    const q = toHeads(`${sa}/q`, qf, nH, qn);
    const k = toHeads(`${sa}/k`, kf, nKV, kn);
    const v = toHeads(`${sa}/v`, vf, nKV);
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
    const scale = 1 / Math.sqrt(a.query_pre_attn_scalar ?? D);
    let scores = b.op(sa, 'Mul', [b.op(sa, 'MatMul', [q5, kT5]), b.f32([scale], true)]);
    if (a.attn_logit_softcapping !== undefined) scores = softcap(sa, scores, a.attn_logit_softcapping);
    const layerBias = slidingLayer(a, f, i) ? slidingBias : bias;
    const probs = b.op(sa, 'Softmax', [b.op(sa, 'Add', [scores, layerBias])], { axis: -1 });
    const ctx5 = b.op(sa, 'MatMul', [probs, v5]);
    const ctx4 = b.op(sa, 'Reshape', [ctx5, b.i64([0, nH, -1, D])]);
    const ctx = b.op(sa, 'Reshape', [b.op(sa, 'Transpose', [ctx4], { perm: [0, 2, 1, 3] }), b.i64([0, 0, nH * D])]);
    let attnOut = linear(`${m}.${M.attn.o}`, ctx, nH * D, H, allBias);
    // Gemma 2's sandwich norms: post_attention_layernorm on the attention output, then
    // pre_feedforward_layernorm before the MLP and post_feedforward_layernorm after it.
    if (f.attention.postNorms) attnOut = norm(`${m}.${n2}`, attnOut);
    const h = b.op(s, 'Add', [x, attnOut]);

    // -- MLP: GLU (silu / tanh-GELU) with separate or fused gate/up, or GPT-2's GELU MLP
    const hn = norm(`${m}.${f.attention.postNorms ? n3 : n2}`, h);
    const mp = scopeOf(`${m}.${M.mlp.down.split('.')[0]}`);
    let inner: string;
    const fg = fusedOf('gate');
    if (f.activation === 'gelu_tanh') {
      inner = gelu(`${mp}/act`, linear(`${m}.${M.mlp.up}`, hn, H, I, allBias));
    } else {
      let gate: string, up: string;
      if (fg) {
        const mod = `${m}.${fg.module}`;
        const y = linear(mod, hn, H, 2 * I, false);
        [gate, up] = b.ops(scopeOf(mod), 'Split', [y, b.i64(fusedWidths(fg, widths))], {
          attrs: { axis: -1 },
          nOut: 2,
        });
      } else {
        gate = linear(`${m}.${M.mlp.gate}`, hn, H, I, false);
        up = linear(`${m}.${M.mlp.up}`, hn, H, I, false);
      }
      const act =
        f.activation === 'silu'
          ? b.op(`${mp}/act_fn`, 'Mul', [gate, b.op(`${mp}/act_fn`, 'Sigmoid', [gate])])
          : gelu(`${mp}/act_fn`, gate);
      inner = b.op(mp, 'Mul', [act, up]);
    }
    let down = linear(`${m}.${M.mlp.down}`, inner, I, H, allBias);
    if (f.attention.postNorms) down = norm(`${m}.${n4}`, down);
    x = b.op(s, 'Add', [h, down]);
  }

  const xf = norm(M.finalNorm, x);
  const capped = a.final_logit_softcapping;
  const logitsOut = capped === undefined ? 'logits' : undefined;
  let logits: string;
  if (a.tie_word_embeddings) {
    // Tied: lm_head reuses the embedding [V, H] as a Gemm with transB (no transposed copy), over the
    // tokens flattened to [B*S, H]; inspectModel reads K=H, N=V from transB.
    const flat = b.op('/lm_head', 'Reshape', [xf, b.i64([-1, H])]);
    const y = b.op('/lm_head', 'Gemm', [flat, embed], { transB: 1 });
    const shape = b.op('/lm_head', 'Concat', [b.op('/lm_head', 'Shape', ['input_ids']), b.i64([V])], { axis: 0 });
    logits = b.op('/lm_head', 'Reshape', [y, shape], undefined, logitsOut);
  } else {
    logits = linear(M.head, xf, H, V, false, logitsOut);
  }
  if (capped !== undefined) {
    const tanh = b.op('/model', 'Tanh', [b.op('/model', 'Div', [logits, b.f32([capped], true)])]);
    b.op('/model', 'Mul', [tanh, b.f32([capped], true)], undefined, 'logits');
  }

  const model = modelProto(
    {
      name: `haqa-synth-${a.model_type}`,
      node: b.nodes,
      input: inputs,
      output: [...outputs, ...presents],
      initializer: [],
    },
    { opset: 17 },
  );
  return { model, weights };
}
