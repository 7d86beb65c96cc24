// The acceptance test: the offline optimizer, on the trained fixture (examples/tiny-llama) with
// quick runs and a handful of trials, finds a configuration faster than fp32 within the accuracy budget.
// Skipped until the fixture's model.onnx exists (it is trained by scripts/fixtures/make_tiny_llama.sh).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadSetting } from '../../server/src/agent/setting';
import { tune } from '../../server/src/agent/session';
import { RecipeEvaluator } from '../../server/src/agent/evaluator';
import { objectiveOf, pplChange } from '../../server/src/agent/objective';
import { ratioOf } from '../../server/src/agent/ranking';
import { tempDir } from '../helpers/tinyModel';

const recipe = path.resolve(__dirname, '../../examples/tiny-llama/haqa.yaml');
const model = path.resolve(__dirname, '../../examples/tiny-llama/model.onnx');

test(
  'offline tuning of the trained fixture beats fp32 within the accuracy budget',
  { skip: !fs.existsSync(model) && 'examples/tiny-llama/model.onnx not built yet' },
  async () => {
    const loaded = await loadSetting(recipe);
    const evaluator = new RecipeEvaluator(loaded.setting.recipe, {
      quick: true,
      storeDir: tempDir('haqa-agent-fixture-'),
    });
    const r = await tune(loaded, { agent: 'offline', trials: 4, seed: 0, evaluator });
    assert.ok(['budget', 'exhausted'].includes(r.outcome), `${r.outcome}: ${r.reason}`);
    const best = r.best!;
    assert.ok(best.feasible, `no feasible trial: ${r.trials.map((t) => t.violations.join('; ')).join(' | ')}`);
    // Faster than fp32 by the tuner's own figure: the ratio against fp32 from the paired race (agent/ranking.ts),
    // not two medians taken in different windows of a noisy machine.
    const ratio = ratioOf(objectiveOf(loaded.setting.recipe), best.metrics, r.baseline);
    assert.ok(
      ratio && ratio.ratio < 1,
      `best ${JSON.stringify(ratio)} (${best.metrics.decode_ms_per_token} ` +
        `ms) vs fp32 ${r.baseline!.decode_ms_per_token} ms`,
    );
    assert.ok(pplChange(best.metrics, r.baseline)! <= loaded.setting.recipe.objective.accuracy.max_ppl_increase);
    // every trial made run records tagged with the trial, and no record carries a config outside the space
    const tagged = evaluator.records.filter((x) => x.trial?.agent === 'offline');
    assert.ok(tagged.length >= r.trials.length);
  },
);
