// The whole pipeline per family, on a fresh tiny model of each: check → quantize with Hugging Face names
// in the recipe (`skip: [lm_head]`, the family's down projection at 8 bits), a short benchmark with
// perplexity for GPT-2 and Gemma 2, the two graphs furthest from Llama's, and for every family a tune of
// two trials (`haqa tune`, offline optimizer) over the bits of the family's down projection named the
// HF way — each trial is compressed, raced against fp32 and scored for perplexity, so it is a bench too.
// Every family's graph also runs with its KV cache in synth-families.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { architectureFromConfig } from '../../server/src/config/hfConfig';
import { FAMILIES, Family } from '../../server/src/config/families';
import { synthesizeDecoder } from '../../server/src/model/synth';
import { analyzeRecipe } from '../../server/src/config/check';
import { ModelCache } from '../../server/src/config/modelCache';
import { messageText, severityName } from '../../server/src/config/diagnostics';
import { compressModel } from '../../server/src/compress/pipeline';
import { inspectModel } from '../../server/src/model/graph';
import { runRecipe } from '../../server/src/bench/run';
import { spawnSync } from 'node:child_process';
import { tempDir } from '../helpers/tinyModel';
import { FAMILY_CONFIGS } from '../helpers/familyConfigs';

const ROOT = path.resolve(__dirname, '../..');
const BENCHED = new Set(['gpt2', 'gemma2']);

/** The family's down projections as a recipe glob, in HF names (`transformer.h.*.mlp.c_proj` for GPT-2). */
const downGlob = (f: Family) => `${f.modules.blocks}.*.${f.modules.mlp.down}`;

function recipeText(f: Family): string {
  return [
    'version: 1',
    'model: ./model.onnx',
    'target:',
    '  threads: 1',
    'objective:',
    '  workload:',
    '    prompt_length: 8',
    '    decode_tokens: 2',
    '    batch: 1',
    'quantize:',
    '  method: rtn',
    '  bits: 4',
    '  block_size: 16',
    '  accuracy_level: 4',
    '  skip:',
    '    - lm_head',
    '  overrides:',
    `    - match: ${downGlob(f)}`,
    '      bits: 8',
    'evaluation:',
    '  text: ./eval.txt',
    '  tokenizer: ./tokenizer.json',
    '  window: 16',
    '  max_windows: 1',
    'search:',
    '  agent: offline',
    '  trials: 2',
    '  seed: 0',
    '  space:',
    `    quantize.bits@${downGlob(f)}: [4, 8]`,
    '',
  ].join('\n');
}

for (const f of FAMILIES) {
  test(`${f.label}: check → quantize${BENCHED.has(f.id) ? ' → bench' : ''} → tune, HF names in recipe`, async () => {
    const ws = tempDir(`haqa-pipe-${f.id}-`);
    // vocab 1024: the fixture tokenizer's ids (the check refuses a tokenizer larger than the model).
    const cfg = { ...FAMILY_CONFIGS[f.id], vocab_size: 1024 };
    fs.writeFileSync(path.join(ws, 'config.json'), JSON.stringify(cfg, null, 2));
    fs.copyFileSync(path.join(ROOT, 'examples/tiny-llama/tokenizer.json'), path.join(ws, 'tokenizer.json'));
    fs.copyFileSync(path.join(ROOT, 'examples/tiny-llama/data/eval.txt'), path.join(ws, 'eval.txt'));
    const model = path.join(ws, 'model.onnx');
    await synthesizeDecoder(architectureFromConfig(cfg), { out: model, seed: 2 });

    const text = recipeText(f);
    const file = path.join(ws, 'haqa.yaml');
    fs.writeFileSync(file, text);
    const a = await analyzeRecipe(text, file, { models: new ModelCache() });
    const serious = a.diagnostics.filter((d) => severityName(d.severity) === 'error' || d.code === 'pattern-no-match');
    assert.deepEqual(
      serious.map((d) => `${d.code}: ${messageText(d)}`),
      [],
    );
    const recipe = a.recipe!;

    const res = await compressModel(recipe, { out: path.join(ws, 'q.onnx') });
    const g = await inspectModel(res.out);
    for (const l of g.layers) {
      if (l.name === 'lm_head') assert.notEqual(l.op, 'MatMulNBits', 'the head the recipe skips stays float');
      else assert.equal(l.op, 'MatMulNBits', `${l.name} is quantized`);
      if (l.name.endsWith(`.${f.modules.mlp.down}`)) assert.equal(l.bits, 8, l.name);
      else if (l.name !== 'lm_head') assert.equal(l.bits, 4, l.name);
    }
    assert.ok(g.layers.some((l) => l.name === 'lm_head'));

    if (BENCHED.has(f.id)) {
      const rec = await runRecipe(recipe, { quick: true, noStore: true });
      assert.equal(rec.status, 'ok', rec.error?.message);
      assert.ok(rec.metrics.decode_ms_per_token && rec.metrics.decode_ms_per_token.median > 0);
      assert.ok(rec.metrics.ppl !== undefined && Number.isFinite(rec.metrics.ppl), 'perplexity measured');
      assert.equal(rec.notes, undefined, 'config.json and the graph agree: nothing to correct');
    }

    // tune: both values of the HF-named knob run, each raced against fp32 and scored; the answer is one of them.
    const t = spawnSync(process.execPath, [path.join(ROOT, 'dist/cli.js'), 'tune', file, '--json'], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(t.status, 0, t.stderr);
    const out = JSON.parse(t.stdout);
    const knob = `quantize.bits@${downGlob(f)}`;
    assert.deepEqual(out.trials.map((x: { config: Record<string, number> }) => x.config[knob]).sort(), [4, 8]);
    for (const x of out.trials) {
      assert.notEqual(x.status, 'failed', x.error);
      assert.ok(x.metrics.race?.paired, `trial ${x.index} raced fp32 paired`);
    }
    assert.ok(
      out.best && [4, 8].includes(out.best.config[knob]) && Number.isFinite(out.best.metrics.ppl),
      'an answer with its perplexity',
    );
    assert.ok(fs.existsSync(path.join(ws, 'haqa.best.yaml')), 'the tuned recipe is written');
  });
}
