// What the worker process does: load a model with the recipe's session options and measure it.
// Runs only inside the worker (./worker.ts), so a native crash, an out-of-memory or a hung kernel
// here ends the worker, never the language server; ./run.ts turns that into a record.
//
// Decoders (inputs `input_ids` + KV cache, docs/decoder-interface.md):
//  - prefill: one step of prompt_length tokens per row at the workload batch, empty past;
//  - decode: after that prefill, decode_tokens single-token steps (greedy), mean time per step;
//  - with a baseline, the fp32 model's generations interleaved with the model's;
//  - accuracy: ./accuracy.ts.
// Other models: one inference on seeded inputs built from the input value-infos.
// Compression jobs run the engine here too (./compress.ts).
import * as ort from 'onnxruntime-node';
import { writeFileAtomic } from '../util/atomicWrite';
import { throughputOf, type BaselineFigures, type Metrics, type RunStage } from './record';
import { enough, FULL_POLICY, QUICK_POLICY, summarize } from './stats';
import { BandwidthResult, measureBandwidth } from './hardware';
import { compressInto } from './compress';
import { BenchError, LayerFindings, MeasureJob, Progress, ReferenceJob, WorkerJob } from './protocol';
import { Loaded, loadOrt } from './onnxruntime';
import { now, seededInts, type Timed } from './runtime';
import { runtimeFor } from './runtimes';
import { pairFits, race } from './race';
import { runProfileJob } from './profile';
import { runKernelProbe } from './kernelProbe';
import { runSensitivityJob } from '../agent/sensitivity';
import {
  b64,
  decoderAccuracy,
  decoderReference,
  genericOutputs,
  outputRelRmse,
  readReference,
  ReferenceFile,
} from './accuracy';

// ---------------------------------------------------------------- loading (the runtimes: ./runtimes.ts)

export { ortSessionOptions } from './onnxruntime';

/** The model under test in the runtime the job names (a decoder), or onnxruntime's generic session. */
async function load(model: string, job: Pick<MeasureJob, 'session' | 'config' | 'llama' | 'engine'>): Promise<Loaded> {
  if (job.engine && job.engine !== 'onnxruntime') {
    const decoder = await runtimeFor(job.engine).load(model, job);
    return { kind: 'decoder', decoder, release: () => decoder.release() };
  }
  return loadOrt(model, job.session, job.config);
}

/**
 * The reference timed beside `loaded`: onnxruntime's, whatever runtime runs the model — fp32, or in a
 * duel the incumbent's model with its own session options.
 */
async function loadReference(job: MeasureJob, model: string, loaded: Loaded): Promise<Loaded> {
  const base = await loadOrt(model, job.baselineSession ?? job.session, job.config);
  if (base.kind !== loaded.kind) {
    await base.release();
    throw new BenchError(
      `the reference ${model} and the model measured differ in kind (${base.kind} vs ${loaded.kind})`,
      'baseline',
      model,
    );
  }
  return base;
}

// ---------------------------------------------------------------- helpers

async function maybeHang(job: { debug?: MeasureJob['debug'] }, stage: RunStage): Promise<void> {
  if (process.env.HAQA_BENCH_TEST_HOOKS !== '1' || job.debug?.hangAt !== stage) return;
  if (job.debug.ignoreSigterm) process.on('SIGTERM', () => undefined);
  // Like a kernel that never returns: nothing more happens until the parent kills us.
  await new Promise<void>(() => setInterval(() => undefined, 1 << 30));
}

// ---------------------------------------------------------------- latency

function genericTimed(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>): Timed {
  return {
    async sample() {
      const t0 = now();
      await session.run(feeds);
      return [now() - t0];
    },
  };
}

async function timedOf(l: Loaded, job: MeasureJob): Promise<Timed> {
  return l.kind === 'decoder'
    ? l.decoder.timed(job.workload)
    : genericTimed(l.session, genericInputs(l.session, job.model, job.workload).feeds);
}

function latencyMetrics(kind: Loaded['kind'], series: number[][], workload: MeasureJob['workload']): Metrics {
  if (kind === 'generic') return { inference_ms: summarize(series[0]) };
  const p = summarize(series[0]);
  const d = summarize(series[1]);
  return { prefill_ms: p, decode_ms_per_token: d, throughput_tok_s: throughputOf(workload, p.median, d.median) };
}

/**
 * Times the model, and the fp32 baseline when the job names one, in the same process with their
 * repetitions interleaved (A B A B ...): on a shared machine load drifts over seconds, and interleaving
 * lets both see the same drift, so their ratio is the figure to trust. Repeats until every series'
 * median is known within the policy's interval, or a cap is hit.
 * The model's peak RSS is read after its warm-up, before the baseline is loaded.
 */
async function measureLatency(
  job: MeasureJob,
  loaded: Loaded,
  progress: Progress,
): Promise<{ metrics: Metrics; baseline?: BaselineFigures }> {
  const policy = job.quick ? QUICK_POLICY : FULL_POLICY;
  const warmups = job.quick ? 1 : 2;
  const subjects: { kind: Loaded['kind']; timed: Timed; series: number[][] }[] = [];
  const add = async (l: Loaded, what: string) => {
    const timed = await timedOf(l, job);
    for (let i = 0; i < warmups; i++) {
      progress('latency', `warm-up ${i + 1}/${warmups}${what}`);
      await timed.sample();
    }
    subjects.push({ kind: l.kind, timed, series: l.kind === 'decoder' ? [[], []] : [[]] });
  };
  await add(loaded, '');
  const rss = peak();
  if (job.race) return raceLatency(job, loaded, subjects[0], rss, progress);
  let base: Loaded | undefined;
  try {
    if (job.baseline) {
      progress('baseline', `loading the fp32 baseline ${job.baseline}`);
      base = await loadReference(job, job.baseline, loaded);
      await add(base, ' (fp32)');
    }
    await maybeHang(job, 'latency');
    const start = now();
    let reps = 0;
    while (
      !enough(
        subjects.flatMap((s) => s.series),
        policy,
        now() - start,
      )
    ) {
      for (const s of subjects) {
        const v = await s.timed.sample();
        v.forEach((x, i) => s.series[i].push(x));
      }
      reps++;
      progress('latency', `repetition ${reps}`, Math.min(1, reps / policy.maxReps));
    }
  } finally {
    await base?.release();
  }
  const [me, fp] = subjects;
  let baseline: BaselineFigures | undefined;
  if (fp) {
    // Samples i of both were taken back to back: their ratio cancels the load both saw.
    const ratios = (k: number) => summarize(fp.series[k].map((b, i) => b / me.series[k][i]));
    baseline = {
      ...latencyMetrics(fp.kind, fp.series, job.workload),
      paired: me.kind === 'decoder' ? { prefill: ratios(0), decode: ratios(1) } : { inference: ratios(0) },
    };
  }
  return { metrics: { ...latencyMetrics(me.kind, me.series, job.workload), ...rss }, baseline };
}

/**
 * The tuner's measurement (./race.ts): the contender raced against the fp32 reference in ABBA order,
 * or alone (unpaired, noted) when the two do not fit in memory or the reference cannot be loaded.
 */
async function raceLatency(
  job: MeasureJob,
  loaded: Loaded,
  me: { timed: Timed },
  rss: { peak_rss_bytes: number },
  progress: Progress,
): Promise<{ metrics: Metrics; baseline?: BaselineFigures }> {
  const settings = job.race!;
  let base: Loaded | undefined;
  let reference: Timed | undefined;
  const who = job.baselineLabel ?? 'the fp32 reference';
  let note: string | undefined = job.baseline
    ? pairFits(job.model, job.baseline, settings.memoryBytes, who)
    : 'unpaired: no reference model';
  try {
    if (!note && job.baseline) {
      progress('baseline', `loading ${who} ${job.baseline}`);
      try {
        base = await loadReference(job, job.baseline, loaded);
        reference = await timedOf(base, job);
        await reference.sample(); // warm-up
      } catch (err) {
        await base?.release();
        base = undefined;
        reference = undefined;
        note = `unpaired: ${who} could not be loaded beside the contender (${(err as Error).message})`;
      }
    }
    await maybeHang(job, 'latency');
    const out = await race({
      settings,
      kind: loaded.kind,
      contender: me.timed,
      reference,
      note,
      onPair: (n, f) =>
        progress(
          'latency',
          `pair ${n}: ${f.ratio.toFixed(3)}× ${job.baselineLabel ?? 'fp32'} time [${f.lo.toFixed(3)}, ${f.hi.toFixed(3)}]`,
        ),
    });
    const metrics = { ...latencyMetrics(loaded.kind, out.samples, job.workload), ...rss };
    const baseline: BaselineFigures = { race: out.result };
    if (reference) Object.assign(baseline, latencyMetrics(loaded.kind, out.referenceSamples, job.workload));
    return { metrics, baseline };
  } finally {
    await base?.release();
  }
}

interface GenericInputs {
  feeds: Record<string, ort.Tensor>;
}

function genericInputs(session: ort.InferenceSession, model: string, workload: MeasureJob['workload']): GenericInputs {
  const feeds: Record<string, ort.Tensor> = {};
  session.inputMetadata.forEach((m, idx) => {
    if (!m.isTensor)
      throw new BenchError(`${model}: input '${m.name}' is not a tensor; HAQA can only feed tensors`, 'load', model);
    const dims = m.shape.map((d) => {
      if (typeof d === 'number' && d > 0) return d;
      const name = String(d).toLowerCase();
      if (/batch/.test(name)) return workload.batch;
      if (/seq|length|token|time/.test(name)) return workload.prompt_length;
      return 1;
    });
    const n = dims.reduce((a, b) => a * b, 1);
    const ints = seededInts(n, 1 << 16, 99 + idx);
    switch (m.type) {
      case 'float32':
        feeds[m.name] = new ort.Tensor(
          'float32',
          Float32Array.from(ints, (v) => v / (1 << 15) - 1),
          dims,
        );
        break;
      case 'int64':
        feeds[m.name] = new ort.Tensor(
          'int64',
          BigInt64Array.from(ints, (v) => BigInt(v % 100)),
          dims,
        );
        break;
      case 'int32':
        feeds[m.name] = new ort.Tensor(
          'int32',
          Int32Array.from(ints, (v) => v % 100),
          dims,
        );
        break;
      case 'bool':
        feeds[m.name] = new ort.Tensor(
          'bool',
          Uint8Array.from(ints, (v) => v & 1),
          dims,
        );
        break;
      default:
        throw new BenchError(
          `${model}: input '${m.name}' has type ${m.type}; seeded inputs exist for float32, int64, int32 and bool`,
          'load',
          model,
        );
    }
  });
  return { feeds };
}

// ---------------------------------------------------------------- the job

export async function runJob(
  job: WorkerJob,
  progress: Progress,
): Promise<{
  metrics: Metrics;
  baseline?: BaselineFigures;
  bandwidth?: BandwidthResult;
  artifact?: Record<string, unknown>;
  findings?: LayerFindings;
}> {
  if (job.kind === 'profile') return { metrics: {}, findings: { profile: await runProfileJob(job, progress) } };
  if (job.kind === 'kernel-probe') return { metrics: {}, findings: { kernels: await runKernelProbe(job, progress) } };
  if (job.kind === 'sensitivity')
    return { metrics: {}, findings: { sensitivity: await runSensitivityJob(job, progress) } };
  if (job.kind === 'compress') {
    progress('compress', 'compressing');
    await maybeHang(job, 'compress');
    try {
      const artifact = await compressInto(
        job.recipe,
        job.out,
        new AbortController().signal,
        (m, f) => progress('compress', m, f),
        job.roots,
      );
      return { metrics: peak(), artifact: { ...artifact, compress_peak_rss_bytes: peak().peak_rss_bytes } };
    } catch (err) {
      const e = err as Error & { file?: string };
      throw new BenchError(`compression failed: ${e.message}`, 'compress', e.file ?? job.recipe.model);
    }
  }
  if (job.kind === 'bandwidth') {
    progress('setup', 'measuring memory bandwidth');
    return { metrics: peak(), bandwidth: await measureBandwidth(job) };
  }
  return runModelJob(job, progress);
}

async function runModelJob(
  job: MeasureJob | ReferenceJob,
  progress: Progress,
): Promise<{ metrics: Metrics; baseline?: BaselineFigures }> {
  progress('load', `loading ${job.model}`);
  await maybeHang(job, 'load');
  const loaded = await load(job.model, job);
  try {
    if (job.kind === 'reference') {
      progress('reference', 'computing the fp32 reference');
      await maybeHang(job, 'reference');
      let ref: ReferenceFile;
      if (loaded.kind === 'decoder') {
        // Without evaluation text there is nothing to score a decoder on: an empty reference says so.
        ref = job.evaluation
          ? await decoderReference(job, loaded.decoder, progress)
          : { key: job.key, kind: 'decoder' };
      } else {
        const { feeds } = genericInputs(loaded.session, job.model, job.workload);
        const outs = await genericOutputs(loaded.session, feeds);
        ref = {
          key: job.key,
          kind: 'generic',
          outputs: Object.fromEntries(Object.entries(outs).map(([n, o]) => [n, { dims: o.dims, data: b64(o.data) }])),
        };
      }
      await writeFileAtomic(job.out, JSON.stringify(ref));
      return { metrics: { ppl: ref.ppl, ...peak() } };
    }

    let metrics: Metrics = {};
    let baseline: BaselineFigures | undefined;
    if (job.latency) ({ metrics, baseline } = await measureLatency(job, loaded, progress));
    const ref = job.reference ? readReference(job.reference) : undefined;
    if (loaded.kind === 'decoder') {
      if (job.evaluation) {
        await maybeHang(job, 'accuracy');
        Object.assign(metrics, await decoderAccuracy(job, loaded.decoder, ref, progress));
      }
    } else if (ref) {
      progress('accuracy', 'comparing outputs with fp32');
      const { feeds } = genericInputs(loaded.session, job.model, job.workload);
      metrics.output_rel_rmse = outputRelRmse(ref, await genericOutputs(loaded.session, feeds));
    }
    return { metrics: { ...peak(), ...metrics }, baseline };
  } finally {
    await loaded.release();
  }
}

function peak(): { peak_rss_bytes: number } {
  return { peak_rss_bytes: process.resourceUsage().maxRSS * 1024 };
}
