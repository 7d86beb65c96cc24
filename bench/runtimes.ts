// `node --import tsx bench/runtimes.ts [--quick] [--threads N] [--trials T]`: onnxruntime and llama.cpp
// side by side on the bundled model (examples/tiny-llama), one runRecipe per variant, each timed
// interleaved with onnxruntime's fp32 model in the same worker (paired speedups: the ratio to trust on a
// shared machine):
//   fp32 (onnxruntime), onnxruntime's default 4-bit conversion (ORT_DEFAULT_4BIT),
//   llama.cpp Q4_0, Q4_K_M and Q8_0 at default settings (HAQA's GGUF export, compress/gguf.ts),
//   HAQA-tuned onnxruntime: `haqa tune` of the bundled recipe (its own search space), T trials;
//   HAQA-tuned across both runtimes: the same with runtime.engine and quantize.gguf_type in the space.
// A tuned variant is the tuner's best recipe measured again like every other row (a full run, not the
// trial's quick one). Perplexity, KL and top-1 are against onnxruntime's fp32 on the same text and
// tokenizer. Writes bench/results/runtimes.json and prints a markdown table for bench/REPORT.md, with the
// issue's goal (tuned ≥ 1.25× llama.cpp Q4_K_M's decode at equal or better perplexity) judged.
// Not measured here (yet): Llama-3.2-1B's shape.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { resolveRecipe } from '../server/src/config/recipe';
import { runRecipe } from '../server/src/bench/run';
import { hardwareFingerprint, measureBandwidth } from '../server/src/bench/hardware';
import { ORT_DEFAULT_4BIT } from '../server/src/compress/quant';
import { writeFileAtomic } from '../server/src/util/atomicWrite';
import type { RunRecord } from '../server/src/bench/record';
import { loadSetting } from '../server/src/agent/setting';
import { tune } from '../server/src/agent/session';
import { applyConfig } from '../server/src/agent/edits';
import { configText } from '../server/src/cli/tune';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    threads: { type: 'string', default: '2' },
    trials: { type: 'string', default: '12' },
  },
});
const QUICK = values.quick!;
const THREADS = Number(values.threads);
const TRIALS = Number(values.trials);
const ROOT = path.resolve(__dirname, '..');
const SRC = path.join(ROOT, 'examples', 'tiny-llama');
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'haqa-bench-runtimes-'));
for (const f of ['model.onnx', 'config.json', 'tokenizer.json', 'haqa.yaml'])
  fs.copyFileSync(path.join(SRC, f), path.join(WORK, f));
fs.mkdirSync(path.join(WORK, 'data'));
for (const f of ['eval.txt', 'calib.txt']) fs.copyFileSync(path.join(SRC, 'data', f), path.join(WORK, 'data', f));

interface Variant {
  label: string;
  quantize?: Record<string, unknown>;
  runtime?: Record<string, unknown>;
  /** A tuned variant: the search space entries added to the bundled recipe's own (none: its space as is). */
  tune?: Record<string, unknown[]>;
}
const { method, bits, block_size, symmetric, accuracy_level } = ORT_DEFAULT_4BIT;
const VARIANTS: Variant[] = [
  { label: 'fp32 (onnxruntime)' },
  { label: 'onnxruntime default 4-bit', quantize: { method, bits, block_size, symmetric, accuracy_level } },
  ...['Q4_0', 'Q4_K_M', 'Q8_0'].map((t) => ({
    label: `llama.cpp ${t}`,
    quantize: { gguf_type: t },
    runtime: { engine: 'llama.cpp' },
  })),
  { label: 'HAQA-tuned onnxruntime', tune: {} },
  {
    label: 'HAQA-tuned across both runtimes',
    tune: { 'runtime.engine': ['onnxruntime', 'llama.cpp'], 'quantize.gguf_type': ['Q4_0', 'Q4_K_M', 'Q8_0'] },
  },
];

/** What a tuned row's tuning did: its best configuration, trials and time. */
interface Tuned {
  config: string;
  trials: number;
  seconds: number;
}

/**
 * Tune the bundled recipe (its search space plus `extra`) with the offline optimizer and write the best
 * recipe: the text `haqa tune` would write (the bundled recipe's comments kept), with the evaluation set
 * as the other rows have it. Returns its file and what the tuning did.
 */
async function tuned(v: Variant): Promise<{ file: string; tuned: Tuned }> {
  const doc = YAML.parseDocument(fs.readFileSync(path.join(WORK, 'haqa.yaml'), 'utf8'));
  doc.setIn(['target', 'threads'], THREADS);
  if (THREADS < 2) doc.deleteIn(['search', 'space', 'runtime.intra_op_threads']);
  for (const [k, vals] of Object.entries(v.tune ?? {})) doc.setIn(['search', 'space', k], vals);
  if (QUICK) doc.setIn(['evaluation', 'max_windows'], 8);
  const file = path.join(WORK, `${v.label.replace(/\W+/g, '-')}.haqa.yaml`);
  fs.writeFileSync(file, doc.toString());
  const loaded = await loadSetting(file);
  for (const p of loaded.spaceProblems) process.stderr.write(`${v.label}: search space: ${p}\n`);
  process.stderr.write(`${v.label}: tuning, ${TRIALS} trials over ${loaded.space.size} assignments\n`);
  const result = await tune(loaded, {
    agent: 'offline',
    trials: TRIALS,
    seed: 0,
    quick: true,
    onEvent: (e) => {
      if (e.type === 'trial-end')
        process.stderr.write(`  #${e.trial.index} ${configText(e.trial.config)}: ${e.trial.status}\n`);
    },
  });
  const best = result.best?.feasible ? result.best : undefined;
  if (!best) throw new Error(`${v.label}: no feasible trial (${result.reason})`);
  const bestFile = file.replace(/\.haqa\.yaml$/, '.best.haqa.yaml');
  fs.writeFileSync(bestFile, applyConfig(loaded.text, best.config));
  return {
    file: bestFile,
    tuned: { config: configText(best.config), trials: result.trials.length, seconds: result.seconds },
  };
}

async function measure(v: Variant): Promise<{ record: RunRecord; tuned?: Tuned }> {
  if (v.tune) {
    const t = await tuned(v);
    const recipe = resolveRecipe(YAML.parse(fs.readFileSync(t.file, 'utf8')), t.file);
    process.stderr.write(`${v.label}: measuring the best trial (${t.tuned.config})\n`);
    return { record: await run(v, recipe), tuned: t.tuned };
  }
  const doc = {
    version: 1,
    model: './model.onnx',
    target: { provider: 'cpu', threads: THREADS },
    objective: { metric: 'decode_latency', workload: { prompt_length: 64, decode_tokens: 32, batch: 1 } },
    quantize: v.quantize,
    runtime: v.runtime,
    evaluation: {
      text: './data/eval.txt',
      tokenizer: './tokenizer.json',
      window: 128,
      ...(QUICK ? { max_windows: 8 } : {}),
    },
  };
  const file = path.join(WORK, `${v.label.replace(/\W+/g, '-')}.haqa.yaml`);
  fs.writeFileSync(file, YAML.stringify(doc));
  process.stderr.write(`${v.label}: measuring\n`);
  return { record: await run(v, resolveRecipe(doc, file)) };
}

async function run(v: Variant, recipe: ReturnType<typeof resolveRecipe>): Promise<RunRecord> {
  const r = await runRecipe(recipe, {
    quick: QUICK,
    baseline: v.quantize !== undefined || v.tune !== undefined,
    storeDir: WORK,
    timeoutMs: 30 * 60_000,
  });
  if (r.status !== 'ok') throw new Error(`${v.label}: ${r.status} at ${r.error?.stage}: ${r.error?.message}`);
  return r;
}

const f = (x: number | undefined, d = 2) => (x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(d));

const GOAL = "Goal (tuned ≥ 1.25× llama.cpp Q4_K_M's decode at equal or better perplexity)";

/** The issue's goal: the better tuned row ≥ 1.25× llama.cpp Q4_K_M's paired decode speedup, at equal or better perplexity. */
function goalLine(rows: { label: string; record: RunRecord; tuned?: Tuned }[]): string {
  const speed = (r: RunRecord) => r.speedups?.paired?.decode?.median;
  const k = rows.find((x) => x.label === 'llama.cpp Q4_K_M')?.record;
  const cands = rows.filter((x) => x.tuned && speed(x.record) !== undefined);
  if (!k || speed(k) === undefined || cands.length === 0)
    return 'Goal not judged: a row it needs has no paired figure.';
  const best = cands.reduce((a, b) => (speed(b.record)! > speed(a.record)! ? b : a));
  const ratio = speed(best.record)! / speed(k)!;
  // Pairs that disagree by more than 2× (p90 / p10 of a row's paired ratio) measured interference, not
  // the runtimes: e.g. llama.cpp's threads waiting on cores that onnxruntime's spinning pool holds.
  const spread = (r: RunRecord) => {
    const d = r.speedups?.paired?.decode;
    return d?.p10 && d.p90 ? d.p90 / d.p10 : Infinity;
  };
  const wide = [best, { label: 'llama.cpp Q4_K_M', record: k }].filter((x) => spread(x.record) > 2);
  if (wide.length)
    return (
      `${GOAL}: **not judged** — the paired ` +
      `ratios of ${wide.map((x) => `${x.label} (p10–p90 ${f(spread(x.record), 1)}× apart)`).join(' and ')} ` +
      `disagree by more than 2×, so the pairs measured interference rather than the runtimes ` +
      `(the point estimate, ${f(ratio)}×, is not a result).`
    );
  const ppl = best.record.metrics.ppl !== undefined && k.metrics.ppl !== undefined;
  const pplOk = ppl && best.record.metrics.ppl! <= k.metrics.ppl! * 1.0005;
  const met = ratio >= 1.25 && pplOk;
  return (
    `${GOAL}: the faster tuned row, ` +
    `${best.label}, decodes ${f(ratio)}× Q4_K_M's speed (ratio of the two rows' paired speedups over fp32), ` +
    `perplexity ${f(best.record.metrics.ppl)} against ${f(k.metrics.ppl)}: **${met ? 'met' : 'not met'}**.`
  );
}

(async () => {
  const started = new Date();
  const load0 = os.loadavg();
  process.stderr.write(`measuring memory bandwidth (${THREADS} threads)\n`);
  const bw = await measureBandwidth({ threads: THREADS });
  const rows: { label: string; record: RunRecord; tuned?: Tuned }[] = [];
  for (const v of VARIANTS) rows.push({ label: v.label, ...(await measure(v)) });
  const load1 = os.loadavg();
  const out = {
    started: started.toISOString(),
    quick: QUICK,
    threads: THREADS,
    trials: TRIALS,
    hardware: hardwareFingerprint(),
    bandwidth: bw,
    loadavg: { start: load0, end: load1 },
    rows,
  };
  fs.mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true });
  await writeFileAtomic(path.join(ROOT, 'bench', 'results', 'runtimes.json'), JSON.stringify(out, null, 2) + '\n');
  const lines = [
    '| variant | runtime | decode ms/token (median, p10–p90) | decode vs ORT fp32 (paired) | prefill ' +
      'ms | prefill vs fp32 (paired) | size MB | floor ms/token | peak RSS MiB | ppl | KL vs fp32 | top-1 |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const { label, record: r } of rows) {
    const m = r.metrics;
    const p = r.speedups?.paired;
    lines.push(
      `| ${label} | ${r.runtime?.engine ?? 'onnxruntime'} ${r.runtime?.version ?? r.onnxruntime} ` +
        `| ${f(m.decode_ms_per_token?.median, 3)} ` +
        `(${f(m.decode_ms_per_token?.p10, 3)}–${f(m.decode_ms_per_token?.p90, 3)}, n=${m.decode_ms_per_token?.n}) ` +
        `| ${p?.decode ? `${f(p.decode.median)}× (${f(p.decode.p10)}–${f(p.decode.p90)})` : '1.00×'} ` +
        `| ${f(m.prefill_ms?.median, 1)} | ${p?.prefill ? `${f(p.prefill.median)}×` : '1.00×'} | ` +
        `${f((m.model_bytes ?? 0) / 1e6, 2)} | ${f((m.model_bytes ?? 0) / 1e6 / bw.gbps, 3)} ` +
        `| ${f((m.peak_rss_bytes ?? 0) / 2 ** 20, 0)} | ${f(m.ppl)} | ${f(m.kl, 4)} | ${f(m.top1, 3)} |`,
    );
  }
  const tunedLines = rows
    .filter((x) => x.tuned)
    .map(
      (x) => `- ${x.label}: best of ${x.tuned!.trials} trials (${f(x.tuned!.seconds, 0)} s): \`${x.tuned!.config}\``,
    );
  process.stdout.write(
    `Measured ${started.toISOString()}${QUICK ? ' (quick)' : ''}, ${THREADS} threads, ` +
      `load average ${load0.map((x) => x.toFixed(1)).join(' ')} ` +
      `→ ${load1.map((x) => x.toFixed(1)).join(' ')}; memory bandwidth ${f(bw.gbps, 1)} GB/s ` +
      `(floor = model bytes / bandwidth)\n\n${lines.join('\n')}\n\n${tunedLines.join('\n')}\n\n${goalLine(rows)}\n`,
  );
  fs.rmSync(WORK, { recursive: true, force: true });
})().catch((err) => {
  process.stderr.write(`bench/runtimes: ${(err as Error).message}\n`);
  process.exit(1);
});
