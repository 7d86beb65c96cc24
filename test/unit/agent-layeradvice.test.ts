// Per-layer advice in the editor: with measurements cached for the recipe's model, the plan under the
// budget is a diagnostic whose quick fix writes per-layer overrides (comments kept) that make the recipe
// plan exactly the chosen settings; hovers on globs show time share and sensitivity; the advisor's
// prompt tables carry the same figures. The measurements here are constructed (the views are tested,
// not the machine): real ones come from `haqa advise --measure`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { analyzeRecipe } from '../../server/src/config/check';
import { ModelCache } from '../../server/src/config/modelCache';
import { recipeCodeActions } from '../../server/src/config/actions';
import { LineIndex } from '../../server/src/config/diagnostics';
import { planLayers } from '../../server/src/config/plan';
import { layerCachePath, LAYER_FORMAT, StoredLayerMeasurements } from '../../server/src/agent/layerAdvice';
import { LAYER_PLAN_CODE, layerPlanDiagnostic, promptTables } from '../../server/src/agent/layerViews';
import { layerHover, measurementsFor } from '../../server/src/lsp/layerHover';
import { DEFAULT_CANDIDATES } from '../../server/src/agent/sensitivity';
import { hardwareFingerprint } from '../../server/src/bench/hardware';
import { RunStore } from '../../server/src/bench/store';
import type { ModelProfile } from '../../server/src/bench/profile';
import { tempDir } from '../helpers/tinyModel';
import { writeLlamaShapes, SMALL } from '../lsp/llamaShapes';

const RECIPE = `# my recipe: keep this comment
model: ./model.onnx
objective:
  accuracy:
    max_ppl_increase: 2%   # tight
quantize:
  bits: 4 # default bits
  skip: [lm_head]
  overrides:
    # wide activations
    - match: model.layers.*.mlp.down_proj
      bits: 8
`;

async function setup() {
  const dir = tempDir('haqa-layeradvice-');
  await writeLlamaShapes(dir, SMALL);
  const file = path.join(dir, 'haqa.yaml');
  fs.writeFileSync(file, RECIPE);
  const models = new ModelCache();
  const a = await analyzeRecipe(RECIPE, file, { models });
  const layers = a.graph!.layers.map((l) => l.name);
  const cands = DEFAULT_CANDIDATES.filter((c) => c.id === 'q4' || c.id === 'q8');
  const prof = (label: string, us: (l: string) => number): ModelProfile => {
    const groups = layers.map((name) => ({ name, layer: true, us: us(name), median_us: us(name), share: 0, ops: {} }));
    const total = groups.reduce((s, g) => s + g.us, 0) + 50;
    for (const g of groups) g.share = g.us / total;
    groups.sort((x, y) => y.us - x.us);
    return { label, model: label, steps: 4, node_us: total, run_us: total, run_median_us: total, groups };
  };
  // lm_head is sensitive at 4 bits; everything else tolerates 4 bits.
  const m: StoredLayerMeasurements = {
    format: LAYER_FORMAT,
    measured_at: '2026-12-02T18:00:00.000Z',
    source_model: path.join(dir, 'model.onnx'),
    hardware: hardwareFingerprint(),
    fp32: prof('fp32', (l) => (l === 'lm_head' ? 300 : 100)),
    uniform: {
      q4: prof('q4', (l) => (l === 'lm_head' ? 90 : 30)),
      q8: prof('q8', (l) => (l === 'lm_head' ? 180 : 60)),
    },
    sensitivity: {
      model: 'm',
      ppl_fp32: 10,
      nll_fp32: 2.3,
      tokens: 100,
      windows: 1,
      candidates: cands,
      spectra: [],
      seconds: { total: 1, load: 0, fp32: 0, candidates: 1 },
      groups: layers.map((n) => ({ name: n, layers: [n] })),
      entries: layers.flatMap((n) => [
        {
          group: n,
          candidate: 'q4',
          kl: 0,
          ppl: 0,
          ppl_change: n === 'lm_head' ? 0.05 : 0.001,
          nll_delta: n === 'lm_head' ? 0.0488 : 0.001,
          weight_rel_err: 0,
        },
        { group: n, candidate: 'q8', kl: 0, ppl: 0, ppl_change: 0.0001, nll_delta: 0.0001, weight_rel_err: 0 },
      ]),
    },
    skipped: [],
    seconds: { total: 1, build: 0, profile: 0, sensitivity: 1 },
  };
  const cache = layerCachePath(new RunStore(dir), path.join(dir, 'model.onnx'));
  fs.mkdirSync(path.dirname(cache), { recursive: true });
  fs.writeFileSync(cache, JSON.stringify(m));
  return { dir, file, models, a, m };
}

function applyEdits(
  text: string,
  edits: {
    range: { start: { line: number; character: number }; end: { line: number; character: number } };
    newText: string;
  }[],
) {
  const li = new LineIndex(text);
  return [...edits]
    .sort((x, y) => li.offset(y.range.start) - li.offset(x.range.start))
    .reduce((t, e) => t.slice(0, li.offset(e.range.start)) + e.newText + t.slice(li.offset(e.range.end)), text);
}

test('plan diagnostic and quick fix: per-layer overrides, comments kept, and the recipe plans the choice', async () => {
  const { file, models, a } = await setup();
  const m = measurementsFor(a);
  assert.ok(m, 'the cached measurements are found for the recipe');
  const d = layerPlanDiagnostic(a, m!)!;
  assert.equal(d.code, LAYER_PLAN_CODE);
  assert.match(String(d.message), /q4 × 14, q8 × 1/);
  assert.match(String(d.message), /measurements on this machine/);
  const actions = recipeCodeActions(RECIPE, 'file:///x/haqa.yaml', [d]);
  assert.equal(actions.length, 1);
  const after = applyEdits(RECIPE, actions[0].edit!.changes!['file:///x/haqa.yaml']);
  for (const c of ['# my recipe: keep this comment', '# tight', '# default bits', '# wide activations'])
    assert.ok(after.includes(c), `kept: ${c}`);
  // Patterns where a whole family shares a choice, not one override per layer.
  assert.match(after, /match: model\.layers\.\*\.mlp\.down_proj\n\s+bits: 4/);
  const b = await analyzeRecipe(after, file, { models });
  assert.deepEqual(
    b.diagnostics.filter((x) => x.severity === 1),
    [],
    'the edited recipe is valid',
  );
  const planned = planLayers(b.recipe!, b.graph!.layers);
  for (const p of planned) assert.equal(p.quant?.bits, p.layer.name === 'lm_head' ? 8 : 4, p.layer.name);
});

test('hover on a glob adds measured time share and per-candidate sensitivity; none without measurements', async () => {
  const { a, dir } = await setup();
  const text = layerHover(a, new LineIndex(RECIPE).position(RECIPE.indexOf('model.layers.*.mlp.down_proj') + 3))!;
  assert.match(text, /Measured on this machine/);
  assert.match(text, /\| `model\.layers\.0\.mlp\.down_proj` \| 100 \| \d+\.\d% \| \+0\.10% \| \+0\.01% \|/);
  fs.rmSync(path.join(dir, '.haqa'), { recursive: true });
  const a2 = await analyzeRecipe(RECIPE + '\n', a.file, { models: new ModelCache() });
  assert.equal(
    layerHover(a2, new LineIndex(RECIPE).position(RECIPE.indexOf('model.layers.*.mlp.down_proj') + 3)),
    undefined,
  );
});

test('the prompt tables carry the time share, the sensitivity and the plan', async () => {
  const { m } = await setup();
  const t = promptTables(m, 0.02) as {
    time_share: { group: string }[];
    ppl_change_if_only_this_layer: { group: string; q4: number }[];
    plan_under_budget: { choices: { group: string; choice: string }[] };
  };
  assert.equal(t.time_share[0].group, 'lm_head');
  assert.equal(t.ppl_change_if_only_this_layer.find((x) => x.group === 'lm_head')!.q4, 0.05);
  assert.equal(t.plan_under_budget.choices.find((x) => x.group === 'lm_head')!.choice, 'q8');
});
