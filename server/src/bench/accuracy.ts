// Accuracy, in the worker: perplexity on the evaluation text and agreement with the fp32 model.
//
// Decoders: consecutive windows of `window` tokens from the start of the text (as ./perplexity.ts
// defines perplexity), each run as one prefill from an empty cache. The fp32 side — its perplexity and,
// per scored position, its top-k next-token log-probs — is computed once (a 'reference' job) and kept
// in the store; every compressed model is compared against it: KL(fp32 ‖ model) and top-1 agreement.
// Other models: the fp32 outputs on seeded inputs, and the relative RMS error against them.
import * as fs from 'node:fs';
import type * as ort from 'onnxruntime-node';
import type { Scorer } from './runtime';
import { Tokenizer } from '../model/tokenizer';
import { PathError, readRegularTextSync, READ_CAPS } from '../util/paths';
import type { AccuracyMetrics } from './record';
import { BenchError, EvalSettings, MeasureJob, Progress, ReferenceJob } from './protocol';

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

export const b64 = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
function fromB64<T>(s: string, C: { new (b: ArrayBuffer): T }): T {
  const buf = Buffer.from(s, 'base64');
  return new C(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

function evalWindows(ev: EvalSettings, quick: boolean): { windows: number[][]; tokenCount: number } {
  let text: string;
  try {
    text = readRegularTextSync(ev.text, 'evaluation text', READ_CAPS.text); // regular files only, capped
  } catch (err) {
    const refused = err instanceof PathError && err.code !== 'file-not-found';
    throw new BenchError(refused ? err.message : `evaluation text not found: ${ev.text}`, 'accuracy', ev.text);
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
  if (n === 0)
    throw new BenchError(
      `evaluation text ${ev.text} has ${ids.length} tokens, fewer than one window of ${W}`,
      'accuracy',
      ev.text,
    );
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

export async function decoderReference(job: ReferenceJob, d: Scorer, progress: Progress): Promise<ReferenceFile> {
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
    key: job.key,
    kind: 'decoder',
    ppl: Math.exp(nll / tokenCount),
    windows: windows.length,
    tokens: tokenCount,
    vocab: V,
    k,
    topk_ids: b64(Int32Array.from(ids)),
    topk_logp: b64(Float32Array.from(logps)),
  };
}

export async function decoderAccuracy(
  job: MeasureJob,
  d: Scorer,
  ref: ReferenceFile | undefined,
  progress: Progress,
): Promise<AccuracyMetrics> {
  const { windows, tokenCount } = evalWindows(job.evaluation!, job.quick);
  const refIds = ref?.topk_ids ? fromB64(ref.topk_ids, Int32Array) : undefined;
  const refLogp = ref?.topk_logp ? fromB64(ref.topk_logp, Float32Array) : undefined;
  const k = ref?.k ?? 0;
  if (ref && (ref.tokens !== tokenCount || refIds!.length !== tokenCount * k)) {
    throw new BenchError(
      `fp32 reference ${job.reference} does not match the evaluation windows (${ref.tokens} vs ${tokenCount} tokens)`,
      'accuracy',
      job.reference,
    );
  }
  let nll = 0;
  let kl = 0;
  let agree = 0;
  let pos = 0;
  for (const [wi, win] of windows.entries()) {
    progress('accuracy', `window ${wi + 1}/${windows.length}`, wi / windows.length);
    const r = await d.step([win]);
    const V = r.logits.dims[2];
    if (ref && ref.vocab !== V)
      throw new BenchError(
        `model's vocabulary (${V}) differs from the fp32 model's (${ref.vocab})`,
        'accuracy',
        job.model,
      );
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
  const out: AccuracyMetrics = {
    ppl: Math.exp(nll / tokenCount),
    eval_tokens: tokenCount,
    eval_windows: windows.length,
  };
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

export async function genericOutputs(
  session: ort.InferenceSession,
  feeds: Record<string, ort.Tensor>,
): Promise<Record<string, { dims: number[]; data: Float32Array }>> {
  const out = await session.run(feeds);
  const res: Record<string, { dims: number[]; data: Float32Array }> = {};
  for (const [name, t] of Object.entries(out)) {
    if (t.type !== 'float32' || t.size > MAX_REFERENCE_ELEMENTS) continue;
    res[name] = { dims: t.dims.slice(), data: t.data as Float32Array };
  }
  return res;
}

export function outputRelRmse(
  ref: ReferenceFile,
  got: Record<string, { dims: number[]; data: Float32Array }>,
): number | undefined {
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

export function readReference(file: string): ReferenceFile {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as ReferenceFile;
  } catch (err) {
    throw new BenchError(`cannot read the fp32 reference ${file}: ${(err as Error).message}`, 'accuracy', file);
  }
}
