// Engine benchmark (not a test): RTN 4-bit quantization throughput and peak memory on MatMul-chain
// models with external data, and `inspect` time and memory on the largest. Each measurement runs in a
// child process so its peak RSS is its own.
//
//   node --import tsx bench/engine.ts [--quick] [--sizes 100MB,400MB,1GB,4GB] [--reps 3] [--dir D] [--keep] [--json out.json]
//
// Each size is quantized `--reps` times (a fresh process each time) and inspected 5 times; figures are
// medians with their min–max.
// Goals (issue #4): ≥ 150 MB/s of fp32 weights, peak RSS < 1.5 GB for a 4 GB model, inspect < 1 s
// with < 200 MB extra memory. Models go to a temporary folder (removed unless --keep).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { DataType, ExternalDataWriter, onnx } from '../server/src/model/onnx';
import { node, valueInfo, model } from '../server/src/model/build';
import { resolveRecipe, parseBytes } from '../server/src/config/recipe';
import { compressModel } from '../server/src/compress/pipeline';
import { inspectModel } from '../server/src/model/graph';
import { quantile } from '../server/src/bench/stats';

const HIDDEN = 2048;

/** A chain x → MatMul → MatMul → … of [HIDDEN, HIDDEN] weights, written tensor by tensor. */
async function generate(file: string, bytes: number): Promise<{ layers: number; weightBytes: number }> {
  const layerBytes = HIDDEN * HIDDEN * 4;
  const layers = Math.max(1, Math.round(bytes / layerBytes));
  const w = new ExternalDataWriter(file);
  const inits: onnx.ITensorProto[] = [];
  const nodes: onnx.NodeProto[] = [];
  let x = 'x';
  let s = 0x2545f491;
  const chunk = new Float32Array(1 << 20);
  for (let i = 0; i < layers; i++) {
    const name = `model.layers.${i}.mlp.down_proj.weight`;
    function* chunks() {
      for (let done = 0; done < HIDDEN * HIDDEN; done += chunk.length) {
        for (let j = 0; j < chunk.length; j++) {
          s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
          chunk[j] = (s | 0) * 2.3283064e-12; // uniform in ±0.005
        }
        yield chunk;
      }
    }
    inits.push(await w.appendChunks(name, DataType.FLOAT, [HIDDEN, HIDDEN], chunks()));
    const y = i === layers - 1 ? 'y' : `/model/layers.${i}/mlp/down_proj/MatMul_output_0`;
    nodes.push(node('MatMul', [x, name], [y], { name: `/model/layers.${i}/mlp/down_proj/MatMul` }));
    x = y;
  }
  await w.commit(model({
    name: 'chain', node: nodes, initializer: inits,
    input: [valueInfo('x', DataType.FLOAT, ['batch', HIDDEN])], output: [valueInfo('y', DataType.FLOAT, ['batch', HIDDEN])],
  }));
  return { layers, weightBytes: layers * layerBytes };
}

// ---------------------------------------------------------------- child side

async function child(kind: string, file: string, out?: string): Promise<void> {
  if (kind === 'quantize') {
    const recipe = resolveRecipe({ model: path.basename(file), quantize: { bits: 4, block_size: 32, symmetric: true } }, path.join(path.dirname(file), 'haqa.yaml'));
    const c0 = process.cpuUsage();
    const res = await compressModel(recipe, { out: out! });
    const cpu = process.cpuUsage(c0);
    process.stdout.write(JSON.stringify({
      seconds: res.seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, bytes: res.bytes, maxRssKb: process.resourceUsage().maxRSS,
    }) + '\n');
  } else {
    const base = process.memoryUsage().rss;
    const baseMax = process.resourceUsage().maxRSS;
    const t = process.hrtime.bigint();
    const g = await inspectModel(file);
    const seconds = Number(process.hrtime.bigint() - t) / 1e9;
    process.stdout.write(JSON.stringify({
      seconds, layers: g.layers.length, extraRssBytes: process.resourceUsage().maxRSS * 1024 - Math.max(base, baseMax * 1024),
      maxRssKb: process.resourceUsage().maxRSS,
    }) + '\n');
  }
}

/** Median, min and max of a few repetitions. */
function spread(xs: number[]): { median: number; min: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { median: quantile(s, 0.5), min: s[0], max: s[s.length - 1] };
}

function runChild(args: string[]): Record<string, number> {
  const out = execFileSync(process.execPath, ['--import', 'tsx', __filename, '--child', ...args], { encoding: 'utf8', maxBuffer: 1 << 20 });
  return JSON.parse(out.trim().split('\n').pop()!);
}

// ---------------------------------------------------------------- parent

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean' }, sizes: { type: 'string' }, dir: { type: 'string' }, keep: { type: 'boolean' },
      json: { type: 'string' }, child: { type: 'string' }, reps: { type: 'string' },
    },
    allowPositionals: true, strict: false,
  });
  if (values.child) {
    const rest = process.argv.slice(process.argv.indexOf('--child') + 2);
    await child(String(values.child), rest[0], rest[1]);
    return;
  }
  let sizes = (typeof values.sizes === 'string' ? values.sizes : '100MB,400MB,1GB,4GB').split(',').map((s) => parseBytes(s.trim()));
  if (values.quick) sizes = sizes.filter((s) => s <= parseBytes('400MB'));
  const reps = Math.max(1, Number(typeof values.reps === 'string' ? values.reps : 3));
  const dir = typeof values.dir === 'string' ? values.dir : fs.mkdtempSync(path.join(os.tmpdir(), 'haqa-bench-'));
  fs.mkdirSync(dir, { recursive: true });
  const results: Record<string, unknown>[] = [];
  let largest = '';
  try {
    for (const size of sizes) {
      const file = path.join(dir, `chain-${Math.round(size / 1e6)}MB.onnx`);
      const t = Date.now();
      const { layers, weightBytes } = await generate(file, size);
      console.error(`generated ${file}: ${layers} × [${HIDDEN}, ${HIDDEN}] fp32, ${(weightBytes / 1e6).toFixed(0)} MB in ${((Date.now() - t) / 1000).toFixed(1)} s`);
      const out = path.join(dir, `chain-${Math.round(size / 1e6)}MB.q4.onnx`);
      const runs = Array.from({ length: reps }, () => runChild(['quantize', file, out]));
      const seconds = spread(runs.map((r) => r.seconds));
      const cpuSeconds = spread(runs.map((r) => r.cpuSeconds));
      const peak = spread(runs.map((r) => r.maxRssKb / 1024));
      const row = {
        kind: 'rtn4', weightMB: weightBytes / 1e6, layers, reps, seconds: seconds.median, secondsMin: seconds.min, secondsMax: seconds.max,
        mbPerS: weightBytes / 1e6 / seconds.median,
        // Per CPU-second: what the code does on an idle core, robust to other jobs sharing the machine.
        cpuSeconds: cpuSeconds.median, mbPerCpuS: weightBytes / 1e6 / cpuSeconds.median, loadAvg: os.loadavg()[0],
        peakRssMB: peak.median, peakRssMaxMB: peak.max, outMB: runs[0].bytes / 1e6,
      };
      results.push(row);
      console.error(`  RTN 4-bit b32 (median of ${reps}): ${row.seconds.toFixed(2)} s (${row.secondsMin.toFixed(2)}–${row.secondsMax.toFixed(2)}), ${row.mbPerS.toFixed(0)} MB/s (${row.mbPerCpuS.toFixed(0)} MB per CPU-s, load ${row.loadAvg.toFixed(1)}), peak RSS ${row.peakRssMB.toFixed(0)} MB, output ${row.outMB.toFixed(0)} MB`);
      fs.rmSync(out, { force: true });
      fs.rmSync(out + '.data', { force: true });
      if (largest && !values.keep) {
        fs.rmSync(largest, { force: true });
        fs.rmSync(largest + '.data', { force: true });
      }
      largest = file;
    }
    if (largest) {
      const runs = Array.from({ length: 5 }, () => runChild(['inspect', largest]));
      const seconds = spread(runs.map((r) => r.seconds));
      const extra = spread(runs.map((r) => r.extraRssBytes / 1e6));
      const row = {
        kind: 'inspect', model: path.basename(largest), reps: runs.length, seconds: seconds.median, secondsMin: seconds.min, secondsMax: seconds.max,
        extraMB: extra.median, extraMaxMB: extra.max, peakRssMB: spread(runs.map((r) => r.maxRssKb / 1024)).median,
      };
      results.push(row);
      console.error(`inspect ${row.model}: ${(row.seconds * 1000).toFixed(1)} ms, extra memory ${row.extraMB.toFixed(1)} MB (peak RSS ${row.peakRssMB.toFixed(0)} MB)`);
    }
  } finally {
    if (!values.keep && typeof values.dir !== 'string') fs.rmSync(dir, { recursive: true, force: true });
  }
  const goals = {
    throughput: results.filter((r) => r.kind === 'rtn4').every((r) => (r.mbPerS as number) >= 150),
    // The same goal per CPU-second: what wall time would be on an otherwise idle machine.
    throughputPerCpuSecond: results.filter((r) => r.kind === 'rtn4').every((r) => (r.mbPerCpuS as number) >= 150),
    peakUnder1_5GB: results.filter((r) => r.kind === 'rtn4').every((r) => (r.peakRssMaxMB as number) < 1536),
    inspect: results.filter((r) => r.kind === 'inspect').every((r) => (r.seconds as number) < 1 && (r.extraMB as number) < 200),
  };
  const report = { machine: { cpus: os.cpus().length, node: process.version }, results, goals };
  console.log(JSON.stringify(report, null, 2));
  if (typeof values.json === 'string') fs.writeFileSync(values.json, JSON.stringify(report, null, 2));
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
