// The trained fixture (examples/tiny-llama, made by scripts/fixtures/make_tiny_llama.py) run from
// TypeScript: the tokenizer matches the Python one, onnxruntime reproduces the perplexity recorded at
// export time, the KV cache gives the same logits as a full pass, and the interface is the documented one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer } from '../../server/src/model/tokenizer';
import { DecoderSession, KvCache } from '../../server/src/model/decoder';
import { perplexity } from '../../server/src/bench/perplexity';
import { readModel } from '../../server/src/model/onnx';

const DIR = path.resolve(__dirname, '../../examples/tiny-llama');
const MODEL = path.join(DIR, 'model.onnx');
const fixture = JSON.parse(fs.readFileSync(path.join(DIR, 'fixture.json'), 'utf8'));
const config = JSON.parse(fs.readFileSync(path.join(DIR, 'config.json'), 'utf8'));
const evalText = fs.readFileSync(path.join(DIR, 'data', 'eval.txt'), 'utf8');
const tokenizer = Tokenizer.fromFile(path.join(DIR, 'tokenizer.json'));

test('tokenizer: reproduces the Python tokenizer and round-trips the eval text', () => {
  const first200 = Array.from(evalText).slice(0, 200).join(''); // characters = code points, as in Python
  assert.equal(first200, fixture.expected_text);
  assert.deepEqual(tokenizer.encode(first200), fixture.expected_tokens);
  const ids = tokenizer.encode(evalText);
  assert.equal(ids.length, fixture.eval_tokens);
  assert.equal(tokenizer.decode(ids), evalText);
  assert.equal(tokenizer.vocabSize, config.vocab_size);
  const special = '<|endoftext|>';
  assert.deepEqual(tokenizer.encode(`a${special}b`), [
    ...tokenizer.encode('a'),
    config.eos_token_id,
    ...tokenizer.encode('b'),
  ]);
});

test('tokenizer: unsupported types are named in the error', () => {
  assert.throws(() => new Tokenizer({ model: { type: 'Unigram', vocab: [] } }), /unsupported model type "Unigram"/);
  const bpe = { type: 'BPE', vocab: { a: 0 }, merges: [] };
  assert.throws(
    () => new Tokenizer({ model: bpe, pre_tokenizer: { type: 'Metaspace' } }),
    /unsupported pre_tokenizer type "Metaspace"/,
  );
  assert.throws(
    () => new Tokenizer({ model: bpe, pre_tokenizer: { type: 'ByteLevel' }, decoder: { type: 'WordPiece' } }),
    /unsupported decoder type "WordPiece"/,
  );
});

test('the interface is exactly docs/decoder-interface.md: names, dtypes, ranks', async () => {
  const s = await DecoderSession.create(MODEL);
  try {
    const L = config.num_hidden_layers;
    const kv = (p: string) => Array.from({ length: L }, (_, i) => [`${p}.${i}.key`, `${p}.${i}.value`]).flat();
    assert.deepEqual(s.session.inputNames, ['input_ids', 'attention_mask', 'position_ids', ...kv('past_key_values')]);
    assert.deepEqual(s.session.outputNames, ['logits', ...kv('present')]);
    const sig = (ms: typeof s.session.inputMetadata) =>
      ms.map((m) => (m.isTensor ? `${m.name} ${m.type} rank${m.shape.length}` : m.name));
    assert.deepEqual(sig(s.session.inputMetadata), [
      'input_ids int64 rank2',
      'attention_mask int64 rank2',
      'position_ids int64 rank2',
      ...kv('past_key_values').map((n) => `${n} float32 rank4`),
    ]);
    assert.deepEqual(sig(s.session.outputMetadata), [
      'logits float32 rank3',
      ...kv('present').map((n) => `${n} float32 rank4`),
    ]);
    assert.equal(s.numLayers, L);
    assert.equal(s.numKvHeads, config.num_key_value_heads);
    assert.equal(s.headDim, config.hidden_size / config.num_attention_heads);
    assert.ok(config.num_key_value_heads < config.num_attention_heads, 'the fixture uses grouped-query attention');
  } finally {
    await s.release();
  }
  // Every Linear is a MatMul named by its module scope, with a constant [K, N] weight named after it.
  const m = await readModel(MODEL);
  const g = m.proto.graph!;
  const inits = new Map((g.initializer ?? []).map((t) => [t.name!, t]));
  const matmuls = (g.node ?? []).filter((n) => n.opType === 'MatMul' && inits.has(n.input![1]));
  const modules = matmuls.map((n) =>
    n
      .name!.replace(/\/MatMul$/, '')
      .replace(/^\//, '')
      .replace(/\//g, '.'),
  );
  const expected = ['lm_head'];
  for (let i = 0; i < config.num_hidden_layers; i++) {
    for (const p of [
      'self_attn.q_proj',
      'self_attn.k_proj',
      'self_attn.v_proj',
      'self_attn.o_proj',
      'mlp.gate_proj',
      'mlp.up_proj',
      'mlp.down_proj',
    ]) {
      expected.push(`model.layers.${i}.${p}`);
    }
  }
  assert.deepEqual([...modules].sort(), expected.sort());
  for (const n of matmuls) {
    const mod = n
      .name!.replace(/\/MatMul$/, '')
      .replace(/^\//, '')
      .replace(/\//g, '.');
    assert.equal(n.input![1], `${mod}.weight`);
    assert.equal(inits.get(n.input![1])!.dims!.length, 2);
  }
  assert.ok(
    !(g.node ?? []).some((n) => n.opType === 'Transpose' && inits.has(n.input![0])),
    'no weight Transpose left',
  );
});

test('onnxruntime reproduces the recorded held-out perplexity', async () => {
  const s = await DecoderSession.create(MODEL, { config });
  try {
    const r = await perplexity(s, tokenizer.encode(evalText), fixture.window);
    assert.equal(r.tokens, fixture.scored_tokens);
    assert.ok(
      Math.abs(r.ppl - fixture.ppl_eval) / fixture.ppl_eval < 1e-3,
      `ppl ${r.ppl} vs recorded ${fixture.ppl_eval}`,
    );
    assert.ok(
      r.ppl < fixture.unigram_ppl_eval / 2,
      `the model (${r.ppl}) beats a unigram model (${fixture.unigram_ppl_eval}) clearly`,
    );
  } finally {
    await s.release();
  }
});

test('incremental decoding with the cache gives the logits of one full pass', async () => {
  const s = await DecoderSession.create(fs.readFileSync(MODEL), { config });
  try {
    const ids = tokenizer.encode(evalText).slice(0, 20);
    const full = await s.step([ids]);
    const V = full.logits.dims[2];
    assert.deepEqual(full.logits.dims, [1, 20, V]);
    const got: Float32Array[] = [];
    let { logits, cache } = await s.step([ids.slice(0, 10)]);
    assert.equal(cache.length, 10);
    for (let t = 0; t < 10; t++) got.push(logits.data.subarray(t * V, (t + 1) * V));
    for (let t = 10; t < 20; t++) {
      const r: { logits: typeof logits; cache: KvCache } = await s.step([[ids[t]]], cache);
      assert.deepEqual(r.logits.dims, [1, 1, V]);
      assert.deepEqual(r.cache.keys[0].dims, [1, config.num_key_value_heads, t + 1, s.headDim]);
      got.push(r.logits.data);
      ({ logits, cache } = r);
    }
    let maxDiff = 0;
    for (let t = 0; t < 20; t++) {
      const want = full.logits.data.subarray(t * V, (t + 1) * V);
      for (let v = 0; v < V; v++) maxDiff = Math.max(maxDiff, Math.abs(want[v] - got[t][v]));
    }
    assert.ok(maxDiff < 1e-4, `max abs diff ${maxDiff}`);
  } finally {
    await s.release();
  }
});
