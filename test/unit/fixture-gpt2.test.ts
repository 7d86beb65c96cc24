// The second trained fixture (examples/tiny-gpt2, made by scripts/fixtures/make_tiny_gpt2.py): a GPT-2 with
// Conv1D weights read by Gemm, a fused c_attn, learned positions and a tied head whose weight the exporter
// named `onnx::MatMul_…`. Its recipe names layers the Hugging Face way; this checks that the recipe is
// clean, that quantization follows it (the head stays float), that the model is trained (perplexity far
// below guessing) and that the 4-bit recipe costs a finite, small perplexity increase.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { analyzeRecipe } from '../../server/src/config/check';
import { ModelCache } from '../../server/src/config/modelCache';
import { messageText } from '../../server/src/config/diagnostics';
import { architectureFromConfig } from '../../server/src/config/hfConfig';
import { Recipe } from '../../server/src/config/recipe';
import { compressModel } from '../../server/src/compress/pipeline';
import { inspectModel } from '../../server/src/model/graph';
import { runRecipe } from '../../server/src/bench/run';
import { main } from '../../server/src/cli';
import { tempDir } from '../helpers/tinyModel';

const DIR = path.resolve(__dirname, '../../examples/tiny-gpt2');
const MODEL = path.join(DIR, 'model.onnx');
const RECIPE = path.join(DIR, 'haqa.yaml');
const missing =
  !fs.existsSync(MODEL) && `the trained fixture ${MODEL} is not there (scripts/fixtures/make_tiny_gpt2.sh makes it)`;

async function loadRecipe(): Promise<Recipe> {
  const a = await analyzeRecipe(fs.readFileSync(RECIPE, 'utf8'), RECIPE, { models: new ModelCache() });
  assert.deepEqual(
    a.diagnostics.map((d) => `${d.code}: ${messageText(d)}`),
    [],
    'the example recipe checks clean',
  );
  return a.recipe!;
}

const PROJECTIONS = ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'];

test(
  'tiny-gpt2: haqa check is clean; GPT-2 config keys are read and layers get their HF names',
  { skip: missing },
  async () => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(['check', RECIPE], {
      out: (l) => out.push(l),
      err: (l) => err.push(l),
      signal: new AbortController().signal,
    });
    assert.equal(code, 0, err.join('\n') + out.join('\n'));
    assert.deepEqual(out, [], 'no diagnostic lines');
    assert.match(err.join('\n'), /haqa\.yaml: no problems/);
    await loadRecipe();

    const config = JSON.parse(fs.readFileSync(path.join(DIR, 'config.json'), 'utf8'));
    assert.equal(config.model_type, 'gpt2');
    assert.equal(config.hidden_size, undefined, 'a real GPT-2 config: n_embd, not hidden_size');
    const arch = architectureFromConfig(config);
    assert.equal(arch.hidden_size, config.n_embd);
    assert.equal(arch.num_hidden_layers, config.n_layer);
    assert.equal(arch.num_key_value_heads, config.n_head);

    const g = await inspectModel(MODEL);
    const expected = ['lm_head'];
    for (let i = 0; i < config.n_layer; i++) for (const p of PROJECTIONS) expected.push(`transformer.h.${i}.${p}`);
    assert.deepEqual(g.layers.map((l) => l.name).sort(), expected.sort());
    for (const l of g.layers) {
      if (l.name === 'lm_head') continue;
      assert.equal(l.op, 'Gemm', `${l.name}: Conv1D exports as Gemm`);
      assert.equal(l.weight, `${l.name}.weight`, 'the Conv1D weight keeps its state-dict name');
    }
    // The tied head's weight has an exporter-made name: lm_head comes from the graph's structure.
    const fixture = JSON.parse(fs.readFileSync(path.join(DIR, 'fixture.json'), 'utf8'));
    const head = g.layers.find((l) => l.name === 'lm_head')!;
    assert.equal(head.weight, fixture.tied_head.weight);
    assert.match(head.weight, /^onnx::/);
    assert.deepEqual([head.K, head.N], [config.n_embd, config.vocab_size]);
  },
);

test(
  'tiny-gpt2: quantize follows the recipe — 4-bit, c_proj of the MLP at 8 bits, lm_head kept float',
  { skip: missing },
  async () => {
    const recipe = await loadRecipe();
    const res = await compressModel(recipe, { out: path.join(tempDir('haqa-gpt2-q-'), 'q.onnx') });
    const g = await inspectModel(res.out);
    assert.equal(g.layers.length, 17);
    for (const l of g.layers) {
      if (l.name === 'lm_head') {
        assert.equal(l.op, 'MatMul', 'the skipped head is not rewritten');
        assert.equal(l.dtype, 'FLOAT');
      } else {
        assert.equal(l.op, 'MatMulNBits', `${l.name} is quantized`);
        assert.equal(l.bits, l.name.endsWith('.mlp.c_proj') ? 8 : 4, l.name);
      }
    }
  },
);

test(
  'tiny-gpt2: trained (ppl far below uniform and unigram); the 4-bit recipe costs a finite, small increase',
  { skip: missing },
  async () => {
    const fixture = JSON.parse(fs.readFileSync(path.join(DIR, 'fixture.json'), 'utf8'));
    const base = await loadRecipe();
    const store = tempDir('haqa-gpt2-bench-');
    const evaluation = { ...base.evaluation, max_windows: 8 };
    const fp = await runRecipe({ ...base, quantize: undefined, evaluation }, { quick: true, storeDir: store });
    assert.equal(fp.status, 'ok', fp.error?.message);
    const f = fp.metrics.ppl!;
    const vocab = 1024;
    assert.ok(f > 1.5 && f < vocab / 8, `fp32 ppl ${f} vs ${vocab} for guessing uniformly`);
    assert.ok(f < fixture.unigram_ppl_eval / 2, `fp32 ppl ${f} vs unigram ${fixture.unigram_ppl_eval}`);

    const q = await runRecipe({ ...base, evaluation }, { quick: true, storeDir: store, baseline: true });
    assert.equal(q.status, 'ok', q.error?.message);
    const m = q.metrics;
    assert.equal(m.ppl_fp32, f, 'the reference scores the same windows as the fp32 run');
    const increase = m.ppl! / m.ppl_fp32! - 1;
    assert.ok(Number.isFinite(increase), `ppl increase ${increase}`);
    assert.ok(increase > -0.02 && increase < 0.5, `4-bit ppl ${m.ppl} vs fp32 ${f}`);
    assert.ok(m.kl! > 0 && m.kl! < 0.5, `KL ${m.kl}`);
    assert.ok(
      m.model_bytes! < 0.6 * fp.metrics.model_bytes!,
      `4-bit ${m.model_bytes} B vs ${fp.metrics.model_bytes} B`,
    );
  },
);

test(
  'tiny-gpt2: onnxruntime reproduces the perplexity torch recorded over the whole eval text',
  { skip: missing },
  async () => {
    const fixture = JSON.parse(fs.readFileSync(path.join(DIR, 'fixture.json'), 'utf8'));
    const base = await loadRecipe();
    const rec = await runRecipe(
      {
        ...base,
        quantize: undefined,
        evaluation: { ...base.evaluation, window: fixture.window, max_windows: undefined },
      },
      { measure: { latency: false }, storeDir: tempDir('haqa-gpt2-ppl-') },
    );
    assert.equal(rec.status, 'ok', rec.error?.message);
    assert.equal(rec.metrics.eval_tokens, fixture.scored_tokens);
    assert.ok(
      Math.abs(rec.metrics.ppl! - fixture.ppl_eval) / fixture.ppl_eval < 1e-4,
      `onnxruntime ${rec.metrics.ppl} vs torch ${fixture.ppl_eval}`,
    );
  },
);
