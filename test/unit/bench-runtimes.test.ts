// bench/runtimes.ts's verdict on issue 17's goal (the tuned answer ≥ 1.25× llama.cpp Q4_K_M's paired
// decode speed at equal or better perplexity): met, not met with what the floor allows, refused when the
// pairs are too erratic, and speed alone on random weights.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { goalLine, runtimesSection } from '../../bench/runtimes';

/** A row as bench/runtimes.ts records it: a paired decode speedup over fp32 with its spread. */
function row(label: string, speedup: number, o: { ppl?: number; ms?: number; bytes?: number; spread?: number } = {}) {
  const s = o.spread ?? 1.2;
  return {
    label,
    bytes_read_per_token: o.bytes ?? 1e6,
    ...(label.startsWith('HAQA') ? { tuned: { config: 'quantize.bits=4', trials: 12, seconds: 60 } } : {}),
    record: {
      metrics: { ppl: o.ppl ?? 40, kl: 0.001, decode_ms_per_token: { median: o.ms ?? 1, p10: 0.9, p90: 1.1, n: 40 } },
      speedups: { paired: { decode: { median: speedup, p10: speedup / Math.sqrt(s), p90: speedup * Math.sqrt(s) } } },
    },
  };
}
const run = (rows: unknown[], random = false) => ({ rows, random, bandwidth: { gbps: 10 } });

test('the goal is met when the faster tuned row is 1.25× Q4_K_M at no worse perplexity', () => {
  const line = goalLine(
    run([
      row('llama.cpp Q4_K_M', 1.2, { ppl: 41 }),
      row('HAQA-tuned onnxruntime', 1.6, { ppl: 40.9 }),
      row('HAQA-tuned across both runtimes', 1.4),
    ]),
  );
  assert.match(line, /HAQA-tuned onnxruntime, decodes \*\*1\.33×\*\* Q4_K_M's speed/);
  assert.match(line, /\*\*met\*\*/);
});

test('a faster tuned row with worse perplexity does not meet it, and the floors say what is possible', () => {
  const line = goalLine(
    run([
      row('llama.cpp Q4_K_M', 1.2, { ppl: 40, ms: 0.5, bytes: 2e6 }),
      row('HAQA-tuned onnxruntime', 1.6, { ppl: 41, ms: 0.6, bytes: 4e6 }),
    ]),
  );
  assert.match(line, /\*\*not met\*\*/);
  // floors 0.2 ms (Q4_K_M) and 0.4 ms (tuned): at best 0.5× its speed; 1.5× and 2.5× above the floors
  assert.match(line, /could decode at most 0\.50× Q4_K_M's speed; they run at 1\.5× and 2\.5× their floors\./);
});

test('near the bandwidth floor the verdict says decode is bandwidth bound', () => {
  const line = goalLine(
    run([
      row('llama.cpp Q4_K_M', 1.2, { ms: 0.24, bytes: 2e6 }),
      row('HAQA-tuned onnxruntime', 1.3, { ms: 0.18, bytes: 1.8e6 }),
    ]),
  );
  assert.match(line, /\*\*1\.08×\*\*.*\*\*not met\*\*/);
  assert.match(line, /at most 1\.11× Q4_K_M's speed; they run at 1\.0× and 1\.2× their floors: both are within 1\.5×/);
});

test('no verdict when a row the goal needs has pairs more than 2× apart', () => {
  const line = goalLine(run([row('llama.cpp Q4_K_M', 0.2, { spread: 6 }), row('HAQA-tuned onnxruntime', 1.6)]));
  assert.match(line, /\*\*not judged\*\*.*llama\.cpp Q4_K_M \(p10–p90 6\.0× apart\)/);
  assert.doesNotMatch(line, /\*\*met\*\*/);
});

test('on random weights perplexity is not compared: speed alone is judged, the KL shown', () => {
  const rows = [row('llama.cpp Q4_K_M', 1.2, { ppl: 1000 }), row('HAQA-tuned onnxruntime', 1.6, { ppl: 2000 })];
  assert.match(goalLine(run(rows)), /\*\*not met\*\*/);
  const random = goalLine(run(rows, true));
  assert.match(random, /KL vs fp32 0\.0010 against 0\.0010 \(random weights: speed alone is judged\): \*\*met\*\*/);
});

test('the section has a table per run and says which machine and when', () => {
  const r = {
    ...run([row('fp32 (onnxruntime)', 1), row('llama.cpp Q4_K_M', 1.2), row('HAQA-tuned onnxruntime', 1.6)]),
    description: 'a model',
    threads: 1,
    quick: false,
    started: '2026-12-04T04:00:00.000Z',
    finished: '2026-12-04T04:10:00.000Z',
    loadavg: { start: [1, 1, 1], end: [2, 2, 2] },
    workload: { prompt_length: 64, decode_tokens: 32, batch: 1 },
    hardware: { cpu: 'Some CPU', cores: 2, isa: ['avx2'] },
  };
  const text = runtimesSection({ runs: [r] }).join('\n');
  assert.match(text, /### a model, 1 thread\n/);
  assert.match(text, /Measured 2026-12-04 04:00–04:10 UTC on Some CPU, 2 cores, AVX2;/);
  assert.equal(text.split('\n').filter((l) => l.startsWith('| llama.cpp Q4_K_M')).length, 1);
});

test('a run with more threads says when llama.cpp decodes slower than with one', () => {
  const at = (threads: number, ms: number) => ({
    ...run([row('llama.cpp Q4_K_M', 1.2, { ms }), row('HAQA-tuned onnxruntime', 1.6)]),
    model: 'tiny-llama',
    description: 'a model',
    threads,
    quick: false,
    started: '2026-12-04T04:00:00.000Z',
    finished: '2026-12-04T04:10:00.000Z',
    loadavg: { start: [1, 1, 1], end: [1, 1, 1] },
  });
  const text = (two: number) => runtimesSection({ runs: [at(1, 0.8), at(2, two)] }).join('\n');
  assert.match(text(6), /at 6\.00 ms\/token .* with 2 threads against 0\.80 with 1 \(the run above\): 7\.5× slower/);
  assert.doesNotMatch(text(0.7), /slower with more threads/);
});
