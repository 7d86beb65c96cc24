// GGUF export: the recipe's source model (an fp32 ONNX decoder of the Llama family, with its
// config.json and tokenizer.json beside it) written as a GGUF file llama.cpp loads, with each tensor
// quantized to the type the recipe asks for (model/gguf.ts writes the format, ./ggufQuant.ts packs).
//
// Which type a tensor gets (ggufPlan), in order:
//   1. norms (1-D) are F32 always (llama.cpp requires it);
//   2. the last `quantize.overrides` entry whose `match` glob matches the tensor's Hugging Face module
//      name and that sets `gguf_type` or `skip` (skip: F32), as llama.cpp's `--tensor-type`;
//   3. `quantize.skip` globs: F32;
//   4. the recipe's `quantize.gguf_type`; the preset Q4_K_M means Q4_K with Q6_K for the output head,
//      and for attn_v / ffn_down in the layers llama.cpp gives more bits (first and last eighth, every
//      third in between).
// A type whose block does not divide a row falls back (Q4_K/Q6_K → Q8_0 → F16), as llama.cpp does.
//
// Streaming: one tensor is read, transposed, quantized and written at a time (bounded memory); the
// file is atomic (model/gguf.ts).
import * as path from 'node:path';
import type { GgufFileType, Recipe } from '../config/recipe';
import { architectureFromConfig, type ModelArchitecture } from '../config/hfConfig';
import { globMatcher } from '../config/plan';
import { readModel, readTensorFloat32, tensorDims, type onnx } from '../model/onnx';
import { GGML_TYPES, GgmlTypeName, GgufTensorInfo, GgufValue, gv, writeGguf } from '../model/gguf';
import { besideModel, readRegularTextSync, READ_CAPS } from '../util/paths';
import { quantizeGguf } from './ggufQuant';

/** What a recipe may name in quantize.gguf_type: a tensor type, or a llama.cpp-style mix. */
export const GGUF_FILE_TYPES: readonly GgufFileType[] = ['F32', 'F16', 'Q8_0', 'Q4_0', 'Q4_K', 'Q6_K', 'Q4_K_M'];

export const GGUF_TENSOR_TYPES: readonly GgmlTypeName[] = ['F32', 'F16', 'Q8_0', 'Q4_0', 'Q4_K', 'Q6_K'];

/** llama.cpp's general.file_type (LLAMA_FTYPE_*) for each. */
const FILE_TYPE_ID: Record<GgufFileType, number> = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 7, Q4_K: 15, Q4_K_M: 15, Q6_K: 18 };

export class GgufExportError extends Error {
  constructor(
    message: string,
    readonly file?: string,
  ) {
    super(message);
    this.name = 'GgufExportError';
  }
}

// ---------------------------------------------------------------- the Llama family's tensor names

interface Mapped {
  gguf: string;
  /** The Hugging Face module (for recipe globs), e.g. model.layers.3.mlp.down_proj. */
  module: string;
  layer?: number;
  /** ONNX MatMul weights are [in, out]; GGUF rows are the input dimension: transpose. */
  transpose: boolean;
  /** q/k projections: HF's rotate-half RoPE → llama.cpp's interleaved pairs (convert_hf_to_gguf's permute). */
  permuteHeads?: 'q' | 'k';
}

const LAYER_TENSORS: Record<string, { gguf: string; matmul: boolean; permute?: 'q' | 'k' }> = {
  input_layernorm: { gguf: 'attn_norm', matmul: false },
  post_attention_layernorm: { gguf: 'ffn_norm', matmul: false },
  'self_attn.q_proj': { gguf: 'attn_q', matmul: true, permute: 'q' },
  'self_attn.k_proj': { gguf: 'attn_k', matmul: true, permute: 'k' },
  'self_attn.v_proj': { gguf: 'attn_v', matmul: true },
  'self_attn.o_proj': { gguf: 'attn_output', matmul: true },
  'mlp.gate_proj': { gguf: 'ffn_gate', matmul: true },
  'mlp.up_proj': { gguf: 'ffn_up', matmul: true },
  'mlp.down_proj': { gguf: 'ffn_down', matmul: true },
};

/** The GGUF name of a Llama-family initializer, or undefined when it is not a weight llama.cpp reads. */
export function llamaTensorName(initializer: string): Mapped | undefined {
  const m = /^(.*)\.weight$/.exec(initializer);
  if (!m) return undefined;
  const module = m[1];
  if (module === 'model.embed_tokens') return { gguf: 'token_embd.weight', module, transpose: false };
  if (module === 'model.norm') return { gguf: 'output_norm.weight', module, transpose: false };
  if (module === 'lm_head') return { gguf: 'output.weight', module, transpose: true };
  const l = /^model\.layers\.(\d+)\.(.+)$/.exec(module);
  const t = l && LAYER_TENSORS[l[2]];
  if (!l || !t) return undefined;
  return {
    gguf: `blk.${l[1]}.${t.gguf}.weight`,
    module,
    layer: Number(l[1]),
    transpose: t.matmul,
    permuteHeads: t.permute,
  };
}

// ---------------------------------------------------------------- types per tensor

/** The recipe's GGUF file type: quantize.gguf_type; Q4_K_M when a quantize section names none; F32 without one. */
export function ggufFileType(recipe: Recipe): GgufFileType {
  return recipe.quantize ? (recipe.quantize.gguf_type ?? 'Q4_K_M') : 'F32';
}

function moreBits(layer: number, n: number): boolean {
  return layer < n / 8 || layer >= (7 * n) / 8 || (layer - Math.floor(n / 8)) % 3 === 2;
}

/** The type of one tensor under the recipe (see the header). `rowLength` decides fallbacks. */
export function ggufTensorType(recipe: Recipe, t: Mapped, dims: number[], nLayers: number): GgmlTypeName {
  if (dims.length === 1) return 'F32';
  const q = recipe.quantize;
  const base = ggufFileType(recipe);
  let type: GgmlTypeName = base === 'Q4_K_M' ? 'Q4_K' : base;
  if (base === 'Q4_K_M') {
    if (t.gguf === 'output.weight') type = 'Q6_K';
    else if (t.layer !== undefined && /attn_v|ffn_down/.test(t.gguf) && moreBits(t.layer, nLayers)) type = 'Q6_K';
  }
  if (q?.skip.some((g) => globMatcher(g)(t.module))) type = 'F32';
  for (const o of q?.overrides ?? []) {
    if (!globMatcher(o.match)(t.module)) continue;
    if (o.skip) type = 'F32';
    // a tuner's scoped knob may say the preset
    else if (o.gguf_type) type = (o.gguf_type as GgufFileType) === 'Q4_K_M' ? 'Q4_K' : o.gguf_type;
  }
  return fitType(type, dims[0]);
}

function fitType(type: GgmlTypeName, row: number): GgmlTypeName {
  const chain: GgmlTypeName[] =
    type === 'Q4_K' || type === 'Q6_K'
      ? [type, 'Q8_0', 'F16']
      : type === 'Q4_0' || type === 'Q8_0'
        ? [type, 'F16']
        : [type];
  return chain.find((c) => row % GGML_TYPES[c].block === 0) ?? 'F32';
}

// ---------------------------------------------------------------- tokenizer

/** tokenizer.json (byte-level BPE, as model/tokenizer.ts reads) → GGUF's `gpt2` tokenizer metadata. */
export function tokenizerMetadata(
  json: Record<string, unknown>,
  arch: ModelArchitecture,
  bos?: number,
  eos?: number,
): Record<string, GgufValue> {
  const model = (json.model ?? {}) as {
    type?: string;
    vocab?: Record<string, number>;
    merges?: (string | [string, string])[];
  };
  if (model.type !== 'BPE' || !model.vocab)
    throw new GgufExportError(
      `tokenizer.json: only byte-level BPE tokenizers can be carried into GGUF (model.type ${String(model.type)})`,
    );
  const added = (json.added_tokens ?? []) as { id: number; content: string; special?: boolean }[];
  const n = Math.max(arch.vocab_size, ...Object.values(model.vocab).map((i) => i + 1), ...added.map((a) => a.id + 1));
  const tokens: string[] = Array.from({ length: n }, (_, i) => `[PAD${i}]`);
  const types: number[] = new Array(n).fill(5); // unused
  for (const [s, i] of Object.entries(model.vocab)) {
    tokens[i] = s;
    types[i] = 1;
  }
  for (const a of added) {
    tokens[a.id] = a.content;
    types[a.id] = a.special ? 3 : 4;
  } // control / user-defined
  const merges = (model.merges ?? []).map((m) => (Array.isArray(m) ? m.join(' ') : m));
  const out: Record<string, GgufValue> = {
    'tokenizer.ggml.model': gv.str('gpt2'),
    'tokenizer.ggml.pre': gv.str('default'),
    'tokenizer.ggml.tokens': gv.strs(tokens),
    'tokenizer.ggml.token_type': gv.i32s(types),
    'tokenizer.ggml.merges': gv.strs(merges),
    'tokenizer.ggml.add_bos_token': gv.bool(false),
  };
  if (bos !== undefined) out['tokenizer.ggml.bos_token_id'] = gv.u32(bos);
  if (eos !== undefined) out['tokenizer.ggml.eos_token_id'] = gv.u32(eos);
  return out;
}

// ---------------------------------------------------------------- export

export interface GgufExportResult {
  bytes: number;
  seconds: number;
  tensors: { name: string; type: GgmlTypeName; dims: number[] }[];
}

/** HF [out, in] rows of q or k → llama.cpp's order (convert_hf_to_gguf.py LlamaModel.permute). */
function permuteRows(w: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const out = new Float32Array(w.length);
  const hd = rows / heads;
  const half = hd / 2;
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let two = 0; two < 2; two++) {
        const src = h * hd + two * half + i; // reshape(heads, 2, half) ...
        const dst = h * hd + i * 2 + two; // ... swapaxes(1, 2)
        out.set(w.subarray(src * cols, (src + 1) * cols), dst * cols);
      }
    }
  }
  return out;
}

function transpose(w: Float32Array, K: number, N: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) out[n * K + k] = w[k * N + n];
  return out;
}

export async function exportGguf(
  recipe: Recipe,
  out: string,
  opts: { signal?: AbortSignal; onProgress?: (done: number, total: number, tensor: string) => void } = {},
): Promise<GgufExportResult> {
  const t0 = Date.now();
  const cfgFile = besideModel(recipe.model, 'config.json', 'config.json');
  let arch: ModelArchitecture;
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(readRegularTextSync(cfgFile, 'config.json', READ_CAPS.config));
    arch = architectureFromConfig(cfg);
  } catch (err) {
    throw new GgufExportError(`GGUF export needs the model's config.json: ${(err as Error).message}`, cfgFile);
  }
  if (arch.model_type !== 'llama' || arch.attention_bias) {
    throw new GgufExportError(
      `GGUF export maps Llama tensors only; ${cfgFile} says model_type ` +
        `'${arch.model_type}'${arch.attention_bias ? ' with attention biases' : ''}`,
      cfgFile,
    );
  }
  const tokFile = recipe.evaluation.tokenizer ?? besideModel(recipe.model, 'tokenizer.json', 'tokenizer');
  const tokJson = JSON.parse(readRegularTextSync(tokFile, 'tokenizer', READ_CAPS.tokenizer)) as Record<string, unknown>;
  const model = await readModel(recipe.model);
  const inits = model.proto.graph?.initializer ?? [];
  const chosen: { init: onnx.ITensorProto; map: Mapped; info: GgufTensorInfo; srcDims: number[] }[] = [];
  for (const init of inits) {
    const map = llamaTensorName(init.name ?? '');
    if (!map) continue;
    const srcDims = tensorDims(init);
    const dims = map.transpose ? [srcDims[0], srcDims[1]] : [...srcDims].reverse(); // ggml order: row length first
    chosen.push({
      init,
      map,
      srcDims,
      info: { name: map.gguf, dims, type: ggufTensorType(recipe, map, dims, arch.num_hidden_layers) },
    });
  }
  const need = ['token_embd.weight', 'output_norm.weight'];
  for (const n of need) {
    if (!chosen.some((c) => c.info.name === n))
      throw new GgufExportError(
        `${recipe.model}: no initializer maps to GGUF ${n} (Llama names expected)`,
        recipe.model,
      );
  }
  if (!chosen.some((c) => c.info.name === 'output.weight') && !arch.tie_word_embeddings) {
    throw new GgufExportError(
      `${recipe.model}: no lm_head.weight, and config.json does not tie the embeddings`,
      recipe.model,
    );
  }
  const bos = typeof cfg.bos_token_id === 'number' ? cfg.bos_token_id : undefined;
  const eos = typeof cfg.eos_token_id === 'number' ? cfg.eos_token_id : undefined;
  const base = ggufFileType(recipe);
  const metadata: Record<string, GgufValue> = {
    'general.architecture': gv.str('llama'),
    'general.name': gv.str(path.basename(path.dirname(recipe.model))),
    'general.file_type': gv.u32(FILE_TYPE_ID[base]),
    'general.quantization_version': gv.u32(2),
    'llama.context_length': gv.u32(arch.max_position_embeddings),
    'llama.embedding_length': gv.u32(arch.hidden_size),
    'llama.block_count': gv.u32(arch.num_hidden_layers),
    'llama.feed_forward_length': gv.u32(arch.intermediate_size),
    'llama.attention.head_count': gv.u32(arch.num_attention_heads),
    'llama.attention.head_count_kv': gv.u32(arch.num_key_value_heads),
    'llama.attention.key_length': gv.u32(arch.head_dim),
    'llama.attention.value_length': gv.u32(arch.head_dim),
    'llama.attention.layer_norm_rms_epsilon': gv.f32(arch.rms_norm_eps),
    'llama.rope.freq_base': gv.f32(arch.rope_theta),
    'llama.rope.dimension_count': gv.u32(arch.head_dim),
    'llama.vocab_size': gv.u32(arch.vocab_size),
    ...tokenizerMetadata(tokJson, arch, bos, eos),
  };
  const infos = chosen.map((c) => c.info);
  const { bytes } = await writeGguf(
    out,
    metadata,
    infos,
    async (i) => {
      const c = chosen[i];
      opts.onProgress?.(i, chosen.length, c.map.module);
      let w = await readTensorFloat32(c.init, model.baseDir);
      if (c.map.transpose) w = transpose(w, c.srcDims[0], c.srcDims[1]);
      if (c.map.permuteHeads) {
        const heads = c.map.permuteHeads === 'q' ? arch.num_attention_heads : arch.num_key_value_heads;
        w = permuteRows(w, c.info.dims[1], c.info.dims[0], heads);
      }
      return quantizeGguf(c.info.type, w, c.info.dims[0]);
    },
    opts.signal,
  );
  return {
    bytes,
    seconds: (Date.now() - t0) / 1000,
    tensors: infos.map((t) => ({ name: t.name, type: t.type, dims: t.dims })),
  };
}
