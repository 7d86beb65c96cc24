// The trained fixture (examples/tiny-llama): a fp32 run and a 4-bit run give plausible, internally
// consistent figures. Quick mode, a few evaluation windows; the store goes to a temporary folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { resolveRecipe } from '../../server/src/config/recipe';
import { runRecipe } from '../../server/src/bench/run';
import { main } from '../../server/src/cli';
import { tempDir } from '../helpers/tinyModel';

const FIXTURE = path.resolve(__dirname, '../../examples/tiny-llama');
const MODEL = path.join(FIXTURE, 'model.onnx');
const missing =
  !fs.existsSync(MODEL) &&
  `the trained fixture ${MODEL} is not there yet (scripts/fixtures/make_tiny_llama.sh makes it)`;

test(
  'tiny-llama: fp32 vs 4-bit — ppl not better than fp32 beyond noise, smaller file, decode step cheaper than prefill',
  { skip: missing },
  async () => {
    const store = tempDir('haqa-bench-fixture-');
    const recipe = (extra: Record<string, unknown>) =>
      resolveRecipe(
        {
          model: './model.onnx',
          target: { threads: 2 },
          objective: { workload: { prompt_length: 64, decode_tokens: 16, batch: 1 } },
          evaluation: { text: './data/eval.txt', tokenizer: './tokenizer.json', window: 128, max_windows: 4 },
          ...extra,
        },
        path.join(FIXTURE, 'haqa.yaml'),
      );

    const fp = await runRecipe(recipe({}), { quick: true, storeDir: store });
    assert.equal(fp.status, 'ok', fp.error?.message);
    const f = fp.metrics;
    // Trained: far better than guessing among 1024 tokens, and not absurdly good.
    assert.ok(f.ppl! > 1.5 && f.ppl! < 300, `fp32 ppl ${f.ppl}`);
    assert.ok(
      f.decode_ms_per_token!.median < f.prefill_ms!.median,
      'one cached step is cheaper than a 64-token prefill',
    );

    const q = await runRecipe(recipe({ quantize: { bits: 4, block_size: 32, accuracy_level: 4 } }), {
      quick: true,
      storeDir: store,
      baseline: true,
    });
    assert.equal(q.status, 'ok', q.error?.message);
    const m = q.metrics;
    assert.equal(m.ppl_fp32, f.ppl, 'the reference scores the same windows as the fp32 run');
    assert.ok(m.ppl! > f.ppl! * 0.98, `4-bit ppl ${m.ppl} vs fp32 ${f.ppl}: quantization should not help beyond noise`);
    assert.ok(m.ppl! < f.ppl! * 1.5, `4-bit ppl ${m.ppl} vs fp32 ${f.ppl}: RTN 4-bit should cost little`);
    assert.ok(m.kl! > 0 && m.kl! < 0.5, `KL ${m.kl}`);
    assert.ok(m.top1! > 0.7 && m.top1! <= 1, `top-1 ${m.top1}`);
    assert.ok(m.model_bytes! < 0.5 * f.model_bytes!, `4-bit ${m.model_bytes} B vs fp32 ${f.model_bytes} B`);
    assert.ok(m.decode_ms_per_token!.median < m.prefill_ms!.median);
    assert.ok(q.speedups?.decode && q.speedups.size! > 2);
  },
);

/** Every file under `dir` (the store included) with its size and modification time. */
function folderState(dir: string): Record<string, string> {
  const state: Record<string, string> = {};
  for (const rel of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const st = fs.statSync(path.join(dir, rel));
    if (st.isFile()) state[rel] = `${st.size}:${st.mtimeMs}`;
  }
  return state;
}

test('tiny-llama: haqa bench on the example recipe prints figures against fp32', { skip: missing }, async () => {
  const store = tempDir('haqa-bench-fixture-cli-');
  // `npm run demo` keeps its own store in the example folder; this run must not touch it (or make one).
  const before = folderState(FIXTURE);
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['bench', path.join(FIXTURE, 'haqa.yaml'), '--quick', '--store', store], {
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    signal: new AbortController().signal,
  });
  assert.equal(code, 0, err.join('\n') + out.join('\n'));
  const text = out.join('\n');
  assert.match(text, /decode .* per token {3}fp32 [\d.]+ ms {3}[\d.]+×/);
  assert.match(text, /ppl [\d.]+ \(fp32 [\d.]+, [+-][\d.]+%\)/);
  assert.ok(fs.existsSync(path.join(store, '.haqa', 'runs', 'runs.jsonl')));
  assert.deepEqual(folderState(FIXTURE), before, 'the example folder is left as it was');
});

test(
  'tiny-llama: the full evaluation reproduces the perplexity the training script recorded (torch)',
  { skip: missing },
  async () => {
    const recorded = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'fixture.json'), 'utf8')) as {
      ppl_eval: number;
      scored_tokens: number;
      window: number;
    };
    const r = resolveRecipe(
      {
        model: './model.onnx',
        target: { threads: 2 },
        evaluation: { text: './data/eval.txt', window: recorded.window },
      },
      path.join(FIXTURE, 'haqa.yaml'),
    );
    const rec = await runRecipe(r, { measure: { latency: false }, storeDir: tempDir('haqa-bench-fixture-ppl-') });
    assert.equal(rec.status, 'ok', rec.error?.message);
    assert.equal(rec.metrics.eval_tokens, recorded.scored_tokens);
    assert.ok(
      Math.abs(rec.metrics.ppl! - recorded.ppl_eval) / recorded.ppl_eval < 1e-4,
      `onnxruntime ${rec.metrics.ppl} vs torch ${recorded.ppl_eval}`,
    );
  },
);
