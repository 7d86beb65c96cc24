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
    // Duels on (the tuner's default races fp32; bench/paired.ts compares the two), so the path from the
    // loop through the evaluator and the runner to the worker is exercised for real.
    const evaluator = new RecipeEvaluator(loaded.setting.recipe, {
      quick: true,
      storeDir: tempDir('haqa-agent-fixture-'),
      raceReference: 'incumbent',
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
    // After the first trial a new plan duels the incumbent (agent/loop.ts, bench/run.ts) unless the note says
    // why not (its threads differ, say): the record names
    // an earlier trial as the rival, keeps the direct figure, and puts the ratio on the fp32 scale.
    const duels = r.trials.filter((t) => t.metrics.race?.reference);
    assert.ok(duels.length >= 1, `no duel in ${r.trials.map((t) => t.metrics.race?.note ?? 'fp32').join(' | ')}`);
    for (const t of duels) {
      const rival = Number(/^trial #(\d+)$/.exec(t.metrics.race!.reference!)?.[1]);
      assert.ok(rival >= 1 && rival < t.index, `trial ${t.index} raced ${t.metrics.race!.reference}`);
      const d = t.metrics.race!.duel!.decode!;
      const k = t.metrics.race!.decode!.ratio / d.ratio;
      // The rival's ratio k is the one the loop raced against: the threshold (the best's log ratio) is log k.
      assert.ok(
        Math.abs(t.metrics.race!.threshold - Math.log(k)) < 1e-9,
        `k ${k}, threshold ${t.metrics.race!.threshold}`,
      );
    }
    // every trial made run records tagged with the trial, and no record carries a config outside the space
    const tagged = evaluator.records.filter((x) => x.trial?.agent === 'offline');
    assert.ok(tagged.length >= r.trials.length);
  },
);
