// THE family table: one entry per decoder architecture HAQA knows, as data. Everything that differs
// between Llama, Qwen, Mistral, Phi-3, Gemma, Gemma 2 and GPT-2 lives here — how config.json names its
// sizes, where the blocks and their projections sit in the module tree, which projections are fused and
// how they split, the norm, the activation, attention quirks and whether the head is tied. hfConfig.ts
// reads config.json through it, model/layerNames.ts names layers with it, the config checks compare
// config and graph with it, and synth builds each family's graph from it. Adding a family is adding an
// entry here (and its tests); docs/families.md shows one such diff.

/** Canonical size names (Llama's spelling) → the keys a family's config.json uses, first found wins. */
export interface SizeKeys {
  hidden_size: string[];
  num_hidden_layers: string[];
  num_attention_heads: string[];
  num_key_value_heads: string[];
  intermediate_size: string[];
  vocab_size: string[];
  max_position_embeddings: string[];
  norm_eps: string[];
}

/** A fused projection: one weight whose output columns are the parts, in order. */
export interface FusedProjection {
  /** Leaf module name inside the block, e.g. `self_attn.qkv_proj`. */
  module: string;
  /** What its output columns hold, in order (`q`, `k`, `v`; `gate`, `up`). */
  parts: string[];
  /** `qkv`: widths heads·D, kv·D, kv·D; `halves`: two equal halves (gate, up). */
  split: 'qkv' | 'halves';
}

export interface Family {
  /** Stable id, also the first of `modelTypes`. */
  id: string;
  /** Human name for messages. */
  label: string;
  /** `model_type` values of config.json that mean this family. */
  modelTypes: string[];
  /** Config keys per canonical size; GPT-2 says `n_embd`, everyone else `hidden_size`. */
  keys: SizeKeys;
  /** intermediate size when config.json leaves it out or null (GPT-2's n_inner: 4 × hidden). */
  intermediateDefault?: (hidden: number) => number;
  /** Module paths. `blocks` is followed by `.<i>.`; projections are relative to a block. */
  modules: {
    embed: string;
    /** Learned absolute positions (GPT-2's wpe); absent: rotary. */
    positions?: string;
    blocks: string;
    finalNorm: string;
    head: string;
    /** Norms inside a block, in order of use. */
    norms: string[];
    /** Attention projections: q, k, v, o (the fused ones name their fused module instead). */
    attn: { q?: string; k?: string; v?: string; o: string };
    /** MLP projections: gate and up (SwiGLU/GeGLU) or only up (GPT-2's c_fc), then down. */
    mlp: { gate?: string; up: string; down: string };
  };
  fused: FusedProjection[];
  /** `rms`: x / rms · w; `rms1`: Gemma's x / rms · (1 + w); `layer`: LayerNorm with weight and bias. */
  norm: 'rms' | 'rms1' | 'layer';
  /** MLP activation: SwiGLU (silu), GeGLU with tanh GELU (Gemma), GELU MLP (GPT-2, tanh approximation). */
  activation: 'silu' | 'gelu_tanh_glu' | 'gelu_tanh';
  /** How linear weights are stored by the module: nn.Linear [out, in] or GPT-2's Conv1D [in, out]. */
  weightLayout: 'linear' | 'conv1d';
  attention: {
    /** Biases on q/k/v (Qwen 2), on every projection (GPT-2), or none; config `attention_bias` adds them. */
    bias: 'none' | 'qkv' | 'all';
    /** head_dim is a key of its own that may differ from hidden / heads (Gemma, Gemma 2, Qwen 3). */
    explicitHeadDim: boolean;
    /** Config keys of tanh soft-capping (Gemma 2): scores and final logits. */
    softcap?: { attn: string; final: string };
    /** Config key of the sliding attention window (Mistral, Gemma 2, Qwen 2 when enabled). */
    slidingWindow?: string;
    /** Config key that must be true for the window to apply (Qwen 2's use_sliding_window, off by default). */
    slidingWindowSwitch?: string;
    /** Which layers use the window: all, or the even ones (Gemma 2 alternates sliding and global layers). */
    slidingLayers?: 'all' | 'even';
    /** Qwen 3: RMSNorm on q and k per head before rotary. */
    qkNorm?: boolean;
    /** Gemma 2: queries scaled by query_pre_attn_scalar^-0.5 instead of head_dim^-0.5. */
    queryScaleKey?: string;
    /** Gemma: the embedding output is multiplied by sqrt(hidden). */
    embedScale?: boolean;
    /** Gemma 2: extra norms after attention and after the MLP (sandwich norms). */
    postNorms?: boolean;
  };
  /** Whether the head is tied to the embedding when config.json does not say (`tie_word_embeddings`). */
  tiedDefault: boolean;
  /** The family's synthesized graph differs from the real one in these respects (synth prints them). */
  synthNotes?: string[];
}

const LLAMA_KEYS: SizeKeys = {
  hidden_size: ['hidden_size'],
  num_hidden_layers: ['num_hidden_layers'],
  num_attention_heads: ['num_attention_heads'],
  num_key_value_heads: ['num_key_value_heads'],
  intermediate_size: ['intermediate_size'],
  vocab_size: ['vocab_size'],
  max_position_embeddings: ['max_position_embeddings'],
  norm_eps: ['rms_norm_eps'],
};

const LLAMA_MODULES: Family['modules'] = {
  embed: 'model.embed_tokens',
  blocks: 'model.layers',
  finalNorm: 'model.norm',
  head: 'lm_head',
  norms: ['input_layernorm', 'post_attention_layernorm'],
  attn: { q: 'self_attn.q_proj', k: 'self_attn.k_proj', v: 'self_attn.v_proj', o: 'self_attn.o_proj' },
  mlp: { gate: 'mlp.gate_proj', up: 'mlp.up_proj', down: 'mlp.down_proj' },
};

const llamaLike = (over: Partial<Family> & Pick<Family, 'id' | 'label' | 'modelTypes'>): Family => ({
  keys: LLAMA_KEYS,
  modules: LLAMA_MODULES,
  fused: [],
  norm: 'rms',
  activation: 'silu',
  weightLayout: 'linear',
  attention: { bias: 'none', explicitHeadDim: false },
  tiedDefault: false,
  ...over,
});

export const FAMILIES: readonly Family[] = [
  llamaLike({ id: 'llama', label: 'Llama 2/3', modelTypes: ['llama', 'granite'] }),
  llamaLike({
    id: 'mistral',
    label: 'Mistral',
    modelTypes: ['mistral'],
    attention: { bias: 'none', explicitHeadDim: true, slidingWindow: 'sliding_window' },
  }),
  llamaLike({
    id: 'qwen2',
    label: 'Qwen 2/2.5',
    modelTypes: ['qwen2'],
    attention: {
      bias: 'qkv',
      explicitHeadDim: false,
      slidingWindow: 'sliding_window',
      slidingWindowSwitch: 'use_sliding_window',
    },
  }),
  llamaLike({
    id: 'qwen3',
    label: 'Qwen 3',
    modelTypes: ['qwen3'],
    attention: { bias: 'none', explicitHeadDim: true, qkNorm: true },
    synthNotes: ['the per-head q/k RMSNorm of Qwen 3 is not modelled (it has no compressible weights)'],
  }),
  llamaLike({
    id: 'phi3',
    label: 'Phi-3',
    modelTypes: ['phi3'],
    modules: {
      ...LLAMA_MODULES,
      attn: { o: 'self_attn.o_proj' },
      mlp: { up: 'mlp.gate_up_proj', down: 'mlp.down_proj' },
    },
    fused: [
      { module: 'self_attn.qkv_proj', parts: ['q', 'k', 'v'], split: 'qkv' },
      { module: 'mlp.gate_up_proj', parts: ['gate', 'up'], split: 'halves' },
    ],
    attention: { bias: 'none', explicitHeadDim: false, slidingWindow: 'sliding_window' },
  }),
  llamaLike({
    id: 'gemma',
    label: 'Gemma',
    modelTypes: ['gemma'],
    norm: 'rms1',
    activation: 'gelu_tanh_glu',
    tiedDefault: true,
    attention: { bias: 'none', explicitHeadDim: true, embedScale: true },
  }),
  llamaLike({
    id: 'gemma2',
    label: 'Gemma 2',
    modelTypes: ['gemma2'],
    modules: {
      ...LLAMA_MODULES,
      norms: ['input_layernorm', 'post_attention_layernorm', 'pre_feedforward_layernorm', 'post_feedforward_layernorm'],
    },
    norm: 'rms1',
    activation: 'gelu_tanh_glu',
    tiedDefault: true,
    attention: {
      bias: 'none',
      explicitHeadDim: true,
      embedScale: true,
      postNorms: true,
      softcap: { attn: 'attn_logit_softcapping', final: 'final_logit_softcapping' },
      slidingWindow: 'sliding_window',
      slidingLayers: 'even',
      queryScaleKey: 'query_pre_attn_scalar',
    },
  }),
  llamaLike({
    id: 'starcoder2',
    label: 'StarCoder2',
    modelTypes: ['starcoder2'],
    keys: { ...LLAMA_KEYS, norm_eps: ['norm_epsilon'] },
    modules: { ...LLAMA_MODULES, mlp: { up: 'mlp.c_fc', down: 'mlp.c_proj' } },
    norm: 'layer',
    activation: 'gelu_tanh',
    tiedDefault: true,
    attention: { bias: 'all', explicitHeadDim: false, slidingWindow: 'sliding_window' },
  }),
  {
    id: 'gpt2',
    label: 'GPT-2',
    modelTypes: ['gpt2'],
    keys: {
      hidden_size: ['n_embd', 'hidden_size'],
      num_hidden_layers: ['n_layer', 'num_hidden_layers'],
      num_attention_heads: ['n_head', 'num_attention_heads'],
      num_key_value_heads: [],
      intermediate_size: ['n_inner'],
      vocab_size: ['vocab_size'],
      max_position_embeddings: ['n_positions', 'n_ctx'],
      norm_eps: ['layer_norm_epsilon'],
    },
    intermediateDefault: (h) => 4 * h,
    modules: {
      embed: 'transformer.wte',
      positions: 'transformer.wpe',
      blocks: 'transformer.h',
      finalNorm: 'transformer.ln_f',
      head: 'lm_head',
      norms: ['ln_1', 'ln_2'],
      attn: { o: 'attn.c_proj' },
      mlp: { up: 'mlp.c_fc', down: 'mlp.c_proj' },
    },
    fused: [{ module: 'attn.c_attn', parts: ['q', 'k', 'v'], split: 'qkv' }],
    norm: 'layer',
    activation: 'gelu_tanh',
    weightLayout: 'conv1d',
    attention: { bias: 'all', explicitHeadDim: false },
    tiedDefault: true,
  },
];

const BY_TYPE = new Map<string, Family>(FAMILIES.flatMap((f) => f.modelTypes.map((t) => [t, f] as [string, Family])));

/** The family of a config.json `model_type`, if HAQA knows it. */
export function familyOf(modelType: string): Family | undefined {
  return BY_TYPE.get(modelType);
}

export function familyById(id: string): Family {
  const f = FAMILIES.find((x) => x.id === id);
  if (!f) throw new Error(`unknown family '${id}'`);
  return f;
}

/** `llama (llama, granite), mistral, …`: the accepted model_type values, for messages. */
export function acceptedModelTypes(): string {
  return FAMILIES.flatMap((f) => f.modelTypes).join(', ');
}

/** Every leaf projection path inside a block (fused ones included), e.g. `attn.c_attn`, `mlp.down_proj`. */
export function projectionPaths(f: Family): string[] {
  const { attn, mlp } = f.modules;
  const all = [attn.q, attn.k, attn.v, attn.o, mlp.gate, mlp.up, mlp.down, ...f.fused.map((x) => x.module)];
  return [...new Set(all.filter((x): x is string => x !== undefined))];
}

/** Last path segments of every projection of every family (`c_proj`, `q_proj`, `gate_up_proj`, …). */
export const PROJECTION_LEAVES: ReadonlySet<string> = new Set(
  FAMILIES.flatMap((f) => projectionPaths(f).map((p) => p.split('.').pop()!)),
);

/** The family whose module tree a set of initializer names follows (embedding or block paths), if any. */
export function familyFromWeights(names: Iterable<string>): Family | undefined {
  const list = [...names];
  for (const f of FAMILIES) {
    if (f.modules.blocks === 'model.layers') continue;
    if (list.some((n) => n.startsWith(`${f.modules.blocks}.`) || n.startsWith(`${f.modules.embed}.`))) return f;
  }
  return list.some((n) => n.startsWith('model.layers.') || n.startsWith('model.embed_tokens.'))
    ? familyById('llama')
    : undefined;
}

/** Output widths of the parts of a fused projection. */
export function fusedWidths(
  p: FusedProjection,
  dims: { heads: number; kvHeads: number; headDim: number; intermediate: number },
): number[] {
  if (p.split === 'halves') return [dims.intermediate, dims.intermediate];
  return [dims.heads * dims.headDim, dims.kvHeads * dims.headDim, dims.kvHeads * dims.headDim];
}
