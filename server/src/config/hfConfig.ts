// The architecture a Hugging Face `config.json` describes, for the Llama family (Llama, Qwen2, Mistral,
// Phi-3 use the same keys) — the one place that knows those keys. Positional checks of the file for the
// editor live in the config checks; this module turns parsed JSON into numbers.

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
  torch_dtype?: string;
  quantization_config?: QuantizationConfig;
}

export class HfConfigError extends Error {
  constructor(message: string, readonly key?: string) {
    super(message);
  }
}

const LLAMA_FAMILY = new Set(['llama', 'mistral', 'qwen2', 'qwen3', 'phi3', 'gemma', 'granite']);

/** Read the architecture out of parsed config.json content; throws HfConfigError naming the key at fault. */
export function architectureFromConfig(cfg: unknown): ModelArchitecture {
  if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg)) throw new HfConfigError('config.json must be a JSON object');
  const c = cfg as Record<string, unknown>;
  const int = (key: string, dflt?: number): number => {
    const v = c[key] ?? dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      throw new HfConfigError(v === undefined ? `missing '${key}'` : `'${key}' must be a positive integer, got ${JSON.stringify(v)}`, key);
    }
    return v;
  };
  const numv = (key: string, dflt: number): number => {
    const v = c[key] ?? dflt;
    if (typeof v !== 'number' || !(v > 0)) throw new HfConfigError(`'${key}' must be a positive number, got ${JSON.stringify(v)}`, key);
    return v;
  };
  const model_type = typeof c.model_type === 'string' ? c.model_type : 'llama';
  const hidden_size = int('hidden_size');
  const num_attention_heads = int('num_attention_heads');
  const num_key_value_heads = int('num_key_value_heads', num_attention_heads);
  const head_dim = c.head_dim === undefined || c.head_dim === null ? hidden_size / num_attention_heads : int('head_dim');
  if (!Number.isInteger(head_dim)) {
    throw new HfConfigError(`hidden_size ${hidden_size} is not a multiple of num_attention_heads ${num_attention_heads}`, 'num_attention_heads');
  }
  const qc = c.quantization_config;
  return {
    model_type,
    architectures: Array.isArray(c.architectures) ? c.architectures.map(String) : [],
    hidden_size,
    intermediate_size: int('intermediate_size'),
    num_hidden_layers: int('num_hidden_layers'),
    num_attention_heads,
    num_key_value_heads,
    head_dim,
    vocab_size: int('vocab_size'),
    max_position_embeddings: int('max_position_embeddings', 2048),
    rms_norm_eps: numv('rms_norm_eps', 1e-6),
    rope_theta: numv('rope_theta', 10000),
    initializer_range: numv('initializer_range', 0.02),
    tie_word_embeddings: c.tie_word_embeddings === true,
    attention_bias: c.attention_bias === true || model_type === 'qwen2',
    torch_dtype: typeof c.torch_dtype === 'string' ? c.torch_dtype : undefined,
    quantization_config: typeof qc === 'object' && qc !== null ? (qc as QuantizationConfig) : undefined,
  };
}

export function isLlamaFamily(a: ModelArchitecture): boolean {
  return LLAMA_FAMILY.has(a.model_type);
}

/** Parameters of a Llama-family decoder, from its config alone. */
export function parameterCount(a: ModelArchitecture): number {
  const H = a.hidden_size, I = a.intermediate_size, L = a.num_hidden_layers, V = a.vocab_size;
  const kv = a.num_key_value_heads * a.head_dim;
  const q = a.num_attention_heads * a.head_dim;
  const attn = H * q + 2 * H * kv + q * H + (a.attention_bias ? q + 2 * kv : 0);
  const mlp = 3 * H * I;
  const norms = 2 * H;
  return V * H + L * (attn + mlp + norms) + H + (a.tie_word_embeddings ? 0 : V * H);
}
