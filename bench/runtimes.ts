// `node --import tsx bench/runtimes.ts [--quick] [--threads N]`: onnxruntime and llama.cpp side by side
// on the bundled model (examples/tiny-llama), one runRecipe per variant, each timed interleaved with
// onnxruntime's fp32 model in the same worker (paired speedups: the ratio to trust on a shared machine):
//   fp32 (onnxruntime), onnxruntime's default 4-bit conversion (ORT_DEFAULT_4BIT),
//   llama.cpp Q4_0, Q4_K_M and Q8_0 at default settings (HAQA's GGUF export, compress/gguf.ts).
// Perplexity, KL and top-1 are against onnxruntime's fp32 on the same text and tokenizer.
// Writes bench/results/runtimes.json and prints a markdown table for bench/REPORT.md.
// Not measured here (yet): Llama-3.2-1B's shape, HAQA-tuned variants across both runtimes.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { resolveRecipe } from '../server/src/config/recipe';
import { runRecipe } from '../server/src/bench/run';
import { ORT_DEFAULT_4BIT } from '../server/src/compress/quant';
import { writeFileAtomic } from '../server/src/util/atomicWrite';
import type { RunRecord } from '../server/src/bench/record';

const { values } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, threads: { type: 'string', default: '2' } },
});
const QUICK = values.quick!;
const THREADS = Number(values.threads);
const ROOT = path.resolve(__dirname, '..');
const SRC = path.join(ROOT, 'examples', 'tiny-llama');
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'haqa-bench-runtimes-'));
for (const f of ['model.onnx', 'config.json', 'tokenizer.json']) fs.copyFileSync(path.join(SRC, f), path.join(WORK, f));
fs.mkdirSync(path.join(WORK, 'data'));
fs.copyFileSync(path.join(SRC, 'data', 'eval.txt'), path.join(WORK, 'data', 'eval.txt'));

interface Variant {
  label: string;
  quantize?: Record<string, unknown>;
  runtime?: Record<string, unknown>;
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
];

async function measure(v: Variant): Promise<RunRecord> {
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
  const recipe = resolveRecipe(doc, file);
  process.stderr.write(`${v.label}: measuring\n`);
  const r = await runRecipe(recipe, {
    quick: QUICK,
    baseline: v.quantize !== undefined,
    storeDir: WORK,
    timeoutMs: 30 * 60_000,
  });
  if (r.status !== 'ok') throw new Error(`${v.label}: ${r.status} at ${r.error?.stage}: ${r.error?.message}`);
  return r;
}

const f = (x: number | undefined, d = 2) => (x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(d));

(async () => {
  const started = new Date();
  const load0 = os.loadavg();
  const rows: { label: string; record: RunRecord }[] = [];
  for (const v of VARIANTS) rows.push({ label: v.label, record: await measure(v) });
  const load1 = os.loadavg();
  const out = {
    started: started.toISOString(),
    quick: QUICK,
    threads: THREADS,
    loadavg: { start: load0, end: load1 },
    rows,
  };
  fs.mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true });
  await writeFileAtomic(path.join(ROOT, 'bench', 'results', 'runtimes.json'), JSON.stringify(out, null, 2) + '\n');
  const lines = [
    '| variant | runtime | decode ms/token (median, p10–p90) | decode vs ORT fp32 (paired) | prefill ' +
      'ms | prefill vs fp32 (paired) | size MB | peak RSS MiB | ppl | KL vs fp32 | top-1 |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
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
        `${f((m.model_bytes ?? 0) / 1e6, 2)} | ${f((m.peak_rss_bytes ?? 0) / 2 ** 20, 0)} | ${f(m.ppl)} ` +
        `| ${f(m.kl, 4)} | ${f(m.top1, 3)} |`,
    );
  }
  process.stdout.write(
    `Measured ${started.toISOString()}${QUICK ? ' (quick)' : ''}, ${THREADS} threads, ` +
      `load average ${load0.map((x) => x.toFixed(1)).join(' ')} ` +
      `→ ${load1.map((x) => x.toFixed(1)).join(' ')}\n\n${lines.join('\n')}\n`,
  );
  fs.rmSync(WORK, { recursive: true, force: true });
})().catch((err) => {
  process.stderr.write(`bench/runtimes: ${(err as Error).message}\n`);
  process.exit(1);
});
