// A float64 reference of the Llama-family forward pass, written the plain way (loops, one token at a
// time, no cache tricks), against which ONNX graphs are checked: the synthesized ones, and any model
// whose weights follow HF names. Slow on purpose; for configs of a few thousand parameters.
import type { ModelArchitecture } from '../../config/hfConfig';

/** Weights by HF name, in the layout the ONNX graph stores them ([K, N] for linear layers). */
export type WeightLookup = (name: string) => Float32Array | undefined;

/**
 * Logits for every position of one unpadded sequence (positions 0..n-1), causal attention.
 * Returns n rows of vocab_size values.
 */
export function referenceLogits(a: ModelArchitecture, weights: WeightLookup, tokens: number[]): Float64Array[] {
  const H = a.hidden_size;
  const nH = a.num_attention_heads;
  const nKV = a.num_key_value_heads;
  const D = a.head_dim;
  const I = a.intermediate_size;
  const V = a.vocab_size;
  const half = D / 2;
  const w = (name: string): Float32Array => {
    const t = weights(name);
    if (!t) throw new Error(`reference: weight ${name} missing`);
    return t;
  };
  const rms = (x: Float64Array, g: Float32Array): Float64Array => {
    let ss = 0;
    for (let i = 0; i < x.length; i++) ss += x[i] * x[i];
    const r = 1 / Math.sqrt(ss / x.length + a.rms_norm_eps);
    return x.map((v, i) => v * r * g[i]);
  };
  // y[n] = Σ_k x[k] W[k, n] (+ b[n])
  const linear = (x: Float64Array, W: Float32Array, N: number, b?: Float32Array): Float64Array => {
    const y = new Float64Array(N);
    for (let k = 0; k < x.length; k++) {
      const xk = x[k];
      for (let n = 0; n < N; n++) y[n] += xk * W[k * N + n];
    }
    if (b) for (let n = 0; n < N; n++) y[n] += b[n];
    return y;
  };
  // rotate pairs (i, i + half) of each head by pos * theta^(-2i/D): the rotate_half convention.
  const rope = (v: Float64Array, heads: number, pos: number): Float64Array => {
    const out = new Float64Array(v.length);
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < half; i++) {
        const ang = pos / a.rope_theta ** ((2 * i) / D);
        const c = Math.cos(ang),
          s = Math.sin(ang);
        const x1 = v[h * D + i],
          x2 = v[h * D + half + i];
        out[h * D + i] = x1 * c - x2 * s;
        out[h * D + half + i] = x2 * c + x1 * s;
      }
    }
    return out;
  };

  const bias = (name: string): Float32Array | undefined => (a.attention_bias ? w(name) : undefined);
  const E = w('model.embed_tokens.weight');
  let xs: Float64Array[] = tokens.map((t) => Float64Array.from(E.subarray(t * H, (t + 1) * H)));
  for (let l = 0; l < a.num_hidden_layers; l++) {
    const m = `model.layers.${l}`;
    const ks: Float64Array[] = [];
    const vs: Float64Array[] = [];
    const next: Float64Array[] = [];
    for (let t = 0; t < xs.length; t++) {
      const xn = rms(xs[t], w(`${m}.input_layernorm.weight`));
      const q = rope(linear(xn, w(`${m}.self_attn.q_proj.weight`), nH * D, bias(`${m}.self_attn.q_proj.bias`)), nH, t);
      ks.push(rope(linear(xn, w(`${m}.self_attn.k_proj.weight`), nKV * D, bias(`${m}.self_attn.k_proj.bias`)), nKV, t));
      vs.push(linear(xn, w(`${m}.self_attn.v_proj.weight`), nKV * D, bias(`${m}.self_attn.v_proj.bias`)));
      const ctx = new Float64Array(nH * D);
      for (let h = 0; h < nH; h++) {
        const g = Math.floor(h / (nH / nKV)); // repeat_kv: query head h reads kv head h / n_rep
        const scores = new Float64Array(t + 1);
        for (let j = 0; j <= t; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[h * D + d] * ks[j][g * D + d];
          scores[j] = dot / Math.sqrt(D);
        }
        const mx = Math.max(...scores);
        let sum = 0;
        for (let j = 0; j <= t; j++) sum += scores[j] = Math.exp(scores[j] - mx);
        for (let j = 0; j <= t; j++) for (let d = 0; d < D; d++) ctx[h * D + d] += (scores[j] / sum) * vs[j][g * D + d];
      }
      const hres = linear(ctx, w(`${m}.self_attn.o_proj.weight`), H).map((v, i) => v + xs[t][i]);
      const hn = rms(hres, w(`${m}.post_attention_layernorm.weight`));
      const gate = linear(hn, w(`${m}.mlp.gate_proj.weight`), I);
      const up = linear(hn, w(`${m}.mlp.up_proj.weight`), I);
      const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]);
      next.push(linear(act, w(`${m}.mlp.down_proj.weight`), H).map((v, i) => v + hres[i]));
    }
    xs = next;
  }
  return xs.map((x) => {
    const xf = rms(x, w('model.norm.weight'));
    if (!a.tie_word_embeddings) return linear(xf, w('lm_head.weight'), V);
    const y = new Float64Array(V);
    for (let v = 0; v < V; v++) for (let k = 0; k < H; k++) y[v] += xf[k] * E[v * H + k];
    return y;
  });
}
