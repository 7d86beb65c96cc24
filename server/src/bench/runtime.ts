// THE runtime seam: what a runtime (onnxruntime, llama.cpp, ...) must do for HAQA to benchmark a model
// in it. ./runtimes.ts is the table of runtimes; a new runtime is one entry there and one file, never a
// branch in the benchmark. Everything here runs in the worker process (./worker.ts), so a runtime's
// native crash ends the worker, never the language server.
//
// A runtime
//  - builds its artifact from the recipe's source model (`build`: onnxruntime compresses the ONNX model,
//    llama.cpp exports GGUF), written as `artifactFile` in the artifact's folder;
//  - loads an artifact (`load`) as a LoadedModel that
//      · times the workload (`timed`: one sample = a prefill of prompt_length tokens from an empty
//        cache, then decode_tokens greedy single-token steps with the KV cache; ./measure.ts repeats
//        samples interleaved with the fp32 baseline's for paired ratios and reads peak memory), and
//      · scores windows (`step([window])`: next-token logits, or log-probs, at every position of one
//        window from an empty cache; ./accuracy.ts turns them into perplexity, and KL / top-1 against
//        the fp32 reference computed by onnxruntime on the same text and tokenizer).
import type { Engine, Recipe } from '../config/recipe';
import type { MeasureJob } from './protocol';

/** Logits (or log-probs: the scorers log-softmax them) [batch, seq, vocab], as DecoderSession.step returns. */
export interface Logits {
  data: Float32Array;
  dims: number[];
}

/** Something to time: each sample gives one value per series ([prefill ms, mean decode-step ms] for decoders). */
export interface Timed {
  sample(): Promise<number[]>;
}

/** A decoder as the scorers see it: one window's logits from an empty cache. */
export interface Scorer {
  step(ids: number[][]): Promise<{ logits: Logits }>;
}

export interface LoadedModel extends Scorer {
  timed(workload: MeasureJob['workload']): Promise<Timed>;
  release(): Promise<void>;
}

export interface Runtime {
  engine: Engine;
  /** The runtime's version, for records (`runtime.version`). */
  version(): string;
  /** Name of the model file in an artifact's folder. */
  artifactFile: string;
  /** Whether this runtime measures the source model as it is (no artifact needed without compression). */
  runsSourceModel: boolean;
  /** Writes the recipe's model for this runtime to `out`; returns facts for the artifact's meta.json. */
  build(
    recipe: Recipe,
    out: string,
    signal: AbortSignal,
    progress: (message: string, fraction?: number) => void,
    roots?: string[],
  ): Promise<Record<string, unknown>>;
  /** Loads a decoder artifact for timing and scoring. */
  load(model: string, job: Pick<MeasureJob, 'session' | 'config' | 'llama'>): Promise<LoadedModel>;
}

// ---------------------------------------------------------------- helpers every runtime's timing uses

/** Seeded pseudo-random ints in [0, max) (xorshift32): the same prompt ids in every runtime. */
export function seededInts(n: number, max: number, seed: number): number[] {
  let s = seed >>> 0 || 1;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out.push(s % max);
  }
  return out;
}

export function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
