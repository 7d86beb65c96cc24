// End-to-end benchmark (not a test): decode ms/token, prefill ms and tokens/s for
//   (a) the fp32 model,
//   (b) the default 4-bit conversion as onnxruntime's own quantizer makes it (MatMulNBits with
//       MatMul4BitsQuantizer's default arguments: ORT_DEFAULT_4BIT),
//   (c) the best configuration the offline tuner finds on this machine,
// on the trained fixture and on a synthetic model of Llama-3.2-1B's shape; with perplexity (fixture) and
// KL / top-1 agreement against fp32, ratios against (a) and (b), and each decode time as a multiple of
// the memory-bandwidth floor measured in the same run.
//
//   node --import tsx bench/e2e.ts [--quick] [--json out.json] [--models fixture,llama-1b] [--trials N]
//
// Quick mode: the 1B-shaped model keeps 4 of its 16 layers (labelled as such), fewer tuner trials, and
// every variant is timed with the quick repetition policy (the full run is the figure of record).
// Every figure comes from runRecipe (bench/run.ts): medians with p10/p90 over repetitions in a worker.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { runRecipe } from '../server/src/bench/run';
import type { RunRecord } from '../server/src/bench/record';
import { fp32Recipe } from '../server/src/bench/record';
import { hardwareFingerprint, measureBandwidth } from '../server/src/bench/hardware';
import { applyKnobs } from '../server/src/config/plan';
import { ORT_DEFAULT_4BIT } from '../server/src/compress/quant';
import { loadSetting } from '../server/src/agent/setting';
import { tune } from '../server/src/agent/session';
import type { Config } from '../server/src/agent/types';
import { bytesReadPerToken, FIXTURE, llama1b, LLAMA_1B_SPACE } from './models';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    json: { type: 'string' },
    models: { type: 'string', default: 'fixture,llama-1b' },
    trials: { type: 'string' },
    dir: { type: 'string' },
  },
});
const QUICK = values.quick!;
const WORK = values.dir ? path.resolve(values.dir) : fs.mkdtempSync(path.join(os.tmpdir(), 'haqa-bench-e2e-'));

function log(msg: string): void {
  process.stderr.write(`[e2e ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

interface Variant {
  label: string;
  config?: Config;
  record: RunRecord;
  bytesPerToken: number;
}

interface ModelResult {
  name: string;
  description: string;
  recipe: string;
  variants: Variant[];
  tuning: { trials: number; seconds: number; outcome: string; best?: Config; feasibleTrials: number };
  floorGBps: number;
}

/** The recipe the three variants share: same workload, evaluation and accuracy budget. */
function writeRecipe(dir: string, model: string, extra: Record<string, unknown>): string {
  const file = path.join(dir, 'haqa.yaml');
  fs.writeFileSync(file, stringify({ version: 1, model, ...extra }));
  return file;
}

async function prepareFixture(): Promise<{ recipe: string; description: string }> {
  const dir = path.join(WORK, 'fixture');
  fs.mkdirSync(dir, { recursive: true });
  // Texts too: a recipe reads no file outside its folder (server/src/util/paths.ts).
  for (const f of ['model.onnx', 'config.json', 'tokenizer.json', 'data/eval.txt', 'data/calib.txt']) {
    fs.copyFileSync(path.join(FIXTURE, f), path.join(dir, path.basename(f)));
  }
  const recipe = writeRecipe(dir, './model.onnx', {
    target: { provider: 'cpu', threads: os.availableParallelism() },
    objective: {
      metric: 'decode_latency',
      workload: { prompt_length: 64, decode_tokens: 32, batch: 1 },
      accuracy: { max_ppl_increase: '5%' },
    },
    evaluation: { text: './eval.txt', window: 128, ...(QUICK ? { max_windows: 8 } : {}) },
    calibration: { text: './calib.txt', samples: 8, seq_len: 64 },
    search: {
      trials: Number(values.trials ?? (QUICK ? 8 : 16)),
      seed: 0,
      space: {
        // 32 keeps fp32: a model this small is cache-resident, so quantizing may not pay at all.
        'quantize.bits': [4, 8, 32],
        'quantize.block_size': [32, 64, 128, 256],
        'quantize.accuracy_level': [0, 4],
        'quantize.symmetric': [true, false],
        'quantize.bits@lm_head': [4, 8, 32],
      },
    },
  });
  return { recipe, description: 'trained tiny Llama fixture (examples/tiny-llama)' };
}

async function prepareLlama1b(): Promise<{ recipe: string; description: string }> {
  const dir = path.join(WORK, 'llama-1b');
  const { layers, of } = await llama1b(dir, QUICK ? 4 : undefined, log);
  const recipe = writeRecipe(dir, './model.onnx', {
    target: { provider: 'cpu', threads: os.availableParallelism() },
    objective: {
      metric: 'decode_latency',
      workload: { prompt_length: 64, decode_tokens: 16, batch: 1 },
      accuracy: { max_ppl_increase: '5%' },
    },
    evaluation: { text: './eval.txt', window: 64, max_windows: QUICK ? 1 : 2 },
    search: {
      trials: Number(values.trials ?? (QUICK ? 4 : 8)),
      seed: 0,
      space: LLAMA_1B_SPACE,
    },
  });
  const description = QUICK
    ? `synthetic decoder of Llama-3.2-1B's shape, ${layers} of ${of} layers (quick mode)`
    : "synthetic decoder of Llama-3.2-1B's shape (all 16 layers, seeded random weights)";
  return { recipe, description };
}

async function measure(label: string, recipeFile: string, config: Config | undefined, fp32: boolean): Promise<Variant> {
  const { setting } = await loadSetting(recipeFile);
  const recipe = fp32 ? fp32Recipe(setting.recipe) : applyKnobs(fp32Recipe(setting.recipe), config ?? {});
  log(`${label}: measuring ${config ? JSON.stringify(config) : 'fp32'}`);
  // Compressed variants time the fp32 model interleaved in the same worker (baseline: true), so their
  // speedups are paired per repetition and see the same machine load; ratios between variants measured
  // in different runs would carry the drift between those runs.
  const record = await runRecipe(recipe, {
    quick: QUICK,
    baseline: !fp32,
    storeDir: path.dirname(recipeFile),
    timeoutMs: 45 * 60_000,
  });
  if (record.status !== 'ok') throw new Error(`${label} failed: ${record.error?.stage}: ${record.error?.message}`);
  const bytesPerToken = await bytesReadPerToken(record.artifact ?? recipe.model);
  log(
    `  decode ${record.metrics.decode_ms_per_token?.median?.toFixed(2)} ms/token, ` +
      `prefill ${record.metrics.prefill_ms?.median?.toFixed(1)} ` +
      `ms${record.speedups?.paired?.decode ? `, decode ${record.speedups.paired.decode.median.toFixed(2)}× vs fp32 (paired)` : ''}`,
  );
  return { label, config, record, bytesPerToken };
}

const ORT_DEFAULT: Config = {
  'quantize.bits': ORT_DEFAULT_4BIT.bits,
  'quantize.block_size': ORT_DEFAULT_4BIT.block_size,
  'quantize.symmetric': ORT_DEFAULT_4BIT.symmetric,
  'quantize.accuracy_level': ORT_DEFAULT_4BIT.accuracy_level,
  'quantize.method': ORT_DEFAULT_4BIT.method,
};

async function benchModel(
  name: string,
  prep: { recipe: string; description: string },
  floorGBps: number,
): Promise<ModelResult> {
  const fp32 = await measure(`${name} fp32`, prep.recipe, undefined, true);
  const ortDefault = await measure(`${name} ort-default-4bit`, prep.recipe, ORT_DEFAULT, false);
  const loaded = await loadSetting(prep.recipe);
  const t0 = Date.now();
  log(`${name}: tuning (offline optimizer, ${loaded.setting.recipe.search.trials} trials)`);
  const result = await tune(loaded, {
    agent: 'offline',
    trials: loaded.setting.recipe.search.trials,
    seed: 0,
    quick: true,
    onEvent: (e) => {
      if (e.type === 'trial-end')
        log(
          `  trial ${e.trial.index}: ${JSON.stringify(e.trial.config)} → ${e.trial.metrics.decode_ms_per_token?.toFixed(3)} ` +
            `ms/token ${e.trial.feasible ? 'feasible' : e.trial.violations.join('; ')}`,
        );
    },
  });
  const seconds = (Date.now() - t0) / 1000;
  const variants = [fp32, ortDefault];
  if (result.best) variants.push(await measure(`${name} tuned`, prep.recipe, result.best.config, false));
  return {
    name,
    description: prep.description,
    recipe: prep.recipe,
    variants,
    tuning: {
      trials: result.trials.length,
      seconds,
      outcome: result.outcome,
      best: result.best?.config,
      feasibleTrials: result.trials.filter((t) => t.feasible).length,
    },
    floorGBps,
  };
}

async function main(): Promise<void> {
  const hardware = hardwareFingerprint();
  log(`measuring memory bandwidth (${hardware.cores} threads)`);
  const bw = await measureBandwidth({ threads: hardware.cores });
  log(`  ${bw.gbps.toFixed(1)} GB/s`);
  const models: ModelResult[] = [];
  for (const name of values.models!.split(',')) {
    if (name === 'fixture') models.push(await benchModel(name, await prepareFixture(), bw.gbps));
    else if (name === 'llama-1b') models.push(await benchModel(name, await prepareLlama1b(), bw.gbps));
    else throw new Error(`unknown model ${name}`);
  }
  const out = { quick: QUICK, hardware, bandwidth: bw, models, work: WORK, finished: new Date().toISOString() };
  const text = JSON.stringify(out, null, 2);
  if (values.json) fs.writeFileSync(values.json, text);
  else process.stdout.write(text + '\n');
  if (!values.dir) fs.rmSync(WORK, { recursive: true, force: true });
}

main().catch((err) => {
  process.stderr.write(`bench/e2e: ${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
});
