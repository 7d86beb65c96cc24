// What each layer tolerates: for each layer group and candidate setting, the accuracy cost of
// compressing only that group — KL(fp32 ‖ candidate) per scored token and the perplexity change — on
// the recipe's evaluation text. Runs in the worker (a 'sensitivity' job, bench/protocol.ts).
//
// Efficiently: the model is loaded once, with the layers' weights turned from initializers into graph
// inputs, so one session serves every candidate: a candidate feeds the group's weights as the
// compressed model would compute with them (quantize → dequantize, pruned, or the rank-r product) and
// the fp32 weights everywhere else. The fp32 log-probs are computed once and kept in memory. What this
// simulates exactly: the weights the kernels use. What it does not: accuracy_level's int8 activations
// (MatMulNBits accuracy_level 4), which the verification benchmark (layerPlan.ts) measures.
//
// Rank choices also come from the weight spectra: the fraction of ‖W‖²_F kept at each candidate rank
// (Eckart–Young), from the randomized SVD (compress/lowrank.ts) that the rank candidates compute anyway
// (an exact spectrum by Jacobi took minutes on the bundled model and is not computed).
import * as ort from 'onnxruntime-node';
import { DecoderConfig, DecoderSession } from '../model/decoder';
import { inspectLoaded, Layer } from '../model/graph';
import { encodeModel, onnx, readModel, readTensorFloat32, tensorDims } from '../model/onnx';
import { Tokenizer } from '../model/tokenizer';
import { dequantize, quantizeRTN, NBits } from '../compress/quant';
import { prune } from '../compress/sparsity';
import { lowRank } from '../compress/lowrank';
import { readRegularTextSync, READ_CAPS } from '../util/paths';
import { BenchError, EvalSettings, Progress } from '../bench/protocol';
import type { SessionOptionsUsed } from '../bench/record';

/** A candidate setting for one group, in recipe terms (what a per-layer override would say). */
export interface Candidate {
  /** Short label: `q4`, `q8b64`, `2:4`, `r0.25`. */
  id: string;
  quant?: { bits: NBits; block_size: number; symmetric: boolean };
  sparsity?: { n: number; m: number };
  /** Rank as a fraction of the layer's narrow side (rounded, at least 1). */
  rankFraction?: number;
}

/** The default candidates: the bit widths MatMulNBits packs (2, 4, 8; not 3), 2:4, two ranks. */
export const DEFAULT_CANDIDATES: Candidate[] = [
  { id: 'q2', quant: { bits: 2, block_size: 32, symmetric: true } },
  { id: 'q4', quant: { bits: 4, block_size: 32, symmetric: true } },
  { id: 'q8', quant: { bits: 8, block_size: 32, symmetric: true } },
  { id: '2:4', sparsity: { n: 2, m: 4 } },
  { id: 'r0.5', rankFraction: 0.5 },
  { id: 'r0.25', rankFraction: 0.25 },
];

export function rankOf(c: Candidate, layer: Pick<Layer, 'K' | 'N'>): number | undefined {
  return c.rankFraction === undefined
    ? undefined
    : Math.max(1, Math.round(c.rankFraction * Math.min(layer.K, layer.N)));
}

export interface LayerGroup {
  name: string;
  layers: string[];
}

export interface SensitivityJob {
  kind: 'sensitivity';
  model: string;
  session: SessionOptionsUsed;
  evaluation: EvalSettings;
  /** Default: one group per layer. */
  groups?: LayerGroup[];
  candidates?: Candidate[];
  /** Windows of the evaluation text scored (default 4; fewer when the vocabulary is large). */
  maxWindows?: number;
  config?: DecoderConfig;
}

export interface SensitivityEntry {
  group: string;
  candidate: string;
  /** Mean KL(fp32 ‖ candidate) per scored token, nats. */
  kl: number;
  ppl: number;
  /** ppl / ppl_fp32 − 1. */
  ppl_change: number;
  /** NLL(candidate) − NLL(fp32), nats per token: the additive cost the plan sums. */
  nll_delta: number;
  /** ‖W − Ŵ‖² / ‖W‖² over the group's weights. */
  weight_rel_err: number;
}

export interface SensitivityResult {
  model: string;
  ppl_fp32: number;
  nll_fp32: number;
  tokens: number;
  windows: number;
  groups: LayerGroup[];
  candidates: Candidate[];
  entries: SensitivityEntry[];
  /** Per layer, energy kept at each candidate rank (fraction of ‖W‖²_F), where the SVD was affordable. */
  spectra: { layer: string; ranks: { rank: number; energy: number }[] }[];
  /** Wall time of the whole analysis and of its parts, seconds. */
  seconds: { total: number; load: number; fp32: number; candidates: number };
}

const WINDOWS_PER_BATCH = 8;
/** Cap on the fp32 log-probs kept in memory (floats): positions × vocabulary. */
const MAX_CACHED_FLOATS = 32 * 1024 * 1024;

function now(): number {
  return Number(process.hrtime.bigint()) / 1e9;
}

/** The candidate's weight for one layer, [K, N] row-major float32 (transposed back for Gemm transB). */
export function candidateWeight(w: Float32Array, layer: Pick<Layer, 'K' | 'N' | 'transB'>, c: Candidate): Float32Array {
  const { K, N } = layer;
  const kn = layer.transB ? transpose(w, N, K) : w;
  let out: Float32Array;
  if (c.quant) {
    const spec = { bits: c.quant.bits, blockSize: c.quant.block_size, symmetric: c.quant.symmetric };
    out = Float32Array.from(dequantize(quantizeRTN(kn, K, N, spec)));
  } else if (c.sparsity) {
    out = Float32Array.from(kn);
    prune(out, K, N, c.sparsity);
  } else if (c.rankFraction !== undefined) {
    const r = rankOf(c, layer)!;
    const lr = lowRank(kn, K, N, r, { method: 'randomized_svd', seed: 1 });
    out = new Float32Array(K * N);
    for (let k = 0; k < K; k++) {
      for (let i = 0; i < lr.rank; i++) {
        const a = lr.a[k * lr.rank + i];
        if (a === 0) continue;
        for (let n = 0; n < N; n++) out[k * N + n] += a * lr.b[i * N + n];
      }
    }
  } else {
    out = Float32Array.from(kn);
  }
  return layer.transB ? transpose(out, K, N) : out;
}

function transpose(w: ArrayLike<number>, R: number, C: number): Float32Array {
  const t = new Float32Array(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) t[c * R + r] = w[r * C + c];
  return t;
}

function evalTokens(ev: EvalSettings): number[] {
  let text: string;
  try {
    text = readRegularTextSync(ev.text, 'evaluation text', READ_CAPS.text);
  } catch (err) {
    throw new BenchError((err as Error).message, 'accuracy', ev.text);
  }
  try {
    return Tokenizer.fromFile(ev.tokenizer).encode(text);
  } catch (err) {
    throw new BenchError(`cannot read tokenizer ${ev.tokenizer}: ${(err as Error).message}`, 'accuracy', ev.tokenizer);
  }
}

/** log-softmax of row `off` of `x` into `out` at `o`. */
function logSoftmaxInto(x: Float32Array, off: number, V: number, out: Float32Array, o: number): void {
  let max = -Infinity;
  for (let v = 0; v < V; v++) if (x[off + v] > max) max = x[off + v];
  let s = 0;
  for (let v = 0; v < V; v++) s += Math.exp(x[off + v] - max);
  const lse = max + Math.log(s);
  for (let v = 0; v < V; v++) out[o + v] = x[off + v] - lse;
}

export async function runSensitivityJob(job: SensitivityJob, progress: Progress): Promise<SensitivityResult> {
  const t0 = now();
  const loaded = await readModel(job.model);
  const graph = inspectLoaded(loaded);
  const g = loaded.proto.graph!;
  const inits = new Map((g.initializer ?? []).map((t) => [t.name ?? '', t] as const));
  const layers = graph.layers.filter(
    (l) => (l.op === 'MatMul' || l.op === 'Gemm') && l.dtype === 'FLOAT' && inits.has(l.weight),
  );
  const byName = new Map(layers.map((l) => [l.name, l] as const));
  const groups = (job.groups ?? layers.map((l) => ({ name: l.name, layers: [l.name] })))
    .map((gr) => ({ name: gr.name, layers: gr.layers.filter((n) => byName.has(n)) }))
    .filter((gr) => gr.layers.length > 0);
  if (groups.length === 0)
    throw new BenchError(`${job.model}: no fp32 MatMul/Gemm layers to analyse`, 'load', job.model);
  const candidates = job.candidates ?? DEFAULT_CANDIDATES;

  // Weights of the analysed layers become graph inputs (one session for every candidate).
  progress('load', 'reading the layer weights');
  const fp32 = new Map<string, ort.Tensor>();
  const raw = new Map<string, Float32Array>();
  const asInputs = new Set<string>();
  for (const l of layers) {
    if (asInputs.has(l.weight)) continue; // tied weights: one input
    const t = inits.get(l.weight)!;
    const data = await readTensorFloat32(t, loaded.baseDir);
    raw.set(l.weight, data);
    fp32.set(l.weight, new ort.Tensor('float32', data, tensorDims(t)));
    asInputs.add(l.weight);
  }
  g.initializer = (g.initializer ?? []).filter((t) => !asInputs.has(t.name ?? ''));
  for (const name of asInputs) {
    g.input!.push(
      onnx.ValueInfoProto.create({
        name,
        type: {
          tensorType: {
            elemType: onnx.TensorProto.DataType.FLOAT,
            shape: { dim: fp32.get(name)!.dims.map((d) => ({ dimValue: d })) },
          },
        },
      }),
    );
  }
  const bytes = encodeModel(loaded.proto);
  const so: ort.InferenceSession.SessionOptions = {
    executionProviders: ['cpu'],
    intraOpNumThreads: job.session.intra_op_threads,
    interOpNumThreads: job.session.inter_op_threads,
    graphOptimizationLevel: job.session
      .graph_optimization as ort.InferenceSession.SessionOptions['graphOptimizationLevel'],
    logSeverityLevel: 3,
  };
  let d: DecoderSession;
  try {
    d = await DecoderSession.create(bytes, { sessionOptions: so, config: job.config });
  } catch (err) {
    throw new BenchError(
      `cannot load ${job.model} for the sensitivity analysis: ${(err as Error).message}`,
      'load',
      job.model,
    );
  }
  const tLoad = now();
  try {
    const ids = evalTokens(job.evaluation);
    const W = job.evaluation.window;
    const probe = await forward(d, [ids.slice(0, W)], fp32);
    const V = probe.dims[2];
    let n = Math.min(Math.floor(ids.length / W), job.maxWindows ?? 4);
    n = Math.min(n, Math.max(1, Math.floor(MAX_CACHED_FLOATS / (V * (W - 1)))));
    if (n === 0)
      throw new BenchError(
        `evaluation text ${job.evaluation.text} has ${ids.length} tokens, fewer than one window of ${W}`,
        'accuracy',
        job.evaluation.text,
      );
    const windows = Array.from({ length: n }, (_, i) => ids.slice(i * W, (i + 1) * W));
    const P = n * (W - 1);

    // fp32 log-probs, once.
    progress('reference', 'fp32 log-probs');
    const ref = new Float32Array(P * V);
    let nll0 = 0;
    await score(d, windows, fp32, V, (p, x, off, target) => {
      logSoftmaxInto(x, off, V, ref, p * V);
      nll0 -= ref[p * V + target];
    });
    nll0 /= P;
    const tFp32 = now();

    const entries: SensitivityEntry[] = [];
    const row = new Float32Array(V);
    const total = groups.length * candidates.length;
    let done = 0;
    for (const gr of groups) {
      for (const c of candidates) {
        progress('accuracy', `${gr.name} at ${c.id}`, done++ / total);
        const feeds = new Map(fp32);
        let err = 0;
        let norm = 0;
        for (const name of gr.layers) {
          const l = byName.get(name)!;
          const w = raw.get(l.weight)!;
          const cw = candidateWeight(w, l, c);
          for (let i = 0; i < w.length; i++) {
            err += (w[i] - cw[i]) ** 2;
            norm += w[i] ** 2;
          }
          feeds.set(l.weight, new ort.Tensor('float32', cw, fp32.get(l.weight)!.dims));
        }
        let kl = 0;
        let nll = 0;
        await score(d, windows, feeds, V, (p, x, off, target) => {
          logSoftmaxInto(x, off, V, row, 0);
          nll -= row[target];
          let s = 0;
          for (let v = 0; v < V; v++) {
            const lp = ref[p * V + v];
            s += Math.exp(lp) * (lp - row[v]);
          }
          kl += Math.max(0, s);
        });
        nll /= P;
        entries.push({
          group: gr.name,
          candidate: c.id,
          kl: kl / P,
          ppl: Math.exp(nll),
          ppl_change: Math.exp(nll - nll0) - 1,
          nll_delta: nll - nll0,
          weight_rel_err: norm > 0 ? err / norm : 0,
        });
      }
    }
    const tCand = now();

    // Energy kept per rank: 1 − ‖W − W_r‖²/‖W‖² of the rank candidates' factorizations (Eckart–Young:
    // the SVD tail), per layer; from the randomized SVD already computed, so it costs nothing more.
    const spectra: SensitivityResult['spectra'] = [];
    for (const l of layers) {
      const ranks = candidates
        .filter((c) => c.rankFraction !== undefined)
        .flatMap((c) => {
          const alone = (x: SensitivityEntry) =>
            groups.some((gr) => gr.name === x.group && gr.layers.length === 1 && gr.layers[0] === l.name);
          const e = entries.find((x) => x.candidate === c.id && alone(x));
          return e ? [{ rank: rankOf(c, l)!, energy: 1 - e.weight_rel_err }] : [];
        });
      if (ranks.length) spectra.push({ layer: l.name, ranks });
    }
    const tEnd = now();
    return {
      model: job.model,
      ppl_fp32: Math.exp(nll0),
      nll_fp32: nll0,
      tokens: P,
      windows: n,
      groups,
      candidates,
      entries,
      spectra,
      seconds: { total: tEnd - t0, load: tLoad - t0, fp32: tFp32 - tLoad, candidates: tCand - tFp32 },
    };
  } finally {
    await d.release();
  }
}

/** One prefill of equal-length rows from an empty cache, with the weights fed; the logits. */
async function forward(d: DecoderSession, rows: number[][], weights: Map<string, ort.Tensor>): Promise<ort.Tensor> {
  const B = rows.length;
  const S = rows[0].length;
  const ids = new BigInt64Array(B * S);
  const pos = new BigInt64Array(B * S);
  rows.forEach((r, b) =>
    r.forEach((t, i) => {
      ids[b * S + i] = BigInt(t);
      pos[b * S + i] = BigInt(i);
    }),
  );
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', ids, [B, S]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(B * S).fill(1n), [B, S]),
  };
  if (d.hasPositionIds) feeds.position_ids = new ort.Tensor('int64', pos, [B, S]);
  const empty = d.emptyCache(B);
  for (let i = 0; i < d.numLayers; i++) {
    feeds[`past_key_values.${i}.key`] = empty.keys[i];
    feeds[`past_key_values.${i}.value`] = empty.values[i];
  }
  for (const [name, t] of weights) feeds[name] = t;
  const out = await d.session.run(feeds, ['logits']);
  return out.logits as ort.Tensor;
}

/** Calls `each(position, logits, offset, target)` for every scored position of every window, in order. */
async function score(
  d: DecoderSession,
  windows: number[][],
  weights: Map<string, ort.Tensor>,
  V: number,
  each: (p: number, x: Float32Array, off: number, target: number) => void,
): Promise<void> {
  const W = windows[0].length;
  let p = 0;
  for (let w0 = 0; w0 < windows.length; w0 += WINDOWS_PER_BATCH) {
    const rows = windows.slice(w0, w0 + WINDOWS_PER_BATCH);
    const x = (await forward(d, rows, weights)).data as Float32Array;
    for (let b = 0; b < rows.length; b++) {
      for (let t = 0; t + 1 < W; t++) each(p++, x, (b * W + t) * V, rows[b][t + 1]);
    }
  }
}

/** Plain-text table: per group, ppl change at each candidate (names untrusted: print via util/sanitize). */
export function sensitivityTable(s: SensitivityResult, limit = 40): string[] {
  const width = Math.min(60, Math.max(10, ...s.groups.map((g) => g.name.length)));
  const lines = [['group'.padEnd(width), ...s.candidates.map((c) => c.id.padStart(9))].join('  ')];
  for (const g of s.groups.slice(0, limit)) {
    const cells = s.candidates.map((c) => {
      const e = s.entries.find((x) => x.group === g.name && x.candidate === c.id);
      return (e ? `${e.ppl_change >= 0 ? '+' : ''}${(e.ppl_change * 100).toFixed(2)}%` : '—').padStart(9);
    });
    lines.push([g.name.padEnd(width), ...cells].join('  '));
  }
  if (s.groups.length > limit) lines.push(`… ${s.groups.length - limit} more groups`);
  lines.push(
    `fp32 ppl ${s.ppl_fp32.toFixed(3)} on ${s.tokens} tokens ` +
      `(${s.windows} windows); analysis took ${s.seconds.total.toFixed(1)} s ` +
      `(load ${s.seconds.load.toFixed(1)}, fp32 ${s.seconds.fp32.toFixed(1)}, ` +
      `candidates ${s.seconds.candidates.toFixed(1)})`,
  );
  return lines;
}
