// runRecipe end to end on a small synthesized decoder (seeded random weights, the fixture's tokenizer)
// and a non-decoder MLP: figures that hang together, artifact and reference reuse, and every way a run
// can end badly — killed worker, cancellation, a hung kernel, bad input — becoming a record.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { resolveRecipe, Recipe } from '../../server/src/config/recipe';
import { synthesizeDecoder } from '../../server/src/model/synth';
import { architectureFromConfig } from '../../server/src/config/hfConfig';
import { writeModel, DataType } from '../../server/src/model/onnx';
import { model, node, valueInfo } from '../../server/src/model/build';
import { runRecipe, RunOptions } from '../../server/src/bench/run';
import { RunStore } from '../../server/src/bench/store';
import { Tokenizer } from '../../server/src/model/tokenizer';
import { DecoderSession } from '../../server/src/model/decoder';
import { perplexity } from '../../server/src/bench/perplexity';
import { tempDir, tinyMlpModel } from '../helpers/tinyModel';

// Lets the worker honour `debug.hangAt` (a stand-in for a kernel that never returns).
process.env.HAQA_BENCH_TEST_HOOKS = '1';

const ROOT = path.resolve(__dirname, '../..');
const TOKENIZER = path.join(ROOT, 'examples/tiny-llama/tokenizer.json');
const EVAL_SRC = path.join(ROOT, 'examples/tiny-llama/data/eval.txt');
const haveFixtureData = fs.existsSync(TOKENIZER) && fs.existsSync(EVAL_SRC);

const ws = tempDir('haqa-bench-run-');
// Inside the workspace: the path policy (util/paths.ts) reads no text outside it.
const EVAL = path.join(ws, 'eval.txt');
if (haveFixtureData) fs.copyFileSync(EVAL_SRC, EVAL);
const CONFIG = {
  model_type: 'llama',
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 1024,
  tie_word_embeddings: false,
  max_position_embeddings: 256,
};

let decoderReady: Promise<void> | undefined;
function decoder(): Promise<void> {
  decoderReady ??= (async () => {
    const dir = path.join(ws, 'dec');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(CONFIG));
    fs.copyFileSync(TOKENIZER, path.join(dir, 'tokenizer.json'));
    await synthesizeDecoder(architectureFromConfig(CONFIG), { out: path.join(dir, 'model.onnx'), seed: 3 });
  })();
  return decoderReady;
}

/** A recipe for the synthesized decoder, with a short workload and two evaluation windows. */
function decRecipe(extra: Record<string, unknown> = {}): Recipe {
  return resolveRecipe(
    {
      model: 'dec/model.onnx',
      target: { threads: 1 },
      objective: { workload: { prompt_length: 16, decode_tokens: 4, batch: 1 } },
      evaluation: { text: EVAL, window: 32, max_windows: 2 },
      ...extra,
    },
    path.join(ws, 'haqa.yaml'),
  );
}

const quick: RunOptions = { quick: true };

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test(
  'fp32 and 4-bit runs of a decoder: consistent figures, artifact and reference reused on repeat',
  { skip: !haveFixtureData && 'examples/tiny-llama tokenizer/eval text missing' },
  async () => {
    await decoder();
    const fp = await runRecipe(decRecipe(), { ...quick });
    assert.equal(fp.status, 'ok', fp.error?.message);
    const m = fp.metrics;
    assert.ok(m.prefill_ms && m.decode_ms_per_token && m.throughput_tok_s);
    assert.ok(
      m.prefill_ms.n >= 5 && m.prefill_ms.p10 <= m.prefill_ms.median && m.prefill_ms.median <= m.prefill_ms.p90,
    );
    // One 16-token prefill costs more than one single-token step with the cache.
    assert.ok(
      m.decode_ms_per_token.median < m.prefill_ms.median,
      `decode ${m.decode_ms_per_token.median} vs prefill ${m.prefill_ms.median}`,
    );
    assert.ok(m.ppl! > 1 && m.ppl! < 1024 * 4, `ppl ${m.ppl}`); // random weights: near the vocabulary size
    assert.equal(m.eval_windows, 2);
    assert.equal(m.eval_tokens, 2 * 31);
    assert.equal(fp.artifact, fp.source_model, 'fp32 measures the source model itself');
    // The same perplexity as HAQA's one definition (bench/perplexity.ts) over the same tokens.
    const ids = Tokenizer.fromFile(TOKENIZER).encode(fs.readFileSync(EVAL, 'utf8'));
    const session = await DecoderSession.create(path.join(ws, 'dec/model.onnx'), { config: CONFIG });
    const ref = await perplexity(session, ids.slice(0, 2 * 32), 32);
    await session.release();
    assert.equal(ref.tokens, m.eval_tokens);
    assert.ok(Math.abs(ref.ppl - m.ppl!) / ref.ppl < 1e-4, `ppl ${m.ppl} vs perplexity() ${ref.ppl}`);
    assert.ok(m.peak_rss_bytes! > 10e6);
    assert.equal(m.model_bytes, fs.statSync(fp.source_model).size);

    const q4 = decRecipe({ quantize: { bits: 4, block_size: 32, accuracy_level: 4 } });
    const stages: string[] = [];
    const a = await runRecipe(q4, { ...quick, baseline: true, onProgress: (p) => stages.push(p.stage) });
    assert.equal(a.status, 'ok', a.error?.message);
    assert.ok(stages.includes('compress') && stages.includes('reference') && stages.includes('baseline'));
    assert.equal(a.artifact_reused, false);
    assert.ok(a.metrics.model_bytes! < 0.5 * fp.metrics.model_bytes!, 'a 4-bit model is much smaller');
    assert.equal(a.metrics.ppl_fp32, fp.metrics.ppl, 'the fp32 reference scores the same windows');
    assert.ok(a.metrics.kl! > 0 && a.metrics.kl! < 0.1, `kl ${a.metrics.kl}`);
    assert.ok(a.metrics.top1! > 0.3 && a.metrics.top1! <= 1);
    assert.ok(a.baseline?.decode_ms_per_token && a.speedups?.decode! > 0);
    // Interleaved: one fp32/model ratio per repetition pair.
    assert.equal(a.speedups?.paired?.decode?.n, a.metrics.decode_ms_per_token!.n);
    assert.equal(a.baseline.decode_ms_per_token.n, a.metrics.decode_ms_per_token!.n);
    assert.ok(Math.abs(a.speedups!.size! - fp.metrics.model_bytes! / a.metrics.model_bytes!) < 1e-9);
    assert.notEqual(a.model_hash, fp.model_hash);
    assert.notEqual(a.recipe_hash, fp.recipe_hash);

    // The same configuration again: nothing rebuilt, the fp32 reference read from the store.
    const artifactMeta = fs.statSync(path.join(path.dirname(a.artifact!), 'meta.json')).mtimeMs;
    const stages2: string[] = [];
    const b = await runRecipe(q4, { ...quick, onProgress: (p) => stages2.push(p.stage) });
    assert.equal(b.status, 'ok', b.error?.message);
    assert.equal(b.artifact_reused, true);
    assert.equal(b.artifact, a.artifact);
    assert.equal(b.model_hash, a.model_hash);
    assert.equal(fs.statSync(path.join(path.dirname(a.artifact!), 'meta.json')).mtimeMs, artifactMeta);
    assert.ok(!stages2.includes('reference'), 'reference not recomputed');
    assert.equal(b.metrics.ppl, a.metrics.ppl, 'same model, same windows, same perplexity');
    assert.equal(b.metrics.kl, a.metrics.kl);

    const { records } = new RunStore(ws).read();
    assert.deepEqual(
      records.slice(-3).map((r) => r.id),
      [fp.id, a.id, b.id],
    );
  },
);

test(
  'speed-only and accuracy-only runs measure just that',
  { skip: !haveFixtureData && 'examples/tiny-llama tokenizer/eval text missing' },
  async () => {
    await decoder();
    const q8 = decRecipe({ quantize: { bits: 8, block_size: 32, accuracy_level: 4 } });
    const stages: string[] = [];
    const speed = await runRecipe(q8, {
      ...quick,
      measure: { accuracy: false },
      onProgress: (p) => stages.push(p.stage),
    });
    assert.equal(speed.status, 'ok', speed.error?.message);
    assert.ok(speed.metrics.decode_ms_per_token && speed.metrics.prefill_ms);
    assert.equal(speed.metrics.ppl, undefined);
    assert.ok(!stages.includes('reference') && !stages.includes('accuracy'));
    const noText = await runRecipe(decRecipe({ quantize: { bits: 4 }, evaluation: {} }), { ...quick });
    assert.equal(noText.status, 'ok', noText.error?.message);
    assert.ok(noText.metrics.decode_ms_per_token);
    assert.equal(noText.metrics.ppl, undefined, 'no evaluation text: no perplexity, and no failure');
    // Batch 2: both rows decode with their own cache rows.
    const b2 = await runRecipe(
      decRecipe({ objective: { workload: { prompt_length: 16, decode_tokens: 4, batch: 2 } } }),
      { ...quick, measure: { accuracy: false } },
    );
    assert.equal(b2.status, 'ok', b2.error?.message);
    assert.ok(b2.metrics.throughput_tok_s! > 0 && b2.metrics.decode_ms_per_token!.n >= 5);
    const acc = await runRecipe(q8, { ...quick, measure: { latency: false } });
    assert.equal(acc.status, 'ok', acc.error?.message);
    assert.equal(acc.artifact_reused, true);
    assert.equal(acc.metrics.decode_ms_per_token, undefined);
    // Runtime knobs don't change the model's bytes: the artifact is shared, the recipe hash is not.
    const threads = await runRecipe(
      decRecipe({ quantize: { bits: 8, block_size: 32, accuracy_level: 4 }, runtime: { intra_op_threads: 2 } }),
      { ...quick, measure: { latency: false } },
    );
    assert.equal(threads.artifact, acc.artifact);
    assert.equal(threads.artifact_reused, true);
    assert.notEqual(threads.recipe_hash, acc.recipe_hash);
    const gptq = await runRecipe(decRecipe({ quantize: { method: 'gptq' }, calibration: { text: 'nope.txt' } }), {
      ...quick,
    });
    assert.equal(gptq.status, 'error');
    assert.deepEqual(gptq.error?.recipe_path, ['calibration', 'text']);
    assert.ok(acc.metrics.ppl! > 1 && acc.metrics.kl! >= 0 && acc.metrics.top1! > 0.5);
  },
);

test('a worker killed with SIGKILL mid-run becomes an error record; the store stays readable', async () => {
  await decoder();
  let killed = 0;
  const r = await runRecipe(decRecipe(), {
    ...quick,
    onWorker: (pid) => {
      killed = pid;
    },
    onProgress: (p) => {
      if (p.stage === 'latency' && killed && alive(killed)) process.kill(killed, 'SIGKILL');
    },
  });
  assert.equal(r.status, 'error');
  assert.equal(r.error?.stage, 'latency');
  assert.match(r.error!.message, /SIGKILL/);
  const { records, skipped } = new RunStore(ws).read();
  assert.equal(skipped.length, 0);
  assert.equal(records.at(-1)?.id, r.id);
  assert.equal(records.at(-1)?.status, 'error');
});

test('cancellation stops the worker and records a cancelled run', async () => {
  await decoder();
  const ac = new AbortController();
  let pid = 0;
  const r = await runRecipe(decRecipe(), {
    ...quick,
    signal: ac.signal,
    debug: { hangAt: 'latency' },
    onWorker: (p) => {
      pid = p;
    },
    onProgress: (p) => {
      if (p.stage === 'latency') ac.abort();
    },
  });
  assert.equal(r.status, 'cancelled');
  assert.ok(pid > 0);
  assert.equal(alive(pid), false, 'worker is gone when runRecipe returns');
});

test('cancelling during compression leaves no artifact, whole or half', async () => {
  await decoder();
  const dir = path.join(ws, 'cancel-compress');
  fs.mkdirSync(dir, { recursive: true });
  const ac = new AbortController();
  let pid = 0;
  const r = await runRecipe(decRecipe({ quantize: { bits: 4, block_size: 64 } }), {
    ...quick,
    storeDir: dir,
    signal: ac.signal,
    debug: { hangAt: 'compress' },
    onWorker: (p) => {
      pid = p;
    },
    onProgress: (p) => {
      if (p.stage === 'compress' && pid) ac.abort();
    },
  });
  assert.equal(r.status, 'cancelled');
  assert.equal(r.error?.stage, 'compress');
  assert.equal(alive(pid), false);
  assert.deepEqual(fs.readdirSync(new RunStore(dir).artifactsDir), [], 'temporary build folder removed');
  assert.equal(new RunStore(dir).read().records.at(-1)?.status, 'cancelled');
});

test('a hung worker that ignores SIGTERM is stopped by the timeout', async () => {
  await decoder();
  let pid = 0;
  const t0 = Date.now();
  const r = await runRecipe(decRecipe(), {
    ...quick,
    timeoutMs: 4000,
    debug: { hangAt: 'latency', ignoreSigterm: true },
    onWorker: (p) => {
      pid = p;
    },
  });
  assert.equal(r.status, 'timeout', r.error?.message);
  assert.equal(r.error?.stage, 'latency');
  assert.equal(alive(pid), false);
  assert.ok(Date.now() - t0 < 60_000, 'returned, rather than waiting on the hang');
});

test('a killed parent (the language server) takes its worker with it', async () => {
  await decoder();
  const runTs = path.join(ROOT, 'server/src/bench/run.ts');
  const recipeTs = path.join(ROOT, 'server/src/config/recipe.ts');
  const code =
    `
    const { runRecipe } = require(${JSON.stringify(runTs)});
    const { resolveRecipe } = ` +
    `require(${JSON.stringify(recipeTs)});
    const r = resolveRecipe({ model: 'dec/model.onnx', ` +
    `target: { threads: 1 } }, ${JSON.stringify(path.join(ws, 'haqa.yaml'))});
    runRecipe(r, { ` +
    `quick: true, debug: { hangAt: 'latency' }, onProgress: (p) => { if (p.stage === 'latency') ` +
    `console.log('PID ' + workerPid); }, onWorker: (pid) => { workerPid = pid; } });
    let workerPid = 0;`;
  const parent = spawn(process.execPath, ['--import', 'tsx', '-e', code], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env },
  });
  const workerPid = await new Promise<number>((resolve) => {
    parent.stdout.on('data', (b: Buffer) => {
      const m = /PID (\d+)/.exec(b.toString());
      if (m) resolve(Number(m[1]));
    });
  });
  assert.ok(alive(workerPid));
  parent.kill('SIGKILL');
  for (let i = 0; i < 100 && alive(workerPid); i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(alive(workerPid), false, 'the worker exits when its parent is gone');
  assert.equal(new RunStore(ws).read().skipped.length, 0);
});

test('bad input gives error records naming the file', async () => {
  await decoder();
  const dir = path.join(ws, 'bad');
  fs.mkdirSync(dir, { recursive: true });
  const recipe = (doc: Record<string, unknown>) =>
    resolveRecipe(
      { target: { threads: 1 }, objective: { workload: { prompt_length: 8, decode_tokens: 2, batch: 1 } }, ...doc },
      path.join(dir, 'haqa.yaml'),
    );
  const store = { ...quick, storeDir: dir, roots: [ws] }; // the workspace holds dec/ and bad/

  const missing = await runRecipe(recipe({ model: 'nope.onnx' }), store);
  assert.equal(missing.status, 'error');
  assert.equal(missing.error?.where, path.join(dir, 'nope.onnx'));
  assert.match(missing.error!.message, /model file not found/);
  assert.deepEqual(missing.error?.recipe_path, ['model'], 'where a diagnostic on the recipe goes');

  fs.writeFileSync(path.join(dir, 'junk.onnx'), Buffer.from('this is not a protobuf at all'));
  const junk = await runRecipe(recipe({ model: 'junk.onnx' }), store);
  assert.equal(junk.status, 'error');
  assert.equal(junk.error?.stage, 'load');
  assert.match(junk.error!.message, /junk\.onnx/);
  assert.deepEqual(junk.error?.recipe_path, ['model']);

  // input_ids, but no KV cache: not the decoder interface.
  await writeModel(
    model({
      name: 'ids',
      node: [node('Cast', ['input_ids'], ['logits'], { attrs: { to: DataType.FLOAT } })],
      input: [valueInfo('input_ids', DataType.INT64, ['batch', 'seq'])],
      output: [valueInfo('logits', DataType.FLOAT, ['batch', 'seq'])],
      initializer: [],
    }),
    path.join(dir, 'ids.onnx'),
  );
  const sig = await runRecipe(recipe({ model: 'ids.onnx' }), store);
  assert.equal(sig.status, 'error');
  assert.equal(sig.error?.where, path.join(dir, 'ids.onnx'));
  assert.match(sig.error!.message, /decoder interface/);
  assert.deepEqual(sig.error?.recipe_path, ['model']);

  const noText = await runRecipe(recipe({ model: '../dec/model.onnx', evaluation: { text: 'missing.txt' } }), store);
  assert.equal(noText.status, 'error');
  assert.equal(noText.error?.where, path.join(dir, 'missing.txt'));
  assert.match(noText.error!.message, /evaluation text not found/);
  assert.deepEqual(noText.error?.recipe_path, ['evaluation', 'text']);

  fs.writeFileSync(path.join(dir, 'model.onnx'), fs.readFileSync(path.join(ws, 'dec/model.onnx')));
  const noTok = await runRecipe(recipe({ model: 'model.onnx', evaluation: { text: EVAL } }), store);
  assert.equal(noTok.status, 'error');
  assert.match(noTok.error!.message, /tokenizer not found/);

  const cuda = await runRecipe(recipe({ model: '../dec/model.onnx', target: { provider: 'cuda', threads: 1 } }), store);
  assert.equal(cuda.status, 'error');
  assert.match(cuda.error!.message, /provider 'cuda'/);
  assert.deepEqual(cuda.error?.recipe_path, ['target', 'provider']);

  const { records } = new RunStore(dir).read();
  assert.equal(records.length, 6);
  assert.ok(records.every((r) => r.status === 'error' && r.error?.message));
});

test('a non-decoder model: inference latency, and output agreement with fp32 once compressed', async () => {
  const dir = path.join(ws, 'mlp');
  fs.mkdirSync(dir, { recursive: true });
  await writeModel(tinyMlpModel({ hidden: 64, intermediate: 128, layers: 2 }), path.join(dir, 'model.onnx'));
  const recipe = (doc: Record<string, unknown>) =>
    resolveRecipe(
      {
        model: 'model.onnx',
        target: { threads: 1 },
        objective: { workload: { prompt_length: 8, decode_tokens: 2, batch: 1 } },
        ...doc,
      },
      path.join(dir, 'haqa.yaml'),
    );
  const fp = await runRecipe(recipe({}), { ...quick, storeDir: dir });
  assert.equal(fp.status, 'ok', fp.error?.message);
  assert.ok(fp.metrics.inference_ms && fp.metrics.inference_ms.median > 0);
  assert.equal(fp.metrics.decode_ms_per_token, undefined);
  const q = await runRecipe(recipe({ quantize: { bits: 4, block_size: 32 } }), { ...quick, storeDir: dir });
  assert.equal(q.status, 'ok', q.error?.message);
  const e = q.metrics.output_rel_rmse!;
  assert.ok(e > 0 && e < 0.2, `relative output error ${e}`);
});
