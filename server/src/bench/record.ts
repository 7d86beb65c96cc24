// THE run record: what one quantize-and-benchmark run measured, in one place. The store appends these
// as JSON lines, the editor's code lenses and diagnostics read them, the tuner and the agent reason over
// them. A record never carries API keys, environment variables or anything else from the user's shell.
import type { ReferenceChoice } from './reference';
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import type { Engine, Recipe } from '../config/recipe';
import {
  COMPRESSION_SECTIONS,
  type CompressionSectionName,
  sectionDecl,
  sectionInEffect,
  usesCalibration,
} from '../config/methods';
import type { Summary } from './stats';
import type { RaceResult } from './race';
import { lineText } from '../util/sanitize';

export type RunStatus = 'ok' | 'error' | 'cancelled' | 'timeout';
/** Where a run was when it ended. */
export type RunStage = 'setup' | 'compress' | 'load' | 'reference' | 'latency' | 'accuracy' | 'baseline' | 'store';

export interface RunError {
  message: string;
  stage: RunStage;
  /** The file (or file:node / tensor) at fault, when known. */
  where?: string;
  /**
   * The recipe key the error is about (`['evaluation', 'text']`, `['model']`, `['quantize']`), for a
   * diagnostic on the recipe at the right place; absent when no one key is to blame.
   */
  recipe_path?: (string | number)[];
  /** The diagnostic code when the error is one `haqa check` reports too (a path the policy refuses). */
  code?: string;
}

export interface AccuracyMetrics {
  /** Perplexity of this model on the evaluation windows. */
  ppl?: number;
  /** Perplexity of the fp32 model on the same windows. */
  ppl_fp32?: number;
  /** Mean KL(fp32 ‖ this) of next-token distributions, nats (see kl_method). */
  kl?: number;
  /** Share of positions whose argmax agrees with fp32's. */
  top1?: number;
  /** How KL was computed: 'exact' over the whole vocabulary, or 'top<k>+tail' (coarsened, a lower bound). */
  kl_method?: string;
  /** Non-decoder models: RMS error of the outputs relative to the fp32 outputs' RMS, on seeded inputs. */
  output_rel_rmse?: number;
  /** Tokens scored and windows used. */
  eval_tokens?: number;
  eval_windows?: number;
}

/** Generated tokens per second for a workload: batch·decode_tokens / (prefill + decode_tokens·step), times in ms. */
export function throughputOf(w: { batch: number; decode_tokens: number }, prefillMs: number, stepMs: number): number {
  return (w.batch * w.decode_tokens * 1000) / (prefillMs + w.decode_tokens * stepMs);
}

export interface Metrics extends AccuracyMetrics {
  /** Time of one prefill of prompt_length tokens at the workload batch (empty past), ms. */
  prefill_ms?: Summary;
  /** Time of one single-token decode step with the KV cache at the workload batch, ms. */
  decode_ms_per_token?: Summary;
  /** Non-decoder models: one inference on seeded inputs, ms. */
  inference_ms?: Summary;
  /** Generated tokens per second for the whole workload, from the medians (throughputOf). */
  throughput_tok_s?: number;
  /** Peak resident memory of the worker process, bytes. */
  peak_rss_bytes?: number;
  /** Size of the measured model on disk (.onnx plus external data), bytes. */
  model_bytes?: number;
}

/** The fp32 model's speed figures, measured in the same invocation: Metrics' timing and size fields. */
export type BaselineFigures = Pick<
  Metrics,
  'prefill_ms' | 'decode_ms_per_token' | 'inference_ms' | 'throughput_tok_s' | 'peak_rss_bytes' | 'model_bytes'
> & {
  /** Per-repetition fp32/model ratios, when the baseline was timed interleaved (see Speedups.paired). */
  paired?: Speedups['paired'];
  /** The tuner's paired race against fp32 (./race.ts), kept in the record as `race`. */
  race?: RaceResult;
};

/** Ratios fp32 / this (above 1 = this is faster or smaller). */
export interface Speedups {
  prefill?: number;
  decode?: number;
  inference?: number;
  throughput?: number;
  size?: number;
  /**
   * With an interleaved baseline: the per-repetition ratios fp32/model of neighbouring samples
   * (which saw the same machine load), summarized — `ci_rel` says how sure the speedup is.
   */
  paired?: { prefill?: Summary; decode?: Summary; inference?: Summary };
}

export interface HardwareFingerprint {
  cpu: string;
  arch: string;
  /** ISA extensions that select kernels (avx2, avx512*, avx_vnni, amx*, f16c, fma; neon/dotprod on arm). */
  isa: string[];
  cores: number;
  memory_bytes: number;
  os: string;
  node: string;
  onnxruntime: string;
  /** Memory read bandwidth, GB/s, when it was measured. */
  bandwidth_gbps?: number;
}

export interface SessionOptionsUsed {
  provider: string;
  intra_op_threads: number;
  inter_op_threads: number;
  graph_optimization: string;
  execution_mode: string;
}

export interface TrialInfo {
  /** Trial number within a tuning session. */
  number?: number;
  /** Tuning session id. */
  session?: string;
  /** The knob assignment this trial tried. */
  assignment?: Record<string, unknown>;
  /** Why the agent proposed it (free text from the agent; shown, never executed). */
  rationale?: string;
  agent?: string;
}

export interface RunRecord {
  /** Sortable unique id: `<UTC time>-<random>`. */
  id: string;
  /** Absolute path of the recipe file. */
  recipe_file: string;
  /** sha256 of the normalized recipe sections that affect the model and the run (see recipeHash). */
  recipe_hash: string;
  /** sha256 of the measured model's bytes (.onnx then external data), when it was built. */
  model_hash?: string;
  /** The measured model (an artifact in the store, or the source model itself for fp32). */
  artifact?: string;
  /** The source model named by the recipe. */
  source_model: string;
  /** Knobs of the recipe that this run measured, for readers that don't re-parse the recipe. */
  config: RunConfig;
  status: RunStatus;
  error?: RunError;
  metrics: Metrics;
  /** fp32 figures measured in the same invocation, when asked for. */
  baseline?: BaselineFigures;
  speedups?: Speedups;
  /** A tuner's run: the contender's paired race against the fp32 reference (./race.ts). */
  race?: RaceResult;
  session_options: SessionOptionsUsed;
  hardware: HardwareFingerprint;
  onnxruntime: string;
  /** The runtime the figures come from (bench/runtimes.ts); records without it are onnxruntime's. */
  runtime?: { engine: Engine; version: string };
  quick: boolean;
  /** Wall time of the compression step; 0 when the artifact was reused. */
  compress_seconds?: number;
  artifact_reused?: boolean;
  started: string;
  finished: string;
  trial?: TrialInfo;
  /** What the run decided on its own that the user should know (e.g. the graph's kv heads over config.json's). */
  notes?: string[];
  /**
   * What accuracy was measured against, and why (bench/reference.ts):
   * the source, or a stated model where it does not fit.
   */
  reference?: ReferenceChoice;
  /** Which device ran it (server/src/runner): absent on records from before runners, i.e. this machine. */
  device?: DeviceInfo;
}

/** Where a run ran: the runner, a host without credentials, and a short hash of its hardware fingerprint. */
export interface DeviceInfo {
  /** The runner's kind: 'local', 'ssh', 'queue'. */
  runner: string;
  /** `local`, `ssh://user@host:port`, `redis://host:port?class=…` (never a password). */
  host: string;
  /** sha256 (16 hex) of the hardware fingerprint's cpu, arch, isa, cores, memory and os. */
  fingerprint: string;
  /** The queue job that produced it (queue runner): the key of its idempotent append. */
  job?: string;
  /** The fleet worker that ran it. */
  worker?: string;
}

/** What a run measured: the workload, every compression section of the method table, and the runtime. */
export type RunConfig = { workload: Recipe['objective']['workload']; runtime: Recipe['runtime'] } & Partial<
  Pick<Recipe, CompressionSectionName>
>;

/**
 * The runtime a record's figures came from, as users read it: "llama.cpp 3.21.1", "onnxruntime 1.30.0"
 * (records from before the runtime seam are onnxruntime's). One line of display text: a record is read
 * back from a folder that may not be the user's (util/sanitize.ts).
 */
export function runtimeLabel(r: Pick<RunRecord, 'runtime' | 'onnxruntime'>): string {
  return lineText(r.runtime ? `${r.runtime.engine} ${r.runtime.version}` : `onnxruntime ${r.onnxruntime}`);
}

// ---------------------------------------------------------------- hashing

/** JSON with object keys sorted and undefined dropped: equal content, equal text, equal hash. */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(sortKeys(v));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = sortKeys(x);
    }
    return out;
  }
  return v;
}

export function sha256(text: string | Uint8Array): string {
  return createHash('sha256').update(text).digest('hex');
}

/** True when the recipe changes the model's weights (anything but the fp32 model itself). */
export function compresses(recipe: Recipe): boolean {
  // A runtime other than onnxruntime needs its own artifact (a GGUF file for llama.cpp), even at full precision.
  const converts = (recipe.runtime.engine ?? 'onnxruntime') !== 'onnxruntime';
  return converts || COMPRESSION_SECTIONS.some((s) => sectionInEffect(sectionDecl(s)!, recipe[s]));
}

/** Whether a compression step reads calibration data (GPTQ, Wanda, static ranges), as the method table says. */
export { usesCalibration } from '../config/methods';

/** The recipe sections that decide the compressed model's bytes (paths made relative to the recipe). */
export function compressionSections(recipe: Recipe): Record<string, unknown> {
  const rel = (p: string | undefined) => (p === undefined ? undefined : path.relative(path.dirname(recipe.file), p));
  // weight_type only shapes the 8-bit-activation paths; its machine-dependent default must not change
  // the key of a weight-only model.
  // Rules sections count when they have rules (an empty one changes nothing).
  const sections: Record<string, unknown> = {};
  for (const s of COMPRESSION_SECTIONS) {
    const d = sectionDecl(s)!;
    sections[s] = d.kind === 'rules' && !sectionInEffect(d, recipe[s]) ? undefined : recipe[s];
  }
  const q = recipe.quantize;
  return {
    ...sections,
    quantize: q && q.activations === 'none' ? { ...q, weight_type: undefined } : q,
    calibration: usesCalibration(recipe) ? { ...recipe.calibration, text: rel(recipe.calibration.text) } : undefined,
    engine: recipe.runtime.engine, // absent for onnxruntime: keys of existing artifacts stay
  };
}

/**
 * Content hash of a recipe as far as a run is concerned: the model it names, the compression sections,
 * the runtime knobs, the provider, the workload and the evaluation settings. Two recipes with the same
 * hash measure the same thing, so the editor can tell whether a record is stale for the text on screen.
 * Comments, key order, defaults written out or left implicit, and the search section do not count.
 */
export function recipeHash(recipe: Recipe): string {
  const rel = (p: string | undefined) => (p === undefined ? undefined : path.relative(path.dirname(recipe.file), p));
  return sha256(
    canonicalJson({
      model: rel(recipe.model),
      ...compressionSections(recipe),
      provider: recipe.target.provider,
      runtime: recipe.runtime,
      workload: recipe.objective.workload,
      evaluation: {
        ...recipe.evaluation,
        text: rel(recipe.evaluation.text),
        tokenizer: rel(recipe.evaluation.tokenizer),
      },
    }),
  );
}

/** The same recipe with every compression section removed: the fp32 model under the same runtime. */
export function fp32Recipe(recipe: Recipe): Recipe {
  const r = structuredClone(recipe);
  for (const s of COMPRESSION_SECTIONS) delete r[s];
  return r;
}

export function runConfig(recipe: Recipe): RunConfig {
  return {
    workload: recipe.objective.workload,
    ...Object.fromEntries(COMPRESSION_SECTIONS.map((s) => [s, recipe[s]])),
    runtime: recipe.runtime,
  };
}

export function newRunId(now = new Date()): string {
  const t = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `${t}-${sha256(`${now.getTime()}${Math.random()}${process.pid}`).slice(0, 8)}`;
}

/** fp32 / this for each figure both sides have. */
export function speedupsOf(m: Metrics, b: BaselineFigures): Speedups {
  const ratio = (base?: number, x?: number) => (base !== undefined && x !== undefined && x > 0 ? base / x : undefined);
  return {
    prefill: ratio(b.prefill_ms?.median, m.prefill_ms?.median),
    decode: ratio(b.decode_ms_per_token?.median, m.decode_ms_per_token?.median),
    inference: ratio(b.inference_ms?.median, m.inference_ms?.median),
    throughput: ratio(m.throughput_tok_s, b.throughput_tok_s),
    size: ratio(b.model_bytes, m.model_bytes),
    paired: b.paired,
  };
}
