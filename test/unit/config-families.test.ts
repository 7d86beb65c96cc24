// The family table read through config.json: every family's own key names, its defaults and quirks,
// and the config checks' words for JSON syntax errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { synthesizeDecoder } from '../../server/src/model/synth';
import { architectureFromConfig, parameterCount } from '../../server/src/config/hfConfig';
import { FAMILIES, acceptedModelTypes, familyOf } from '../../server/src/config/families';
import { analyzeHfConfig } from '../../server/src/config/hfCheck';
import { ModelCache } from '../../server/src/config/modelCache';
import { messageText } from '../../server/src/config/diagnostics';
import { tempDir } from '../helpers/tinyModel';
import { FAMILY_CONFIGS } from '../helpers/familyConfigs';

const models = new ModelCache();
const dir = tempDir('haqa-fam-');
const check = (o: unknown) => analyzeHfConfig(JSON.stringify(o, null, 2), path.join(dir, 'config.json'), { models });

test('a valid GPT-2 config.json (n_embd, n_layer, n_head) is read, not refused for a missing hidden_size', async () => {
  const a = architectureFromConfig(FAMILY_CONFIGS.gpt2);
  assert.equal(a.family, 'gpt2');
  assert.equal(a.hidden_size, 32);
  assert.equal(a.num_hidden_layers, 2);
  assert.equal(a.num_attention_heads, 4);
  assert.equal(a.num_key_value_heads, 4);
  assert.equal(a.intermediate_size, 128, 'n_inner null means 4 × n_embd');
  assert.equal(a.max_position_embeddings, 128, 'n_positions');
  assert.equal(a.tie_word_embeddings, true, "GPT-2's head is tied unless config.json says otherwise");
  // GPT-2 small's published count: 124,439,808 parameters (embeddings, positions, 12 blocks, ln_f; tied head).
  const small = architectureFromConfig({
    model_type: 'gpt2',
    n_embd: 768,
    n_layer: 12,
    n_head: 12,
    vocab_size: 50257,
    n_positions: 1024,
  });
  assert.equal(parameterCount(small), 124_439_808);
  assert.deepEqual((await check(FAMILY_CONFIGS.gpt2)).diagnostics, []);
});

test("a GPT-2 config's errors name GPT-2's keys and point at them", async () => {
  const [d] = (await check({ ...FAMILY_CONFIGS.gpt2, n_head: 5 })).diagnostics;
  assert.equal(d.code, 'hidden-not-divisible');
  assert.match(messageText(d), /n_embd 32 is not a multiple of n_head 5/);
  const { n_layer: _drop, ...noLayers } = FAMILY_CONFIGS.gpt2;
  const [d2] = (await check(noLayers)).diagnostics;
  assert.match(messageText(d2), /missing 'n_layer'/);
});

test('every family in the table reads its tiny config cleanly; quirks land in the architecture', async () => {
  for (const f of FAMILIES) {
    const cfg = FAMILY_CONFIGS[f.id];
    assert.ok(cfg, `test/helpers/familyConfigs.ts lacks a config for family ${f.id}`);
    const a = architectureFromConfig(cfg);
    assert.equal(a.family, f.id);
    assert.deepEqual((await check(cfg)).diagnostics, [], f.id);
  }
  const g2 = architectureFromConfig(FAMILY_CONFIGS.gemma2);
  assert.equal(g2.head_dim, 16, 'explicit head_dim, not hidden / heads = 8');
  assert.equal(g2.attn_logit_softcapping, 50);
  assert.equal(g2.final_logit_softcapping, 30);
  assert.equal(g2.sliding_window, 8);
  assert.equal(g2.tie_word_embeddings, true);
  assert.equal(architectureFromConfig(FAMILY_CONFIGS.qwen2).attention_bias, true);
  const qwenOff = architectureFromConfig({ ...FAMILY_CONFIGS.qwen2, use_sliding_window: false, sliding_window: 64 });
  assert.equal(qwenOff.sliding_window, undefined);
  assert.equal(
    familyOf('phi3')!
      .fused.map((x) => x.module)
      .join(),
    'self_attn.qkv_proj,mlp.gate_up_proj',
  );
  for (const t of ['llama', 'mistral', 'qwen2', 'qwen3', 'phi3', 'gemma', 'gemma2', 'gpt2'])
    assert.ok(acceptedModelTypes().includes(t), t);
});

test('JSON syntax errors are said in words, not as parser codes', async () => {
  const a = await analyzeHfConfig('{\n  "model_type": "llama"\n  "hidden_size": 64\n}', path.join(dir, 'config.json'), {
    models,
  });
  const d = a.diagnostics.find((x) => x.code === 'json-syntax');
  assert.ok(d);
  assert.doesNotMatch(messageText(d!), /CommaExpected|[A-Z][a-z]+Expected/);
  assert.match(messageText(d!), /',' is expected/);
  assert.equal(d!.range.start.line, 2);
});

test("config.json beside a GPT-2 or Phi-3 model is compared with the graph at the family's module paths", async () => {
  for (const id of ['gpt2', 'phi3']) {
    const ws = tempDir(`haqa-fam-${id}-`);
    await synthesizeDecoder(architectureFromConfig(FAMILY_CONFIGS[id]), { out: path.join(ws, 'model.onnx') });
    const run = (o: Record<string, unknown>) =>
      analyzeHfConfig(JSON.stringify(o, null, 2), path.join(ws, 'config.json'), { models: new ModelCache() });
    assert.deepEqual(
      (await run(FAMILY_CONFIGS[id])).diagnostics.map((d) => messageText(d)),
      [],
      id,
    );
    const layersKey = id === 'gpt2' ? 'n_layer' : 'num_hidden_layers';
    const bad = await run({ ...FAMILY_CONFIGS[id], [layersKey]: 3 });
    const d = bad.diagnostics.find((x) => x.code === 'config-graph-mismatch');
    assert.ok(d, id);
    assert.match(messageText(d!), new RegExp(`${layersKey} is 3 but model\\.onnx has 2`));
    fs.rmSync(ws, { recursive: true, force: true });
  }
});

test('the example configs of other families (examples/configs/families) are read and check clean', async () => {
  const d = path.join(__dirname, '..', '..', 'examples', 'configs', 'families');
  const want: Record<string, string> = {
    'gpt2.json': 'gpt2',
    'Phi-3-mini-4k.json': 'phi3',
    'gemma-2-2b.json': 'gemma2',
  };
  for (const [f, fam] of Object.entries(want)) {
    const text = fs.readFileSync(path.join(d, f), 'utf8');
    const a = await analyzeHfConfig(text, path.join(d, f), { models });
    assert.deepEqual(a.diagnostics, [], f);
    assert.equal(a.arch?.family, fam, f);
  }
  // Gemma 2 2B: head_dim 256 while hidden / heads is 288.
  const g = architectureFromConfig(JSON.parse(fs.readFileSync(path.join(d, 'gemma-2-2b.json'), 'utf8')));
  assert.equal(g.head_dim, 256);
  assert.equal(g.tie_word_embeddings, true);
});
