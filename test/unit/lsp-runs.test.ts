// Run features of the language server: the headline figure, where lenses attach, what a run record
// turns into as diagnostics, reading records with their line numbers; and over the real protocol, that
// an untrusted workspace gets no runs (nor prunes) and that a suggestion comes back as one comment-keeping edit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createMessageConnection, StreamMessageReader, StreamMessageWriter } from 'vscode-languageserver/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import type { TextEdit } from 'vscode-languageserver-types';
import { bestOfNewestSession, headline, summarize } from '../../server/src/lsp/runViews';
import { runFindings } from '../../server/src/lsp/runDiagnostics';
import { recipeAnchors } from '../../server/src/config/anchors';
import { mergeTrialSteps } from '../../server/src/agent/fromRecords';
import { RunStore } from '../../server/src/bench/store';
import type { RunRecord } from '../../server/src/bench/record';
import type { Recipe } from '../../server/src/config/recipe';
import { tempDir } from '../helpers/tinyModel';

const summary = (median: number, spread = 0.01) => ({
  median,
  p10: median * (1 - spread),
  p90: median * (1 + spread),
  n: 20,
  ci_rel: spread,
});

function record(
  over: Partial<RunRecord> & { decode?: number; ppl?: number; rss?: number; speedup?: number } = {},
): RunRecord {
  const { decode = 5, ppl = 10.1, rss = 50 * 2 ** 20, speedup = 2, ...rest } = over;
  return {
    id: `2026-11-22T00:00:00Z-${Math.random().toString(36).slice(2, 6)}`,
    recipe_file: '/w/haqa.yaml',
    recipe_hash: 'h1',
    source_model: '/w/model.onnx',
    config: {} as RunRecord['config'],
    status: 'ok',
    metrics: { decode_ms_per_token: summary(decode), ppl, ppl_fp32: 10, peak_rss_bytes: rss, model_bytes: 3e6 },
    baseline: { decode_ms_per_token: summary(decode * speedup) },
    speedups: { decode: speedup },
    session_options: {} as RunRecord['session_options'],
    hardware: { cpu: 'x' } as RunRecord['hardware'],
    onnxruntime: '1.30.0',
    quick: false,
    started: '2026-11-22T00:00:00Z',
    finished: '2026-11-22T00:00:10Z',
    ...rest,
  };
}

const recipe = {
  objective: { accuracy: { max_ppl_increase: 0.05 } },
  target: { memory_limit: 64 * 2 ** 20 },
} as unknown as Recipe;

test('headline reads like the lens: decode, speedup against fp32, perplexity change, runtime', () => {
  assert.equal(
    headline(summarize(record({ decode: 7.9, ppl: 10.06, speedup: 2.7 }))),
    'decode 7.90 ms/token · 2.7× vs fp32 · ppl +0.6% · 3.0 MB · onnxruntime',
  );
  // a llama.cpp run says so on the lens, and with its version in the results view's row
  const llama = summarize(record({ decode: 0.57, runtime: { engine: 'llama.cpp', version: '3.21.1' } }));
  assert.equal(llama.runtime, 'llama.cpp 3.21.1');
  assert.match(headline(llama), /· 3\.0 MB · llama\.cpp$/);
  // a hostile record's runtime is one line of display text
  const odd = summarize(record({ runtime: { engine: 'llama.cpp', version: '3\n\u202e1' } as RunRecord['runtime'] }));
  assert.doesNotMatch(odd.runtime!, /[\n\u202e]/);
  assert.equal(
    headline(
      summarize(
        record({ status: 'error', error: { message: 'tokenizer not found', stage: 'setup' } as RunRecord['error'] }),
      ),
    ),
    'error: tokenizer not found',
  );
});

test('anchors: compression sections, overrides by their match line, nested keys', () => {
  const text = [
    'version: 1',
    'target:',
    '  memory_limit: 64MiB',
    'quantize:',
    '  bits: 4',
    '  overrides:',
    '    # more bits',
    '    - match: "model.layers.*.mlp.down_proj"',
    '      bits: 8',
    'sparsity:',
    '  - match: a.*   # note',
    'evaluation:',
    '  - match: not-an-override',
  ].join('\n');
  const a = recipeAnchors(text);
  assert.deepEqual(a.sections, [
    { key: 'quantize', line: 3 },
    { key: 'sparsity', line: 9 },
  ]);
  assert.deepEqual(a.overrides, [
    { line: 7, match: 'model.layers.*.mlp.down_proj' },
    { line: 10, match: 'a.*' },
  ]);
  assert.equal(a.keys.get('target.memory_limit'), 2);
});

test('findings: within budget, faster, under the memory limit → nothing to say', () => {
  assert.deepEqual(runFindings(recipe, record(), undefined), []);
});

test('findings: accuracy budget, slower than fp32, memory over target, each with its anchor', () => {
  const f = runFindings(recipe, record({ ppl: 10.8, speedup: 0.8, rss: 80 * 2 ** 20 }), undefined);
  assert.deepEqual(
    f.map((x) => [x.code, x.anchor]),
    [
      ['run-accuracy-budget', 'objective.accuracy'],
      ['run-slower-than-fp32', 'quantize'],
      ['run-memory-over-target', 'target.memory_limit'],
    ],
  );
  assert.match(f[0].message, /8\.00% above fp32/);
  // the finding names the runtimes its two figures came from
  const llama = runFindings(
    recipe,
    record({ speedup: 0.5, runtime: { engine: 'llama.cpp', version: '3.21.1' } }),
    undefined,
  ).find((x) => x.code === 'run-slower-than-fp32');
  assert.match(llama!.message, /ms in llama\.cpp 3\.21\.1 vs fp32 2\.50 ms in onnxruntime 1\.30\.0\)/);
});

test('findings: a regression needs the intervals apart, not just a higher median', () => {
  const prev = record({ decode: 5 });
  assert.deepEqual(
    runFindings(
      recipe,
      record({ decode: 5.2, metrics: { ...record().metrics, decode_ms_per_token: summary(5.2, 0.1) } }),
      prev,
    ),
    [],
  );
  const slower = runFindings(recipe, record({ decode: 6 }), prev);
  assert.deepEqual(
    slower.map((x) => x.code),
    ['run-regression'],
  );
  // Another machine: not comparable.
  assert.deepEqual(
    runFindings(recipe, record({ decode: 6, hardware: { cpu: 'other' } as RunRecord['hardware'] }), prev),
    [],
  );
});

test('recordsOf: this recipe only, with 1-based lines, skipping torn lines', async () => {
  const dir = tempDir('haqa-runs-');
  const store = new RunStore(dir);
  const mine = path.join(dir, 'haqa.yaml');
  await store.append(record({ recipe_file: mine, id: 'a' }));
  await store.append(record({ recipe_file: path.join(dir, 'other.haqa.yaml'), id: 'b' }));
  await store.append(record({ recipe_file: mine, id: 'c' }));
  fs.appendFileSync(store.runsFile, '{"id": "torn');
  assert.deepEqual(
    store.recordsOf(mine).map((x) => [x.record.id, x.line]),
    [
      ['a', 1],
      ['c', 3],
    ],
  );
});

test('a two-step trial (speed record, then accuracy record) is one run with both figures', () => {
  const speed = record({ id: 's', trial: { session: 'S', number: 2 }, metrics: { decode_ms_per_token: summary(4) } });
  const acc = record({ id: 'a', trial: { session: 'S', number: 2 }, metrics: { ppl: 10.2, ppl_fp32: 10 } });
  const other = record({ id: 'o', trial: { session: 'S', number: 3 } });
  const plain = record({ id: 'p' });
  const merged = mergeTrialSteps([
    { record: speed, line: 1 },
    { record: acc, line: 2 },
    { record: other, line: 3 },
    { record: plain, line: 4 },
  ]);
  assert.deepEqual(
    merged.map((x) => [x.record.id, x.line]),
    [
      ['s', 1],
      ['o', 3],
      ['p', 4],
    ],
  );
  const run = summarize(merged[0].record);
  assert.equal(run.decode_ms, 4);
  assert.ok(Math.abs(run.ppl_delta_pct! - 2) < 1e-9);
  assert.equal(speed.metrics.ppl, undefined, 'the input records are not changed');
});

/** A raced trial record (bench/race.ts): decode median `ms`, paired ratio `ratio` of fp32's time. */
function raced(
  number: number,
  assignment: Record<string, unknown>,
  ms: number,
  ratio: number,
  extra: Partial<RunRecord['metrics']> = {},
  session = 'S2',
): RunRecord {
  const f = { ratio, lo: ratio * 0.98, hi: ratio * 1.02, n: 12 };
  return record({
    trial: { session, number, assignment: assignment as never, agent: 'offline' },
    baseline: undefined,
    speedups: undefined,
    metrics: { decode_ms_per_token: { ...summary(ms), min: ms * 0.5 }, ...extra } as RunRecord['metrics'],
    race: {
      paired: true,
      verdict: 'better',
      series: 'decode',
      threshold: 0,
      tolerance: 0.03,
      pairs: 12,
      wall_ms: 900,
      decode: f,
    },
  });
}

test("after a restart the store gives the best trial, by the loop's rule: paired ratios, not fastest samples", () => {
  const A = { 'quantize.bits': 8, 'quantize.accuracy_level': 4 };
  const B = { 'quantize.bits': 4, 'quantize.accuracy_level': 4 };
  const C = { 'quantize.bits': 4, 'quantize.block_size': 128 };
  const fp32 = record({
    id: 'base',
    trial: { number: 0, agent: 'baseline' },
    metrics: { decode_ms_per_token: summary(10), ppl: 10, ppl_fp32: 10 } as RunRecord['metrics'],
  });
  const recs = [
    raced(1, C, 1, 0.1, { ppl: 10.1, ppl_fp32: 10 }, 'S1'), // an older session
    fp32,
    raced(1, A, 5, 0.5, { ppl: 10.1, ppl_fp32: 10 }),
    // B's window was loaded (median 3.5 ms, so it looks faster than A in ms) but its paired ratio says 0.6.
    raced(2, B, 3.5, 0.6),
    raced(2, B, 0, 0.6, { ppl: 10.2, ppl_fp32: 10 }),
    raced(3, C, 2, 0.2, { ppl: 11, ppl_fp32: 10 }), // fastest, over the 5% budget
  ].map((record, line) => ({ record, line }));
  recs[4].record.metrics = { ppl: 10.2, ppl_fp32: 10 } as RunRecord['metrics'];
  delete recs[4].record.race;
  const best = bestOfNewestSession(recs, 0.05)!;
  assert.deepEqual(
    best.config,
    A,
    "A's paired ratio (0.5) beats B's (0.6), though B's median and fastest sample are lower",
  );
  assert.equal(best.id, recs[2].record.id);
  assert.match(best.headline, /^decode 5\.00 ms\/token · 2\.0× vs fp32 · ppl \+1\.0%.* · onnxruntime$/);
  // The results view's row of the same record says the same: × fp32 from the paired ratio, the same ms.
  const row = summarize(recs[2].record);
  assert.equal(row.speedup_decode, 2);
  assert.equal(row.decode_ms, 5);
  assert.equal(row.race_seconds, 0.9);
  assert.equal(row.race_reference, undefined, 'raced against fp32: no reference named');
  // A duel's row names the incumbent it raced (as one plain line), its × fp32 still the fp32-scale ratio.
  const duel = raced(3, B, 3, 0.45);
  duel.race = {
    ...duel.race!,
    reference: 'trial #1\u001b[31m\nx',
    duel: { decode: { ratio: 0.9, lo: 0.88, hi: 0.92, n: 12 } },
  };
  const drow = summarize(duel);
  assert.equal(drow.race_reference, 'trial #1\\u001b[31m\\u000ax', 'control characters shown escaped, on one line');
  assert.ok(Math.abs(drow.speedup_decode! - 1 / 0.45) < 1e-9);
  // Re-measured B: its median ratio (0.45 of 0.6, 0.45, 0.4) now beats A.
  const again = [...recs, { record: raced(4, B, 3, 0.45), line: 6 }, { record: raced(5, B, 3, 0.4), line: 7 }];
  const b2 = bestOfNewestSession(again, 0.05)!;
  assert.deepEqual(b2.config, B);
  assert.match(b2.headline, /2\.2× vs fp32/);
  // Ties within search.tolerance (3%) go to accuracy: a 1% faster plan with a worse perplexity does not win.
  const tie = [...recs.slice(0, 3), { record: raced(2, B, 4.9, 0.495, { ppl: 10.3, ppl_fp32: 10 }), line: 3 }];
  assert.deepEqual(bestOfNewestSession(tie, 0.05)!.config, A);
  assert.equal(bestOfNewestSession([], 0.05), undefined);
});

test('findings: a raced run is slower than fp32 only when its interval says so', () => {
  const r = (lo: number, hi: number, verdict: 'worse' | 'unresolved') => {
    const x = raced(1, {}, 5, (lo + hi) / 2, { ppl: 10.1, ppl_fp32: 10 });
    x.race = { ...x.race!, verdict, decode: { ratio: (lo + hi) / 2, lo, hi, n: 12 } };
    return x;
  };
  assert.deepEqual(
    runFindings(recipe, r(0.95, 1.1, 'unresolved'), undefined).map((f) => f.code),
    [],
  );
  assert.deepEqual(
    runFindings(recipe, r(1.1, 1.3, 'worse'), undefined).map((f) => f.code),
    ['run-slower-than-fp32'],
  );
});

test('protocol: runs are refused untrusted; a suggestion is one edit that keeps comments', async () => {
  const root = path.join(__dirname, '..', '..');
  const serverJs = path.join(root, 'dist', 'server.js');
  if (!fs.existsSync(serverJs))
    execFileSync(process.execPath, [path.join(root, 'esbuild.mjs')], { cwd: root, stdio: 'inherit' });
  const dir = tempDir('haqa-runs-lsp-');
  const file = path.join(dir, 'haqa.yaml');
  const text = 'version: 1\nmodel: ./model.onnx\nquantize:\n  bits: 4 # four\n  block_size: 32\n';
  fs.writeFileSync(file, text);
  const uri = pathToFileURL(file).href;
  const proc = spawn(process.execPath, [serverJs, '--stdio'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const conn = createMessageConnection(new StreamMessageReader(proc.stdout!), new StreamMessageWriter(proc.stdin!));
  conn.onRequest('client/registerCapability', () => null);
  conn.listen();
  try {
    const init = await conn.sendRequest<{ capabilities: { codeLensProvider?: unknown } }>('initialize', {
      processId: process.pid,
      rootUri: pathToFileURL(dir).href,
      capabilities: {},
      initializationOptions: { trusted: false },
    });
    assert.ok(init.capabilities.codeLensProvider, 'code lenses offered');
    await conn.sendNotification('initialized', {});
    await conn.sendNotification('textDocument/didOpen', {
      textDocument: { uri, languageId: 'yaml', version: 1, text },
    });
    await assert.rejects(conn.sendRequest('haqa/benchmark', { uri }), /Restricted Mode/);
    await assert.rejects(conn.sendRequest('haqa/tune', { uri }), /Restricted Mode/);
    // Prune deletes files, so a restricted workspace cannot ask for it either.
    await assert.rejects(conn.sendRequest('haqa/pruneRuns', { uri, keep: 1 }), /Restricted Mode/);
    await conn.sendNotification('haqa/trust', { trusted: true });
    assert.deepEqual(
      await conn.sendRequest('haqa/pruneRuns', { uri, keep: 1 }),
      { removed: 0, kept: 0 },
      'trusted: prune runs',
    );
    // Trusted now: the request gets past the trust check and fails on the missing model instead.
    await assert.rejects(conn.sendRequest('haqa/benchmark', { uri }), (e: Error) => !/Restricted Mode/.test(e.message));

    const r = await conn.sendRequest<{ edit?: { changes: Record<string, TextEdit[]> }; message: string }>(
      'haqa/suggestionEdit',
      { uri, knobs: { 'quantize.bits': 8 }, title: 't' },
    );
    assert.ok(r.edit, r.message);
    const after = TextDocument.applyEdits(TextDocument.create(uri, 'yaml', 1, text), r.edit.changes[uri]);
    assert.match(after, /bits: 8 # four/);
    assert.match(after, /block_size: 32/);

    const lenses = await conn.sendRequest<{ command?: { title: string } }[]>('textDocument/codeLens', {
      textDocument: { uri },
    });
    assert.deepEqual(
      lenses.map((l) => l.command?.title),
      ['▶ Benchmark', 'Tune', 'Advise'],
    );
  } finally {
    await conn.sendRequest('shutdown').catch(() => {});
    await conn.sendNotification('exit').catch(() => {});
    proc.kill();
  }
});
