// The protocol between runRecipe (./run.ts, via ./spawn.ts) and the worker (./worker.ts): the jobs
// a worker can be given and the messages it sends back. Plain JSON over the IPC channel.
import type { BaselineFigures, Metrics, RunStage, SessionOptionsUsed } from './record';
import type { BandwidthResult } from './hardware';
import type { DecoderConfig } from '../model/decoder';
import type { Engine, Recipe } from '../config/recipe';
import type { ModelProfile, ProfileJob } from './profile';
import type { KernelProbeJob, KernelProbeResult } from './kernelProbe';
import type { SensitivityJob, SensitivityResult } from '../agent/sensitivity';
import type { RaceSettings } from './race';

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
  /**
   * A duel (./race.ts RaceAgainst): `baseline` is the incumbent's compressed model, loaded with these
   * session options and named so in progress and notes. Absent: `baseline` is fp32, with `session`.
   */
  baselineSession?: SessionOptionsUsed;
  baselineLabel?: string;
  config?: DecoderConfig;
  /**
   * The runtime that runs `model` (bench/runtimes.ts); absent: onnxruntime. The baseline is always onnxruntime's fp32.
   */
  engine?: Engine;
  /** llama.cpp's knobs (recipe runtime.llama). */
  llama?: Recipe['runtime']['llama'];
  /** Race the model against `baseline` (./race.ts) instead of measuring it to a precision: the tuner's measurement. */
  race?: RaceSettings;
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
  /** Folders the recipe may name files in (util/paths.ts); default the recipe's folder. */
  roots?: string[];
  debug?: MeasureJob['debug'];
}

export type WorkerJob =
  MeasureJob | ReferenceJob | BandwidthJob | CompressJob | ProfileJob | SensitivityJob | KernelProbeJob;

/** What the per-layer jobs (bench/profile.ts, agent/sensitivity.ts) return beside the metrics. */
export interface LayerFindings {
  profile?: ModelProfile[];
  sensitivity?: SensitivityResult;
  kernels?: KernelProbeResult;
}

export type WorkerMessage =
  /** Sent once the worker listens for its job: the parent sends the job only then. */
  | { type: 'ready' }
  | { type: 'progress'; stage: RunStage; message: string; fraction?: number }
  | {
      type: 'result';
      metrics: Metrics;
      baseline?: BaselineFigures;
      bandwidth?: BandwidthResult;
      artifact?: Record<string, unknown>;
      findings?: LayerFindings;
    }
  | { type: 'error'; message: string; stage: RunStage; where?: string };

export type Progress = (stage: RunStage, message: string, fraction?: number) => void;

/** An error the worker reports as such (bad input), as opposed to a bug. */
export class BenchError extends Error {
  constructor(
    message: string,
    readonly stage: RunStage,
    readonly where?: string,
  ) {
    super(message);
    this.name = 'BenchError';
  }
}
