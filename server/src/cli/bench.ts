// haqa bench <haqa.yaml> [--json] [--quick] [--no-baseline]: compress the model as the recipe says,
// measure it in a worker process, append the record to .haqa/runs/ and print it, with the speedup
// against the fp32 model measured in the same invocation.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, parse, UsageError, humanBytes } from './command';
import { analyzeRecipe } from '../config/check';
import { ModelCache } from '../config/modelCache';
import { ParsedYaml, rangeOf } from '../config/parse';
import { severityName } from '../config/diagnostics';
import type { Recipe } from '../config/recipe';
import { runnerFor, RunnerError } from '../runner';
import { runnerConfigFromEnv } from '../runner/config';
import type { RunRecord, RunStage } from '../bench/record';
import type { Summary } from '../bench/stats';

const usage =
  'haqa bench <haqa.yaml> [--json] [--quick] [--no-baseline] [--timeout SECONDS] [--store DIR] [--reference MODEL]' +
  ' [--host URL] [--measure latency|accuracy] [--progress-json]';

/** A recipe file checked like `haqa check` does; errors become a UsageError listing them by line. */
export async function loadRecipeFile(file: string): Promise<Recipe> {
  return (await loadRecipeAnalysis(file)).recipe;
}

async function loadRecipeAnalysis(file: string): Promise<{ recipe: Recipe; parsed: ParsedYaml }> {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = fs.readFileSync(abs, 'utf8');
  } catch {
    throw new UsageError(`recipe not found: ${abs}`);
  }
  const a = await analyzeRecipe(text, abs, { models: new ModelCache() });
  const errors = a.diagnostics.filter((d) => severityName(d.severity) === 'error');
  if (errors.length || !a.recipe) {
    const lines = errors.map(
      (d) => `${abs}:${d.range.start.line + 1}:${d.range.start.character + 1}: error: ${d.message}`,
    );
    throw new UsageError(lines.join('\n') || `${abs}: not a usable recipe`);
  }
  return { recipe: a.recipe, parsed: a.parsed };
}

function ms(s: Summary | undefined): string {
  if (!s) return '-';
  const f = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
  return (
    `${f(s.median)} ms (p10 ${f(s.p10)}, p90 ${f(s.p90)}, n ` +
    `${s.n}${s.ci_rel !== null ? `, ±${(s.ci_rel * 100).toFixed(1)}%` : ''})`
  );
}

const x = (r: number | undefined) => (r === undefined ? '' : `${r.toFixed(2)}×`);

export function formatRecord(r: RunRecord): string[] {
  const out: string[] = [];
  const m = r.metrics;
  const b = r.baseline;
  const s = r.speedups ?? {};
  out.push(`${r.recipe_file}  run ${r.id}  ${r.status}${r.quick ? ' (quick)' : ''}`);
  if (r.error) out.push(`  error (${r.error.stage}): ${r.error.message}`);
  if (r.artifact) {
    out.push(
      `  model      ${r.artifact}  ${m.model_bytes !== undefined ? humanBytes(m.model_bytes) : ''}` +
        `${s.size && Math.abs(s.size - 1) > 0.005 ? `, ${x(s.size)} smaller than fp32` : ''}` +
        (r.artifact_reused
          ? '  [artifact reused]'
          : r.compress_seconds
            ? `  [compressed in ${r.compress_seconds.toFixed(1)} s]`
            : ''),
    );
  }
  const row = (label: string, v: string, base: string, sp: number | undefined, paired?: Summary) =>
    out.push(
      `  ${label.padEnd(10)} ${v}` +
        (base
          ? `   fp32 ${base}   ${x(sp)}` +
            (paired
              ? ` (paired ${x(paired.median)}` +
                `${paired.ci_rel !== null ? ` ±${(paired.ci_rel * 100).toFixed(0)}%` : ''})`
              : '')
          : ''),
    );
  const p = s.paired ?? {};
  if (m.prefill_ms)
    row('prefill', ms(m.prefill_ms), b?.prefill_ms ? ms(b.prefill_ms).split(' (')[0] : '', s.prefill, p.prefill);
  if (m.decode_ms_per_token)
    row(
      'decode',
      `${ms(m.decode_ms_per_token)} per token`,
      b?.decode_ms_per_token ? ms(b.decode_ms_per_token).split(' (')[0] : '',
      s.decode,
      p.decode,
    );
  if (m.inference_ms)
    row(
      'inference',
      ms(m.inference_ms),
      b?.inference_ms ? ms(b.inference_ms).split(' (')[0] : '',
      s.inference,
      p.inference,
    );
  if (m.throughput_tok_s !== undefined)
    row(
      'throughput',
      `${m.throughput_tok_s.toFixed(0)} tok/s`,
      b?.throughput_tok_s ? `${b.throughput_tok_s.toFixed(0)} tok/s` : '',
      s.throughput,
    );
  const acc: string[] = [];
  if (m.ppl !== undefined) {
    const d = m.ppl_fp32
      ? ` (fp32 ${m.ppl_fp32.toFixed(3)}, ${m.ppl >= m.ppl_fp32 ? '+' : ''}` +
        `${(((m.ppl - m.ppl_fp32) / m.ppl_fp32) * 100).toFixed(2)}%)`
      : '';
    acc.push(`ppl ${m.ppl.toFixed(3)}${d}`);
  }
  if (m.kl !== undefined)
    acc.push(`KL ${m.kl.toExponential(2)} nats${m.kl_method && m.kl_method !== 'exact' ? ` [${m.kl_method}]` : ''}`);
  if (m.top1 !== undefined) acc.push(`top-1 ${(m.top1 * 100).toFixed(1)}%`);
  if (m.output_rel_rmse !== undefined) acc.push(`output rel. RMS error ${m.output_rel_rmse.toExponential(2)}`);
  if (acc.length)
    out.push(
      `  accuracy   ${acc.join(', ')}` +
        `${m.eval_tokens ? `  on ${m.eval_tokens} tokens in ${m.eval_windows} windows` : ''}`,
    );
  if (acc.length && r.reference) {
    const ref = r.reference;
    out.push(
      `  reference  ${ref.kind === 'source' ? 'the source model' : `stated: ${ref.model}`} ` +
        `(${ref.dtype}): ${ref.reason}`,
    );
  }
  if (m.peak_rss_bytes !== undefined)
    out.push(
      `  memory     peak RSS ${humanBytes(m.peak_rss_bytes)}` +
        `${b?.peak_rss_bytes ? `   fp32 ${humanBytes(b.peak_rss_bytes)}` : ''}`,
    );
  const so = r.session_options;
  if (r.runtime && r.runtime.engine !== 'onnxruntime') {
    const ll = r.config.runtime.llama ?? {};
    const knobs = Object.entries(ll)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    out.push(
      `  runtime    ${r.runtime.engine} (node-llama-cpp ${r.runtime.version})` +
        `${knobs ? `, ${knobs}` : `, ${so.intra_op_threads} threads`}; fp32 baseline and ` +
        `reference: onnxruntime ${r.onnxruntime} on ${r.hardware.cpu} (${r.hardware.cores} cores)`,
    );
  } else {
    out.push(
      `  runtime    ${so.provider}, ${so.intra_op_threads} intra / ${so.inter_op_threads} ` +
        `inter threads, optimization ${so.graph_optimization}, ${so.execution_mode}; ` +
        `onnxruntime ${r.onnxruntime} on ${r.hardware.cpu} (${r.hardware.cores} cores)`,
    );
  }
  return out;
}

export const benchCommand: Command = {
  name: 'bench',
  summary: 'compress and benchmark a recipe in a worker process; record the run in .haqa/runs',
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(
      argv,
      {
        json: { type: 'boolean' },
        quick: { type: 'boolean' },
        'no-baseline': { type: 'boolean' },
        timeout: { type: 'string' },
        store: { type: 'string' },
        reference: { type: 'string' },
        host: { type: 'string' },
        measure: { type: 'string' },
        'progress-json': { type: 'boolean' },
        // A test hook passed to the worker, which honours it only with HAQA_BENCH_TEST_HOOKS=1 (not in usage).
        'debug-hang': { type: 'string' },
      },
      usage,
    );
    if (positionals.length !== 1) throw new UsageError(`expected one recipe\nusage: ${usage}`);
    let timeoutMs: number | undefined;
    if (values.timeout !== undefined) {
      const t = Number(values.timeout);
      if (!(t > 0)) throw new UsageError(`--timeout must be a positive number of seconds, got '${values.timeout}'`);
      timeoutMs = t * 1000;
    }
    if (values.measure !== undefined && !['latency', 'accuracy'].includes(values.measure)) {
      throw new UsageError(`--measure must be latency or accuracy, got '${values.measure}'`);
    }
    const { recipe, parsed } = await loadRecipeAnalysis(positionals[0]);
    let last = '';
    // Where it runs: --host, else the recipe's target.host, else this machine (server/src/runner).
    let runner;
    try {
      runner = runnerFor(values.host ?? recipe.target.host, runnerConfigFromEnv());
    } catch (err) {
      if (err instanceof RunnerError) throw new UsageError(err.message);
      throw err;
    }
    const record = await runner
      .run(
        {
          recipe,
          quick: values.quick ?? false,
          baseline: !values['no-baseline'],
          timeoutMs,
          measure:
            values.measure === 'latency'
              ? { accuracy: false }
              : values.measure === 'accuracy'
                ? { latency: false }
                : undefined,
          debug: values['debug-hang'] ? { hangAt: values['debug-hang'] as RunStage } : undefined,
          reference: values.reference ? path.resolve(values.reference) : undefined,
        },
        {
          signal: io.signal,
          storeDir: values.store ? path.resolve(values.store) : undefined,
          onProgress: (p) => {
            // --progress-json: one JSON line per progress event on stderr (what the SSH runner reads back).
            if (values['progress-json'])
              io.err(JSON.stringify({ stage: p.stage, message: p.message, fraction: p.fraction }));
            const line = `${p.stage}: ${p.message}`;
            if (!values.json && p.stage !== last && !/^repetition/.test(p.message)) io.err(`  ${line}`);
            last = p.stage;
          },
        },
      )
      .finally(() => runner.close());
    const e = record.error;
    if (e?.code && e.recipe_path) {
      // A path `haqa check` reports as not read: refused at its place in the recipe, in the check's words.
      const at = rangeOf(parsed, e.recipe_path).start;
      io.err(`${recipe.file}:${at.line + 1}:${at.character + 1} error ${e.code} ${e.message}`);
    }
    if (values.json) io.out(JSON.stringify(record, null, 2));
    else for (const l of formatRecord(record)) io.out(l);
    return record.status === 'ok' ? 0 : record.status === 'cancelled' ? 130 : 1;
  },
};
