// Tiny config.json contents of every family in config/families.ts, spelled the way each family's own
// config.json spells them (GPT-2: n_embd/n_layer/n_head; Gemma 2: head_dim, soft-capping, sliding window).
export const FAMILY_CONFIGS: Record<string, Record<string, unknown>> = {
  llama: {
    model_type: 'llama', architectures: ['LlamaForCausalLM'], hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 96, max_position_embeddings: 128, rms_norm_eps: 1e-5,
  },
  mistral: {
    model_type: 'mistral', architectures: ['MistralForCausalLM'], hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 96, max_position_embeddings: 128, sliding_window: 4096,
  },
  qwen2: {
    model_type: 'qwen2', architectures: ['Qwen2ForCausalLM'], hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 96, max_position_embeddings: 128, tie_word_embeddings: true,
  },
  qwen3: {
    model_type: 'qwen3', architectures: ['Qwen3ForCausalLM'], hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, vocab_size: 96, max_position_embeddings: 128,
  },
  phi3: {
    model_type: 'phi3', architectures: ['Phi3ForCausalLM'], hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 4, vocab_size: 96, max_position_embeddings: 128, sliding_window: 2047,
  },
  gemma: {
    model_type: 'gemma', architectures: ['GemmaForCausalLM'], hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 1, head_dim: 16, vocab_size: 96, max_position_embeddings: 128,
  },
  gemma2: {
    model_type: 'gemma2', architectures: ['Gemma2ForCausalLM'], hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, vocab_size: 96, max_position_embeddings: 128,
    attn_logit_softcapping: 50.0, final_logit_softcapping: 30.0, sliding_window: 8, query_pre_attn_scalar: 16,
  },
  starcoder2: {
    model_type: 'starcoder2', architectures: ['Starcoder2ForCausalLM'], hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 96, max_position_embeddings: 128, norm_epsilon: 1e-5,
    use_bias: true, sliding_window: 4096,
  },
  gpt2: {
    model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], n_embd: 32, n_layer: 2, n_head: 4, n_inner: null,
    vocab_size: 96, n_positions: 128, layer_norm_epsilon: 1e-5, activation_function: 'gelu_new',
  },
};
