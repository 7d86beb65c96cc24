// The onnxruntime runtime (./runtime.ts): onnxruntime-node's CPU execution provider. Artifacts are
// ONNX models written by the compression engine (compress/pipeline.ts via ./compress.ts). Decoders
// follow docs/decoder-interface.md (DecoderSession); other models load as a plain session, which
// ./measure.ts times and compares on seeded inputs.
import * as ort from 'onnxruntime-node';
import { DecoderConfig, DecoderError, DecoderSession } from '../model/decoder';
import type { SessionOptionsUsed } from './record';
import { BenchError, MeasureJob } from './protocol';
import { onnxruntimeVersion } from './hardware';
import { compressOnnx } from './compress';
import { LoadedModel, now, Runtime, seededInts, Timed } from './runtime';

export function ortSessionOptions(s: SessionOptionsUsed): ort.InferenceSession.SessionOptions {
  if (s.provider !== 'cpu') {
    throw new BenchError(
      `execution provider '${s.provider}' is not available in onnxruntime-node on this machine (only 'cpu')`,
      'load',
    );
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

export type Loaded =
  | { kind: 'decoder'; decoder: LoadedModel; release(): Promise<void> }
  | { kind: 'generic'; session: ort.InferenceSession; release(): Promise<void> };

export async function loadOrt(
  model: string,
  so: SessionOptionsUsed,
  config: DecoderConfig | undefined,
): Promise<Loaded> {
  const options = ortSessionOptions(so);
  // Decoders are the common case and load once. DecoderSession checks the whole interface; a model
  // that is not a decoder is then loaded as a plain session (small non-LLM models: a second load is cheap).
  let why: string;
  try {
    const decoder = await DecoderSession.create(model, { sessionOptions: options, config });
    return { kind: 'decoder', decoder: decoderModel(decoder), release: () => decoder.release() };
  } catch (err) {
    if (!(err instanceof DecoderError))
      throw new BenchError(`onnxruntime cannot load ${model}: ${(err as Error).message}`, 'load', model);
    why = err.message;
  }
  const session = await ort.InferenceSession.create(model, options).catch((err: Error) => {
    throw new BenchError(`onnxruntime cannot load ${model}: ${err.message}`, 'load', model);
  });
  if (session.inputNames.includes('input_ids')) {
    await session.release();
    throw new BenchError(
      `${model}: has input_ids but not the decoder interface HAQA runs (docs/decoder-interface.md): ${why}`,
      'load',
      model,
    );
  }
  return { kind: 'generic', session, release: () => session.release() };
}

function decoderModel(d: DecoderSession): LoadedModel {
  return { step: (ids) => d.step(ids), timed: (w) => decoderTimed(d, w), release: () => d.release() };
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

export const onnxRuntime: Runtime = {
  engine: 'onnxruntime',
  version: onnxruntimeVersion,
  artifactFile: 'model.onnx',
  runsSourceModel: true,
  build: (recipe, out, signal, progress, roots) => compressOnnx(recipe, out, signal, progress, roots),
  async load(model, job) {
    const l = await loadOrt(model, job.session, job.config);
    if (l.kind !== 'decoder') {
      await l.release();
      throw new BenchError(`${model}: not a decoder (docs/decoder-interface.md)`, 'load', model);
    }
    return l.decoder;
  },
};
