// What the worker process does: load a model with the recipe's session options and measure it.
// Runs only inside the worker (./worker.ts), so a native crash, an out-of-memory or a hung kernel
// here ends the worker, never the language server; ./run.ts turns that into a record.
//
// Decoders (inputs `input_ids` + KV cache, docs/decoder-interface.md):
//  - prefill: one step of prompt_length tokens per row at the workload batch, empty past;
//  - decode: after that prefill, decode_tokens single-token steps (greedy), mean time per step;
//  - accuracy: non-overlapping windows of the evaluation text, each run as one prefill; perplexity
//    from the next-token log-probs, and against the fp32 reference: KL(fp32 ‖ this) and top-1 agreement.
// Other models: one inference on seeded inputs built from the input value-infos; accuracy is the
// relative RMS error of the outputs against the fp32 model's on the same inputs.
import * as fs from 'node:fs';
import * as ort from 'onnxruntime-node';
import { DecoderConfig, DecoderError, DecoderSession } from '../model/decoder';
import { Tokenizer } from '../model/tokenizer';
import { writeFileAtomic } from '../util/atomicWrite';
import type { AccuracyMetrics, Metrics, RunStage, SessionOptionsUsed } from './record';
import { enough, FULL_POLICY, QUICK_POLICY, summarize } from './stats';
import { BandwidthResult, measureBandwidth } from './hardware';
import { compressInto } from './compress';
import type { Recipe } from '../config/recipe';

// ---------------------------------------------------------------- the protocol with the parent

export interface EvalSettings {
  text: string;
  tokenizer: string;
  window: number;
  max_windows?: number;
}

export interface MeasureJob {
  kind: 'measure';
  model: string;
  session: SessionOptionsUsed;
  workload: { prompt_length: number; decode_tokens: number; batch: number };
  quick: boolean;
  latency: boolean;
  /** Decoders: evaluation text and tokenizer; compared against `reference` when given. */
  evaluation?: EvalSettings;
  /** Path of the fp32 reference (written by a 'reference' job) to compare against. */
  reference?: string;
  /** The fp32 model, timed interleaved with this one (speedups from the same process and moment). */
  baseline?: string;
  config?: DecoderConfig;
  /** Test hooks, honoured only with HAQA_BENCH_TEST_HOOKS=1 in the environment. */
  debug?: { hangAt?: RunStage; ignoreSigterm?: boolean };
}

export interface ReferenceJob {
  kind: 'reference';
  /** The fp32 model. */
  model: string;
  session: SessionOptionsUsed;
  workload: MeasureJob['workload'];
  quick: boolean;
  evaluation?: EvalSettings;
  /** Where to write the reference (atomically). */
  out: string;
  /** Identity written into the file and checked by readers. */
  key: string;
  config?: DecoderConfig;
  debug?: MeasureJob['debug'];
}

/** Memory read bandwidth (hardware.ts), measured here so the caller never allocates the buffer. */
export interface BandwidthJob {
  kind: 'bandwidth';
  bytes?: number;
  threads?: number;
  reps?: number;
}

/** Compression runs in the worker too: a big model's transforms can exhaust memory or take long. */
export interface CompressJob {
  kind: 'compress';
  recipe: Recipe;
  /** model.onnx inside the artifact's temporary folder. */
  out: string;
  debug?: MeasureJob['debug'];
}

export type WorkerJob = MeasureJob | ReferenceJob | BandwidthJob | CompressJob;

export type WorkerMessage =
  /** Sent once the worker listens for its job: the parent sends the job only then. */
  | { type: 'ready' }
  | { type: 'progress'; stage: RunStage; message: string; fraction?: number }
  | { type: 'result'; metrics: Metrics; baseline?: Metrics; bandwidth?: BandwidthResult; artifact?: Record<string, unknown> }
  | { type: 'error'; message: string; stage: RunStage; where?: string };

export type Progress = (stage: RunStage, message: string, fraction?: number) => void;

/** An error the worker reports as such (bad input), as opposed to a bug. */
export class BenchError extends Error {
  constructor(message: string, readonly stage: RunStage, readonly where?: string) {
    super(message);
    this.name = 'BenchError';
  }
}

// ---------------------------------------------------------------- session

export function ortSessionOptions(s: SessionOptionsUsed): ort.InferenceSession.SessionOptions {
  if (s.provider !== 'cpu') {
    throw new BenchError(`execution provider '${s.provider}' is not available in onnxruntime-node on this machine (only 'cpu')`, 'load');
  }
  return {
    executionProviders: ['cpu'],
    intraOpNumThreads: s.intra_op_threads,
    interOpNumThreads: s.inter_op_threads,
    graphOptimizationLevel: s.graph_optimization as ort.InferenceSession.SessionOptions['graphOptimizationLevel'],
    executionMode: s.execution_mode as 'sequential' | 'parallel',
    logSeverityLevel: 3,
  };
}

type Loaded =
  | { kind: 'decoder'; decoder: DecoderSession; release(): Promise<void> }
  | { kind: 'generic'; session: ort.InferenceSession; release(): Promise<void> };

async function load(model: string, so: SessionOptionsUsed, config: DecoderConfig | undefined): Promise<Loaded> {
  const options = ortSessionOptions(so);
  // Decoders are the common case and load once. DecoderSession checks the whole interface; a model
  // that is not a decoder is then loaded as a plain session (small non-LLM models: a second load is cheap).
  let why: string;
  try {
    const decoder = await DecoderSession.create(model, { sessionOptions: options, config });
    return { kind: 'decoder', decoder, release: () => decoder.release() };
  } catch (err) {
    if (!(err instanceof DecoderError)) throw new BenchError(`onnxruntime cannot load ${model}: ${(err as Error).message}`, 'load', model);
    why = err.message;
  }
  const session = await ort.InferenceSession.create(model, options).catch((err: Error) => {
    throw new BenchError(`onnxruntime cannot load ${model}: ${err.message}`, 'load', model);
  });
  if (session.inputNames.includes('input_ids')) {
    await session.release();
    throw new BenchError(`${model}: has input_ids but not the decoder interface HAQA runs (docs/decoder-interface.md): ${why}`, 'load', model);
  }
  return { kind: 'generic', session, release: () => session.release() };
}

// ---------------------------------------------------------------- helpers

function seededInts(n: number, max: number, seed: number): number[] {
  let s = seed >>> 0 || 1;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    out.push(s % max);
  }
  return out;
}

function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Row-wise argmax of the last position of [batch, seq, vocab] logits. */
function lastArgmax(logits: { data: Float32Array; dims: number[] }): number[][] {
  const [B, S, V] = logits.dims;
  const rows: number[][] = [];
  for (let b = 0; b < B; b++) {
    const off = (b * S + S - 1) * V;
    let best = 0;
    for (let v = 1; v < V; v++) if (logits.data[off + v] > logits.data[off + best]) best = v;
    rows.push([best]);
  }
  return rows;
}

async function maybeHang(job: { debug?: MeasureJob['debug'] }, stage: RunStage): Promise<void> {
  if (process.env.HAQA_BENCH_TEST_HOOKS !== '1' || job.debug?.hangAt !== stage) return;
  if (job.debug.ignoreSigterm) process.on('SIGTERM', () => undefined);
  // Like a kernel that never returns: nothing more happens until the parent kills us.
  await new Promise<void>(() => setInterval(() => undefined, 1 << 30));
}

// ---------------------------------------------------------------- latency

/** Something to time: each sample gives one value per series (prefill and decode; or one inference). */
interface Timed {
  sample(): Promise<number[]>;
}

async function decoderTimed(d: DecoderSession, workload: MeasureJob['workload']): Promise<Timed> {
  const { prompt_length: P, decode_tokens: D, batch: B } = workload;
  // The vocabulary size, from a one-token step: prompt ids must be valid token ids.
  const probe = await d.step([[0]]);
  const V = probe.logits.dims[2];
  const prompt = Array.from({ length: B }, (_, b) => seededInts(P, V, 1234 + b));
  return {
    // One generation: the prefill, then D greedy single-token steps with the cache; [prefill, mean step].
    async sample() {
      const t0 = now();
      let r = await d.step(prompt);
      const prefill = now() - t0;
      let next = lastArgmax(r.logits);
      let decode = 0;
      for (let i = 0; i < D; i++) {
        const s = now();
        r = await d.step(next, r.cache);
        decode += now() - s;
        next = lastArgmax(r.logits);
      }
      return [prefill, decode / D];
    },
  };
}

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
  return l.kind === 'decoder' ? decoderTimed(l.decoder, job.workload) : genericTimed(l.session, genericInputs(l.session, job.model, job.workload).feeds);
}

function latencyMetrics(kind: Loaded['kind'], series: number[][], workload: MeasureJob['workload']): Metrics {
  if (kind === 'generic') return { inference_ms: summarize(series[0]) };
  const p = summarize(series[0]);
  const d = summarize(series[1]);
  const { decode_tokens: D, batch: B } = workload;
  return { prefill_ms: p, decode_ms_per_token: d, throughput_tok_s: (B * D * 1000) / (p.median + D * d.median) };
}

/**
 * Times the model, and the fp32 baseline when the job names one, in the same process with their
 * repetitions interleaved (A B A B ...): on a shared machine load drifts over seconds, and interleaving
 * lets both see the same drift, so their ratio is the figure to trust. Repeats until every series'
 * median is known within the policy's interval, or a cap is hit.
 * The model's peak RSS is read after its warm-up, before the baseline is loaded.
 */
async function measureLatency(job: MeasureJob, loaded: Loaded, progress: Progress): Promise<{ metrics: Metrics; baseline?: Metrics }> {
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
  let base: Loaded | undefined;
  try {
    if (job.baseline) {
      progress('baseline', `loading the fp32 baseline ${job.baseline}`);
      base = await load(job.baseline, job.session, job.config);
      if (base.kind !== loaded.kind) throw new BenchError(`the fp32 model ${job.baseline} and the compressed one differ in kind (${base.kind} vs ${loaded.kind})`, 'baseline', job.baseline);
      await add(base, ' (fp32)');
    }
    await maybeHang(job, 'latency');
    const start = now();
    let reps = 0;
    while (!enough(subjects.flatMap((s) => s.series), policy, now() - start)) {
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
  return {
    metrics: { ...latencyMetrics(me.kind, me.series, job.workload), ...rss },
    baseline: fp ? latencyMetrics(fp.kind, fp.series, job.workload) : undefined,
  };
}

interface GenericInputs { feeds: Record<string, ort.Tensor>; }

function genericInputs(session: ort.InferenceSession, model: string, workload: MeasureJob['workload']): GenericInputs {
  const feeds: Record<string, ort.Tensor> = {};
  session.inputMetadata.forEach((m, idx) => {
    if (!m.isTensor) throw new BenchError(`${model}: input '${m.name}' is not a tensor; HAQA can only feed tensors`, 'load', model);
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
        feeds[m.name] = new ort.Tensor('float32', Float32Array.from(ints, (v) => v / (1 << 15) - 1), dims);
        break;
      case 'int64':
        feeds[m.name] = new ort.Tensor('int64', BigInt64Array.from(ints, (v) => BigInt(v % 100)), dims);
        break;
      case 'int32':
        feeds[m.name] = new ort.Tensor('int32', Int32Array.from(ints, (v) => v % 100), dims);
        break;
      case 'bool':
        feeds[m.name] = new ort.Tensor('bool', Uint8Array.from(ints, (v) => v & 1), dims);
        break;
      default:
        throw new BenchError(`${model}: input '${m.name}' has type ${m.type}; seeded inputs exist for float32, int64, int32 and bool`, 'load', model);
    }
  });
  return { feeds };
}

// ---------------------------------------------------------------- accuracy

/** Top-k of the fp32 next-token distribution kept per position (plus the tail mass). */
export const REFERENCE_TOPK = 64;

/** The fp32 reference: written once per (fp32 model, evaluation settings), read by every run. */
export interface ReferenceFile {
  key: string;
  kind: 'decoder' | 'generic';
  // decoder
  ppl?: number;
  windows?: number;
  tokens?: number;
  vocab?: number;
  k?: number;
  /** Per scored position, k token ids (descending fp32 probability), base64 Int32Array. */
  topk_ids?: string;
  /** Their fp32 log-probs, base64 Float32Array. */
  topk_logp?: string;
  // generic
  outputs?: Record<string, { dims: number[]; data: string }>;
}

const b64 = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
function fromB64<T>(s: string, C: { new (b: ArrayBuffer): T }): T {
  const buf = Buffer.from(s, 'base64');
  return new C(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

function evalWindows(ev: EvalSettings, quick: boolean): { windows: number[][]; tokenCount: number } {
  let text: string;
  try {
    text = fs.readFileSync(ev.text, 'utf8');
  } catch {
    throw new BenchError(`evaluation text not found: ${ev.text}`, 'accuracy', ev.text);
  }
  let tok: Tokenizer;
  try {
    tok = Tokenizer.fromFile(ev.tokenizer);
  } catch (err) {
    throw new BenchError(`cannot read tokenizer ${ev.tokenizer}: ${(err as Error).message}`, 'accuracy', ev.tokenizer);
  }
  const ids = tok.encode(text);
  const W = ev.window;
  let n = Math.floor(ids.length / W);
  if (n === 0) throw new BenchError(`evaluation text ${ev.text} has ${ids.length} tokens, fewer than one window of ${W}`, 'accuracy', ev.text);
  if (ev.max_windows !== undefined) n = Math.min(n, ev.max_windows);
  if (quick) n = Math.min(n, 4);
  // Consecutive windows from the start, as ./perplexity.ts defines perplexity everywhere in HAQA: with
  // no cap this reproduces the figure the fixture script records for the whole held-out text.
  const windows = Array.from({ length: n }, (_, i) => ids.slice(i * W, (i + 1) * W));
  return { windows, tokenCount: n * (W - 1) };
}

/** log-softmax of one row of logits into `out`; returns the log-sum-exp (float64) for exact NLLs. */
function logSoftmax(data: Float32Array, off: number, V: number, out: Float32Array): number {
  let max = -Infinity;
  for (let v = 0; v < V; v++) if (data[off + v] > max) max = data[off + v];
  let sum = 0;
  for (let v = 0; v < V; v++) sum += Math.exp(data[off + v] - max);
  const lse = max + Math.log(sum);
  for (let v = 0; v < V; v++) out[v] = data[off + v] - lse;
  return lse;
}

/** Indices of the k largest entries, largest first (insertion into a sorted list of k: k ≪ V). */
function topk(row: Float32Array, k: number): number[] {
  const idx: number[] = [];
  for (let v = 0; v < row.length; v++) {
    let j: number;
    if (idx.length < k) {
      idx.push(v);
      j = idx.length - 1;
    } else if (row[v] > row[idx[k - 1]]) {
      j = k - 1;
    } else {
      continue;
    }
    while (j > 0 && row[idx[j - 1]] < row[v]) {
      idx[j] = idx[j - 1];
      j--;
    }
    idx[j] = v;
  }
  return idx;
}

async function decoderReference(job: ReferenceJob, d: DecoderSession, progress: Progress): Promise<ReferenceFile> {
  const { windows, tokenCount } = evalWindows(job.evaluation!, job.quick);
  let nll = 0;
  let V = 0;
  let k = 0;
  const ids: number[] = [];
  const logps: number[] = [];
  for (const [wi, win] of windows.entries()) {
    progress('reference', `fp32 window ${wi + 1}/${windows.length}`, wi / windows.length);
    const r = await d.step([win]);
    V = r.logits.dims[2];
    k = Math.min(REFERENCE_TOPK, V);
    const row = new Float32Array(V);
    for (let t = 0; t + 1 < win.length; t++) {
      const lse = logSoftmax(r.logits.data, t * V, V, row);
      nll -= r.logits.data[t * V + win[t + 1]] - lse;
      for (const v of topk(row, k)) {
        ids.push(v);
        logps.push(row[v]);
      }
    }
  }
  return {
    key: job.key, kind: 'decoder', ppl: Math.exp(nll / tokenCount), windows: windows.length, tokens: tokenCount, vocab: V, k,
    topk_ids: b64(Int32Array.from(ids)), topk_logp: b64(Float32Array.from(logps)),
  };
}

async function decoderAccuracy(job: MeasureJob, d: DecoderSession, ref: ReferenceFile | undefined, progress: Progress): Promise<AccuracyMetrics> {
  const { windows, tokenCount } = evalWindows(job.evaluation!, job.quick);
  const refIds = ref?.topk_ids ? fromB64(ref.topk_ids, Int32Array) : undefined;
  const refLogp = ref?.topk_logp ? fromB64(ref.topk_logp, Float32Array) : undefined;
  const k = ref?.k ?? 0;
  if (ref && (ref.tokens !== tokenCount || refIds!.length !== tokenCount * k)) {
    throw new BenchError(`fp32 reference ${job.reference} does not match the evaluation windows (${ref.tokens} vs ${tokenCount} tokens)`, 'accuracy', job.reference);
  }
  let nll = 0;
  let kl = 0;
  let agree = 0;
  let pos = 0;
  for (const [wi, win] of windows.entries()) {
    progress('accuracy', `window ${wi + 1}/${windows.length}`, wi / windows.length);
    const r = await d.step([win]);
    const V = r.logits.dims[2];
    if (ref && ref.vocab !== V) throw new BenchError(`model's vocabulary (${V}) differs from the fp32 model's (${ref.vocab})`, 'accuracy', job.model);
    const row = new Float32Array(V);
    for (let t = 0; t + 1 < win.length; t++, pos++) {
      const lse = logSoftmax(r.logits.data, t * V, V, row);
      nll -= r.logits.data[t * V + win[t + 1]] - lse;
      if (!refIds || !refLogp) continue;
      // KL(P ‖ Q) over the fp32 top-k tokens plus one bin for everything else: exact when k = V,
      // otherwise the KL of the coarsened distributions, a lower bound of the full one.
      let pIn = 0;
      let qIn = 0;
      let best = 0;
      for (let v = 1; v < V; v++) if (row[v] > row[best]) best = v;
      if (best === refIds[pos * k]) agree++;
      for (let j = 0; j < k; j++) {
        const lp = refLogp[pos * k + j];
        const lq = row[refIds[pos * k + j]];
        const p = Math.exp(lp);
        kl += p * (lp - lq);
        pIn += p;
        qIn += Math.exp(lq);
      }
      const pTail = Math.max(1 - pIn, 0);
      const qTail = Math.max(1 - qIn, 1e-12);
      if (pTail > 1e-12) kl += pTail * (Math.log(pTail) - Math.log(qTail));
    }
  }
  const out: AccuracyMetrics = { ppl: Math.exp(nll / tokenCount), eval_tokens: tokenCount, eval_windows: windows.length };
  if (ref) {
    out.ppl_fp32 = ref.ppl;
    out.kl = Math.max(0, kl / tokenCount);
    out.top1 = agree / tokenCount;
    out.kl_method = k >= (ref.vocab ?? 0) ? 'exact' : `top${k}+tail`;
  }
  return out;
}

/** Largest output (elements) whose fp32 values are kept in a reference. */
const MAX_REFERENCE_ELEMENTS = 1 << 22;

async function genericOutputs(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>): Promise<Record<string, { dims: number[]; data: Float32Array }>> {
  const out = await session.run(feeds);
  const res: Record<string, { dims: number[]; data: Float32Array }> = {};
  for (const [name, t] of Object.entries(out)) {
    if (t.type !== 'float32' || t.size > MAX_REFERENCE_ELEMENTS) continue;
    res[name] = { dims: t.dims.slice(), data: t.data as Float32Array };
  }
  return res;
}

function outputRelRmse(ref: ReferenceFile, got: Record<string, { dims: number[]; data: Float32Array }>): number | undefined {
  let err = 0;
  let norm = 0;
  let any = false;
  for (const [name, r] of Object.entries(ref.outputs ?? {})) {
    const g = got[name];
    if (!g) continue;
    const rd = fromB64(r.data, Float32Array);
    if (rd.length !== g.data.length) continue;
    any = true;
    for (let i = 0; i < rd.length; i++) {
      err += (g.data[i] - rd[i]) ** 2;
      norm += rd[i] ** 2;
    }
  }
  return any ? Math.sqrt(err / Math.max(norm, 1e-30)) : undefined;
}

function readReference(file: string): ReferenceFile {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as ReferenceFile;
  } catch (err) {
    throw new BenchError(`cannot read the fp32 reference ${file}: ${(err as Error).message}`, 'accuracy', file);
  }
}

// ---------------------------------------------------------------- the job

export async function runJob(
  job: WorkerJob, progress: Progress,
): Promise<{ metrics: Metrics; baseline?: Metrics; bandwidth?: BandwidthResult; artifact?: Record<string, unknown> }> {
  if (job.kind === 'compress') {
    progress('compress', 'compressing');
    await maybeHang(job, 'compress');
    try {
      const artifact = await compressInto(job.recipe, job.out, new AbortController().signal, (m, f) => progress('compress', m, f));
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

async function runModelJob(job: MeasureJob | ReferenceJob, progress: Progress): Promise<{ metrics: Metrics; baseline?: Metrics }> {
  progress('load', `loading ${job.model}`);
  await maybeHang(job, 'load');
  const loaded = await load(job.model, job.session, job.config);
  try {
    if (job.kind === 'reference') {
      progress('reference', 'computing the fp32 reference');
      await maybeHang(job, 'reference');
      let ref: ReferenceFile;
      if (loaded.kind === 'decoder') {
        // Without evaluation text there is nothing to score a decoder on: an empty reference says so.
        ref = job.evaluation ? await decoderReference(job, loaded.decoder, progress) : { key: job.key, kind: 'decoder' };
      } else {
        const { feeds } = genericInputs(loaded.session, job.model, job.workload);
        const outs = await genericOutputs(loaded.session, feeds);
        ref = { key: job.key, kind: 'generic', outputs: Object.fromEntries(Object.entries(outs).map(([n, o]) => [n, { dims: o.dims, data: b64(o.data) }])) };
      }
      await writeFileAtomic(job.out, JSON.stringify(ref));
      return { metrics: { ppl: ref.ppl, ...peak() } };
    }

    let metrics: Metrics = {};
    let baseline: Metrics | undefined;
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
