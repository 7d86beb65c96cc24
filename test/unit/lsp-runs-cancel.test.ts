// Issue 21 item 5: a cancelled run is not a finding, and after Apply Best Trial the lens shows the
// trial's figures (the trial's recipe_hash is the hash of the recipe the edit writes), not "stale".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { findingRuns } from '../../server/src/lsp/runDiagnostics';
import { lensRecord } from '../../server/src/lsp/runLenses';
import type { RunRecord } from '../../server/src/bench/record';
import { recipeHash } from '../../server/src/bench/record';
import { loadSetting } from '../../server/src/agent/setting';
import { enumerate, recipeFor } from '../../server/src/agent/space';
import { applyConfig } from '../../server/src/agent/edits';
import { analyzeRecipe } from '../../server/src/config/check';
import { ModelCache } from '../../server/src/config/modelCache';

const s = (median: number) => ({ median, p10: median, p90: median, n: 20, ci_rel: 0.01 });
let n = 0;
function rec(
  over: Partial<RunRecord> = {},
  m: Partial<RunRecord['metrics']> = { decode_ms_per_token: s(5), ppl: 10.1, ppl_fp32: 10 },
): { record: RunRecord; line: number } {
  n++;
  return {
    line: n,
    record: {
      id: `r${n}`,
      recipe_file: '/w/haqa.yaml',
      recipe_hash: 'h1',
      source_model: '/w/m.onnx',
      config: {} as RunRecord['config'],
      status: 'ok',
      metrics: m as RunRecord['metrics'],
      session_options: {} as RunRecord['session_options'],
      hardware: { cpu: 'x' } as RunRecord['hardware'],
      onnxruntime: '1.30.0',
      quick: false,
      started: '2026-11-22T00:00:00Z',
      finished: '2026-11-22T00:00:10Z',
      ...over,
    },
  };
}

test('a cancelled benchmark is passed over by the run diagnostics', () => {
  const ok = rec();
  const cancelled = rec(
    { status: 'cancelled', error: { message: 'cancelled', stage: 'latency' } as RunRecord['error'] },
    {},
  );
  assert.equal(findingRuns([ok, cancelled], 'h1')?.latest, ok);
  assert.equal(findingRuns([cancelled], 'h1'), undefined, 'only a cancel: nothing to report');
  const failed = rec({ status: 'error', error: { message: 'boom', stage: 'load' } as RunRecord['error'] }, {});
  assert.equal(findingRuns([ok, failed, cancelled], 'h1')?.latest, failed, 'a real failure still speaks');
});

test('the lens shows a tuning trial of this content (its two steps merged), not a cancelled run marked stale', () => {
  const old = rec({ recipe_hash: 'h0' });
  const cancelled = rec({ recipe_hash: 'h0', status: 'cancelled' }, {});
  const trial = { session: 't1', number: 3 } as RunRecord['trial'];
  const speed = rec({ recipe_hash: 'h2', trial }, { decode_ms_per_token: s(1.2) });
  const acc = rec({ recipe_hash: 'h2', trial }, { ppl: 10.2, ppl_fp32: 10 });
  const pick = lensRecord([old, cancelled, speed, acc], 'h2');
  assert.equal(pick?.fresh, true);
  assert.equal(pick?.record.metrics.decode_ms_per_token?.median, 1.2);
  assert.equal(pick?.record.metrics.ppl, 10.2);
  const stale = lensRecord([old, cancelled], 'h9');
  assert.equal(stale?.fresh, false);
  assert.equal(stale?.record.status, 'ok', 'the stale fallback is the last run with figures, not the cancelled one');
});

test("a trial's recipe hashes like the recipe Apply Best Trial writes", async () => {
  const file = path.join(__dirname, '../../examples/tiny-llama/haqa.yaml');
  const st = await loadSetting(file);
  const models = new ModelCache();
  let checked = 0;
  for (const c of enumerate(st.space)) {
    if (!Object.keys(c).some((k) => k.includes('@'))) continue; // layer-scoped knobs are where they differed
    const written = (await analyzeRecipe(applyConfig(st.text, c), file, { models })).recipe!;
    assert.equal(recipeHash(recipeFor(st.setting.recipe, c)), recipeHash(written), JSON.stringify(c));
    if (++checked >= 12) break;
  }
  assert.ok(checked > 0, 'the example space has layer-scoped knobs');
});
