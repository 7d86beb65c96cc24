// haqa advise <haqa.yaml>: suggestions without running anything — from Claude with an API key, else from
// the rule-based advisor. Each is a knob assignment with a rationale (what the editor offers as a fix).
// The advisor's words are untrusted: printed through util/sanitize.
import * as path from 'node:path';
import { Command, parse, UsageError } from './command';
import { loadSetting, SettingError } from '../agent/setting';
import { adviseOffline, adviseWithClaude, AdviseResult } from '../agent/advise';
import { objectiveOf } from '../agent/objective';
import { DEFAULT_MODEL } from '../agent/claude';
import { emptyUsage } from '../agent/types';
import { configText } from './tune';
import { displayText, lineText } from '../util/sanitize';
import type { Recipe } from '../config/recipe';
import { measureLayers, planAndVerify, planLines, readLayerMeasurements } from '../agent/layerAdvice';
import { editorKnobs, promptTables } from '../agent/layerViews';
import { allowedOn, planUnderBudget } from '../agent/layerPlan';
import { kernelFacts, readKernelProbe } from '../bench/kernelProbe';
import { RunStore } from '../bench/store';
import { hardwareFingerprint } from '../bench/hardware';
import { profileTable } from '../bench/profile';
import { sensitivityTable } from '../agent/sensitivity';

const usage =
  'haqa advise <haqa.yaml> [--agent claude|offline] [--model NAME] [--base-url URL] [--json]\n' +
  '       haqa advise <haqa.yaml> --measure [--verify] [--json]   (per layer: profile, sensitivity, a plan)';

export const adviseCommand: Command = {
  name: 'advise',
  summary: 'suggest recipe changes for this model and machine without running anything',
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(
      argv,
      {
        agent: { type: 'string' },
        model: { type: 'string' },
        'base-url': { type: 'string' },
        json: { type: 'boolean' },
        measure: { type: 'boolean' },
        verify: { type: 'boolean' },
      },
      usage,
    );
    if (positionals.length !== 1) throw new UsageError(`expected one recipe\nusage: ${usage}`);
    if (values.agent !== undefined && values.agent !== 'claude' && values.agent !== 'offline')
      throw new UsageError(`--agent must be claude or offline, got '${values.agent}'`);
    const file = path.resolve(positionals[0]);
    let loaded;
    try {
      loaded = await loadSetting(file);
    } catch (err) {
      if (err instanceof SettingError) {
        io.err(`haqa advise: ${err.message}`);
        return 1;
      }
      throw err;
    }
    if (values.measure)
      return measureCommand(loaded.setting.recipe, { verify: values.verify === true, json: values.json === true }, io);
    if (values.verify) throw new UsageError('--verify goes with --measure');
    const apiKey = process.env.ANTHROPIC_API_KEY || undefined;
    const agent = values.agent ?? (apiKey ? 'claude' : 'offline');
    // Per-layer measurements cached by `--measure`: the offline advisor proposes their plan, Claude reads their tables.
    const recipe = loaded.setting.recipe;
    const measured = readLayerMeasurements(path.dirname(file), recipe.model);
    const probe = readKernelProbe(new RunStore(path.dirname(file)), hardwareFingerprint());
    let res: AdviseResult;
    if (agent === 'claude') {
      if (!apiKey)
        throw new UsageError('the claude advisor needs an API key: set ANTHROPIC_API_KEY (or use --agent offline)');
      res = await adviseWithClaude(loaded.setting, objectiveOf(loaded.setting.recipe), {
        apiKey,
        model: values.model ?? DEFAULT_MODEL,
        baseURL: values['base-url'] ?? process.env.ANTHROPIC_BASE_URL,
        signal: io.signal,
        architecture: loaded.architecture,
        kernelFacts: probe ? kernelFacts(probe) : undefined,
        layers: measured
          ? promptTables(measured, recipe.objective.accuracy.max_ppl_increase, recipe.target.provider)
          : undefined,
      });
    } else {
      res = {
        suggestions: adviseOffline(loaded.setting, probe),
        outcome: 'completed',
        reason: 'rules',
        usage: emptyUsage(),
      };
      if (measured) {
        const plan = planUnderBudget(
          measured,
          recipe.objective.accuracy.max_ppl_increase,
          allowedOn(recipe.target.provider, measured.sensitivity.candidates),
        );
        res.suggestions.unshift({
          id: 'layer-plan',
          source: 'rules',
          title: 'Per-layer plan from measurements on this machine',
          rationale:
            `Measured ${measured.measured_at} (haqa advise --measure): predicted ` +
            `decode ${plan.predicted.speedup.toFixed(2)}x vs fp32 at ppl ` +
            `${(plan.predicted.ppl_change * 100).toFixed(2)}% within the ` +
            'budget; per-layer costs are added, so benchmark to confirm.',
          knobs: editorKnobs(
            plan,
            loaded.setting.layers,
            recipe.quantize?.accuracy_level,
            measured.sensitivity.candidates,
          ),
        });
      }
    }
    if (values.json) {
      io.out(JSON.stringify(res, null, 2));
    } else {
      if (res.suggestions.length === 0) io.out(`${path.basename(file)}: no suggestions`);
      for (const s of res.suggestions) {
        io.out(`• ${lineText(s.title)}`);
        io.out(`    set: ${configText(s.knobs)}`);
        io.out(`    why: ${displayText(s.rationale).replace(/\n/g, '\n         ')}`);
      }
      if (agent === 'claude')
        io.out(
          `tokens: ${res.usage.input_tokens} in, ${res.usage.output_tokens} out; ${res.usage.requests} ` +
            `requests${res.usage.cost_usd !== undefined ? `, ~$${res.usage.cost_usd.toFixed(4)}` : ''}`,
        );
    }
    if (res.outcome === 'cancelled') return 130;
    if (res.outcome !== 'completed') {
      io.err(`haqa advise: ${res.reason}`);
      return 1;
    }
    return 0;
  },
};

/** `--measure`: where the decode time goes per layer, what each layer tolerates, and the plan under the budget. */
async function measureCommand(
  recipe: Recipe,
  opts: { verify: boolean; json: boolean },
  io: Parameters<Command['run']>[1],
): Promise<number> {
  let m;
  try {
    m = await measureLayers(recipe, { signal: io.signal, onProgress: (s) => io.err(`haqa advise: ${lineText(s)}`) });
  } catch (err) {
    io.err(`haqa advise: ${(err as Error).message}`);
    return 1;
  }
  const v = await planAndVerify(recipe, m, { verify: opts.verify, signal: io.signal });
  if (opts.json) {
    io.out(JSON.stringify({ measurements: m, plan: v }, null, 2));
    return 0;
  }
  io.out(`where the decode time goes (onnxruntime profile, µs per decode step, measured ${m.measured_at}):`);
  const shown = [m.fp32, ...(m.recipe_plan ? [m.recipe_plan] : [])];
  for (const line of profileTable(shown)) io.out(`  ${lineText(line)}`);
  io.out('what each layer tolerates (perplexity change of compressing only that layer):');
  for (const line of sensitivityTable(m.sensitivity)) io.out(`  ${lineText(line)}`);
  for (const s of m.skipped) io.out(`  not measured: ${lineText(s.candidate)}: ${lineText(s.reason)}`);
  for (const line of planLines(v)) io.out(lineText(line));
  const probe = readKernelProbe(new RunStore(path.dirname(recipe.file)), hardwareFingerprint());
  if (probe) for (const line of ['kernel facts:', ...kernelFacts(probe).map((l) => `  ${l}`)]) io.out(lineText(line));
  io.out(`set: ${configText(v.knobs)}`);
  io.out(
    `measuring took ${m.seconds.total.toFixed(0)} s (build ` +
      `${m.seconds.build.toFixed(0)}, profile ${m.seconds.profile.toFixed(0)}, ` +
      `sensitivity ${m.seconds.sensitivity.toFixed(0)}); cached for the editor's hovers`,
  );
  return 0;
}
