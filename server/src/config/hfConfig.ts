// The architecture a Hugging Face `config.json` describes, read through the family table
// (families.ts: GPT-2 says `n_embd`, Llama `hidden_size`) into one shape with Llama's names. Positional
// checks of the file for the editor live in the config checks; this module turns parsed JSON into numbers.
import { Family, familyOf, familyById, FAMILIES } from './families';

export interface QuantizationConfig {
  quant_method?: string;
  bits?: number;
  group_size?: number;
  sym?: boolean;
  desc_act?: boolean;
}

export interface ModelArchitecture {
  model_type: string;
  architectures: string[];
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  vocab_size: number;
  max_position_embeddings: number;
  rms_norm_eps: number;
  rope_theta: number;
  initializer_range: number;
  tie_word_embeddings: boolean;
  /** Qwen2 puts biases on q/k/v. */
  attention_bias: boolean;
  /** Id of the entry of the family table (families.ts); undefined for a model_type HAQA does not know. */
  family?: string;
  /** Sliding attention window in tokens (Mistral, Gemma 2, Phi-3), when config.json sets one. */
  sliding_window?: number;
  /** Gemma 2's tanh soft-capping of attention scores and of the final logits. */
  attn_logit_softcapping?: number;
  final_logit_softcapping?: number;
  /** Gemma 2: queries are scaled by query_pre_attn_scalar^-0.5. */
  query_pre_attn_scalar?: number;
  torch_dtype?: string;
  quantization_config?: QuantizationConfig;
}

export class HfConfigError extends Error {
  /** `key`: the config key at fault; `at`: the key whose value the diagnostic marks (default `key`). */
  constructor(
    message: string,
    readonly key?: string,
    readonly at?: string,
  ) {
    super(message);
  }
}

/** Read the architecture out of parsed config.json content; throws HfConfigError naming the key at fault. */
export function architectureFromConfig(cfg: unknown): ModelArchitecture {
  if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg))
    throw new HfConfigError('config.json must be a JSON object');
  const c = cfg as Record<string, unknown>;
  const model_type = typeof c.model_type === 'string' ? c.model_type : 'llama';
  const fam = familyOf(model_type);
  // An unknown model_type is read with Llama's keys (most decoders use them); synth refuses it.
  const keys = (fam ?? familyById('llama')).keys;
  /** The key config.json uses for a canonical size: the first alias present, else the family's own name. */
  const keyOf = (canon: keyof Family['keys']): string | undefined => {
    const ks = keys[canon];
    return ks.find((k) => c[k] !== undefined && c[k] !== null) ?? ks[0];
  };
  const int = (key: string | undefined, dflt?: number): number => {
    const v = key === undefined ? dflt : (c[key] ?? dflt);
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      throw new HfConfigError(
        v === undefined ? `missing '${key}'` : `'${key}' must be a positive integer, got ${JSON.stringify(v)}`,
        key,
      );
    }
    return v;
  };
  const numv = (key: string | undefined, dflt: number): number => {
    const v = key === undefined ? dflt : (c[key] ?? dflt);
    if (typeof v !== 'number' || !(v > 0))
      throw new HfConfigError(`'${key}' must be a positive number, got ${JSON.stringify(v)}`, key);
    return v;
  };
  const optNum = (key: string | undefined): number | undefined => {
    if (key === undefined || c[key] === undefined || c[key] === null) return undefined;
    return numv(key, 1);
  };
  const hiddenKey = keyOf('hidden_size')!;
  const headsKey = keyOf('num_attention_heads')!;
  const hidden_size = int(hiddenKey);
  const num_attention_heads = int(headsKey);
  const num_key_value_heads = int(keyOf('num_key_value_heads'), num_attention_heads);
  const head_dim =
    c.head_dim === undefined || c.head_dim === null ? hidden_size / num_attention_heads : int('head_dim');
  if (!Number.isInteger(head_dim)) {
    throw new HfConfigError(
      `${hiddenKey} ${hidden_size} is not a multiple of ${headsKey} ${num_attention_heads}`,
      headsKey,
      hiddenKey,
    );
  }
  const interKey = keyOf('intermediate_size');
  const intermediate_size =
    fam?.intermediateDefault && (interKey === undefined || c[interKey] === undefined || c[interKey] === null)
      ? fam.intermediateDefault(hidden_size)
      : int(interKey);
  const qc = c.quantization_config;
  const att = fam?.attention;
  // Qwen 2 writes `sliding_window` but uses it only with use_sliding_window: true.
  const slidingOn =
    att?.slidingWindow !== undefined && (att.slidingWindowSwitch === undefined || c[att.slidingWindowSwitch] === true);
  return {
    model_type,
    architectures: Array.isArray(c.architectures) ? c.architectures.map(String) : [],
    hidden_size,
    intermediate_size,
    num_hidden_layers: int(keyOf('num_hidden_layers')),
    num_attention_heads,
    num_key_value_heads,
    head_dim,
    vocab_size: int(keyOf('vocab_size')),
    max_position_embeddings: int(keyOf('max_position_embeddings'), 2048),
    rms_norm_eps: numv(keyOf('norm_eps'), 1e-6),
    rope_theta: numv('rope_theta', 10000),
    initializer_range: numv('initializer_range', 0.02),
    tie_word_embeddings: typeof c.tie_word_embeddings === 'boolean' ? c.tie_word_embeddings : fam?.tiedDefault === true,
    attention_bias: c.attention_bias === true || att?.bias === 'qkv' || att?.bias === 'all',
    torch_dtype: typeof c.torch_dtype === 'string' ? c.torch_dtype : undefined,
    quantization_config: typeof qc === 'object' && qc !== null ? (qc as QuantizationConfig) : undefined,
    family: fam?.id,
    sliding_window: slidingOn ? optNum(att!.slidingWindow) : undefined,
    attn_logit_softcapping: att?.softcap ? optNum(att.softcap.attn) : undefined,
    final_logit_softcapping: att?.softcap ? optNum(att.softcap.final) : undefined,
    query_pre_attn_scalar: att?.queryScaleKey ? optNum(att.queryScaleKey) : undefined,
  };
}

/** The family table entry of an architecture (undefined for a model_type HAQA does not know). */
export function familyOfArch(a: ModelArchitecture): Family | undefined {
  return a.family === undefined ? undefined : FAMILIES.find((f) => f.id === a.family);
}

/** Whether HAQA knows the architecture's family (the family table has an entry for its model_type). */
export function isKnownFamily(a: ModelArchitecture): boolean {
  return familyOfArch(a) !== undefined;
}

/** Parameters of a decoder of a known family (Llama's shape otherwise), from its config alone. */
export function parameterCount(a: ModelArchitecture): number {
  const f = familyOfArch(a) ?? familyById('llama');
  const H = a.hidden_size,
    I = a.intermediate_size,
    L = a.num_hidden_layers,
    V = a.vocab_size,
    D = a.head_dim;
  const kv = a.num_key_value_heads * D;
  const q = a.num_attention_heads * D;
  const allBias = f.attention.bias === 'all';
  const attn =
    H * q +
    2 * H * kv +
    q * H +
    (a.attention_bias ? q + 2 * kv : 0) +
    (allBias ? H : 0) +
    (f.attention.qkNorm ? 2 * D : 0);
  const mlp = (f.modules.mlp.gate || f.fused.some((x) => x.split === 'halves') ? 3 : 2) * H * I + (allBias ? I + H : 0);
  const normParams = f.norm === 'layer' ? 2 * H : H;
  const norms = f.modules.norms.length * normParams;
  const positions = f.modules.positions ? a.max_position_embeddings * H : 0;
  return V * H + positions + L * (attn + mlp + norms) + normParams + (a.tie_word_embeddings ? 0 : V * H);
}
