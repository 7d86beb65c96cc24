// `npm run bench -- --only advice`: per-layer advice from measurement on the bundled model. Profiles fp32,
// the recipe's plan and each candidate per layer, scores each layer's sensitivity, plans under the recipe's
// accuracy budget, then benchmarks the per-layer plan and the best uniform setting (each against fp32
// timed interleaved) for predicted vs measured. Works on a copy of the recipe's folder, so the repository's
// .haqa/ is untouched. `--recipe` points it at another recipe (e.g. a synthesized 1B-shaped slice).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { loadSetting } from '../server/src/agent/setting';
import { measureLayers, planAndVerify } from '../server/src/agent/layerAdvice';
import { DEFAULT_CANDIDATES } from '../server/src/agent/sensitivity';
import { writeFileAtomic } from '../server/src/util/atomicWrite';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Json = any;

const f = (x: number | undefined, d = 2) => (x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(d));
const pct = (x: number | undefined) => (x === undefined ? '—' : `${x >= 0 ? '+' : ''}${(x * 100).toFixed(2)}%`);

export function adviceSection(j: Json): string[] {
  const lines = ['## 7. Per-layer advice from measurement (`haqa advise --measure`)', ''];
  // A load average over twice this project's 2-core machines is a neighbour's load, not the benchmark's.
  const heavy = j.load[0] > 4 ? ' (a shared machine under heavy load: ratios, not absolute times)' : '';
  lines.push(
    `Measured ${j.started} UTC, load average ${j.load.map((x: number) => x.toFixed(2)).join(' ')} at ` +
      `the start${heavy}.`,
    '',
  );
  for (const m of j.models) {
    lines.push(`### ${m.description}`, '');
    lines.push(
      `Candidates ${m.candidates.join(', ')}; budget ppl +${f(m.budget * 100, 1)}%. Measuring took ${f(m.seconds.total, 0)} ` +
        `s (building the candidate models ${f(m.seconds.build, 0)} s, profiling ${f(m.seconds.profile, 0)} ` +
        `s, sensitivity ${f(m.seconds.sensitivity, 0)} s of which ${f(m.sensitivity_seconds.candidates, 0)} ` +
        `s scoring ${m.entries} layer × candidate pairs on ${m.tokens} tokens); planning and verifying ` +
        `${f(m.verify_seconds, 0)} s.`,
      '',
    );
    lines.push(
      '| plan | settings | predicted decode vs fp32 | measured decode vs fp32 (paired) | predicted ppl change | measured ppl change |',
    );
    lines.push('| --- | --- | --- | --- | --- | --- |');
    lines.push(
      `| per-layer (DP) | ${m.plan.settings} | ${f(m.plan.predicted.speedup)}× | ${f(m.plan.measured?.speedup)}× ` +
        `| ${pct(m.plan.predicted.ppl_change)} | ${pct(m.plan.measured?.ppl_change)} |`,
    );
    lines.push(
      `| best uniform (${m.uniform.candidate}) | all ${m.uniform.candidate} | ${f(m.uniform.predicted.speedup)}× ` +
        `| ${f(m.uniform.measured?.speedup)}× | ${pct(m.uniform.predicted.ppl_change)} | ${pct(m.uniform.measured?.ppl_change)} |`,
    );
    lines.push('');
    if (m.skipped.length)
      lines.push(
        `Not measured: ${m.skipped.map((s: Json) => `${s.candidate} (${String(s.reason).slice(0, 120)})`).join('; ')}.`,
        '',
      );
  }
  lines.push(
    'Predicted figures add per-layer profiled times (onnxruntime session profiling, so including the ' +
      "profiler's overhead) and per-layer NLL increases; the measured ones are one benchmark of the " +
      'whole plan. A 1B-shaped slice was not measured in this run.',
    '',
  );
  return lines;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { json: { type: 'string' }, quick: { type: 'boolean', default: false }, recipe: { type: 'string' } },
  });
  const started = new Date();
  const load = os.loadavg();
  const src = path.resolve(values.recipe ?? path.join(__dirname, '..', 'examples', 'tiny-llama', 'haqa.yaml'));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'haqa-bench-advice-'));
  try {
    for (const e of fs.readdirSync(path.dirname(src))) {
      if (e === '.haqa') continue;
      fs.cpSync(path.join(path.dirname(src), e), path.join(work, e), { recursive: true });
    }
    const file = path.join(work, path.basename(src));
    const { setting } = await loadSetting(file);
    const recipe = setting.recipe;
    const candidates = values.quick
      ? DEFAULT_CANDIDATES.filter((c) => ['q4', 'q8', 'r0.5'].includes(c.id))
      : DEFAULT_CANDIDATES;
    const m = await measureLayers(recipe, {
      candidates,
      onProgress: (s) => process.stderr.write(`advice: ${s}\n`),
      maxWindows: values.quick ? 2 : 4,
    });
    const v = await planAndVerify(recipe, m, { verify: true, verifyUniform: true });
    const counts = new Map<string, number>();
    for (const g of v.plan.groups) counts.set(g.choice, (counts.get(g.choice) ?? 0) + 1);
    const out = {
      started: started.toISOString().slice(0, 16).replace('T', ' '),
      load,
      models: [
        {
          description: `trained tiny Llama fixture (${path.relative(path.join(__dirname, '..'), src)})`,
          candidates: candidates.map((c) => c.id),
          budget: recipe.objective.accuracy.max_ppl_increase,
          seconds: m.seconds,
          sensitivity_seconds: m.sensitivity.seconds,
          entries: m.sensitivity.entries.length,
          tokens: m.sensitivity.tokens,
          skipped: m.skipped,
          verify_seconds: v.seconds,
          plan: {
            settings: [...counts.entries()].map(([k, n]) => `${k} × ${n}`).join(', '),
            predicted: v.plan.predicted,
            measured: v.measured,
            groups: v.plan.groups,
          },
          uniform: { candidate: v.uniform.candidate, predicted: v.uniform.predicted, measured: v.measuredUniform },
        },
      ],
    };
    const text = JSON.stringify(out, null, 2);
    if (values.json) await writeFileAtomic(values.json, text);
    else process.stdout.write(text + '\n');
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`bench advice: ${(err as Error).stack ?? err}\n`);
    process.exitCode = 1;
  });
}
