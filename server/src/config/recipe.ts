// The one config model: a recipe as the engine uses it, with every default filled in.
// `schemas/haqa.schema.json` is the contract for what users write; `resolveRecipe` turns a document
// that passed it into a `Recipe`. Parsing with positions and diagnostics live in ./parse and ./check.
import * as os from 'node:os';
import * as path from 'node:path';
import { int8Saturates } from '../util/cpu';
// Type only (erased): `search.agent` names a proposer of the registry; the schema's enum is held to it by a test.
import type { ProposerName } from '../agent/proposers';

export type Bits = 2 | 3 | 4 | 5 | 6 | 7 | 8 | 32;
export type BlockSize = 16 | 32 | 64 | 128 | 256;
export type AccuracyLevel = 0 | 1 | 2 | 3 | 4;
export type QuantMethod = 'rtn' | 'gptq';
export type Metric = 'decode_latency' | 'prefill_latency' | 'throughput' | 'size';
export type Provider = 'cpu' | 'cuda' | 'dml' | 'coreml' | 'webgpu';
export type GraphOptimization = 'disabled' | 'basic' | 'extended' | 'all';

/** How the 8-bit-activation paths store their int8 weight codes (onnxruntime's weight_type). */
export type W8WeightType = 'int8' | 'uint8';

export interface QuantSettings {
  method: QuantMethod;
  bits: Bits;
  block_size: BlockSize;
  symmetric: boolean;
  accuracy_level: AccuracyLevel;
}

export interface QuantOverride extends Partial<QuantSettings> {
  match: string;
  skip?: boolean;
  /** llama.cpp engine: this tensor's GGUF type (as llama.cpp's --tensor-type). */
  gguf_type?: GgufTensorType;
}

/** The runtime a recipe's model runs in (bench/runtimes.ts lists them). */
export type Engine = 'onnxruntime' | 'llama.cpp';
/** GGUF tensor types HAQA writes (compress/gguf.ts), and the file types a recipe may ask for. */
export type GgufTensorType = 'F32' | 'F16' | 'Q8_0' | 'Q4_0' | 'Q4_K' | 'Q6_K';
export type GgufFileType = GgufTensorType | 'Q4_K_M';
/** llama.cpp's KV-cache element types (type_k / type_v). */
export type KvCacheType = 'f32' | 'f16' | 'q8_0' | 'q4_0';

export interface SparsityRule {
  match: string;
  pattern?: string;
  ratio?: number;
}
export interface LowRankRule {
  match: string;
  rank: number;
}

export interface Recipe {
  version: 1;
  /** Absolute path of the recipe file (paths in it resolve against its folder). */
  file: string;
  /** Absolute path of the model. */
  model: string;
  target: { provider: Provider; threads: number; memory_limit?: number; host?: string };
  objective: {
    metric: Metric;
    workload: { prompt_length: number; decode_tokens: number; batch: number };
    accuracy: { max_ppl_increase: number; min_top1_agreement?: number; max_kl?: number };
  };
  /** Absent: the model's weights stay in float. */
  quantize?: QuantSettings & {
    activations: 'none' | 'dynamic' | 'static';
    /** Weight type of the 8-bit-activation paths (default: uint8 where u8×s8 kernels saturate, util/cpu.ts). */
    weight_type: W8WeightType;
    skip: string[];
    overrides: QuantOverride[];
    /** llama.cpp engine: the GGUF type of the exported weights (default Q4_K_M). */
    gguf_type?: GgufFileType;
  };
  sparsity?: { method: 'magnitude' | 'wanda'; rules: SparsityRule[] };
  low_rank?: { method: 'svd' | 'randomized_svd'; rules: LowRankRule[] };
  runtime: {
    intra_op_threads: number;
    inter_op_threads: number;
    graph_optimization: GraphOptimization;
    execution_mode: 'sequential' | 'parallel';
    /**
     * Which runtime runs the model; absent means onnxruntime (kept absent, so the hashes of recipes
     * that don't name one stay what they were). `llama` holds llama.cpp's knobs.
     */
    engine?: Engine;
    llama?: {
      threads?: number;
      batch_size?: number;
      ubatch_size?: number;
      flash_attention?: boolean;
      type_k?: KvCacheType;
      type_v?: KvCacheType;
    };
  };
  calibration: { text?: string; samples: number; seq_len: number };
  evaluation: { text?: string; tokenizer?: string; window: number; max_windows?: number };
  search: {
    agent: ProposerName;
    trials: number;
    minutes?: number;
    seed: number;
    tolerance: number;
    space: Record<string, SearchValue[]>;
  };
}

export type SearchValue = number | string | boolean | null;

export const DEFAULT_QUANT: QuantSettings = {
  method: 'rtn',
  bits: 4,
  block_size: 32,
  symmetric: true,
  accuracy_level: 0,
};

/** A quantize section with every default: what a recipe without one gets when a knob sets quantization. */
export function defaultQuantize(): NonNullable<Recipe['quantize']> {
  return { ...DEFAULT_QUANT, activations: 'none', weight_type: defaultWeightType(), skip: [], overrides: [] };
}

/** uint8 weights where this CPU's u8×s8 int8 kernels saturate (x86 without VNNI), int8 elsewhere. */
function defaultWeightType(): W8WeightType {
  return int8Saturates() ? 'uint8' : 'int8';
}

/** Parse `4GiB`, `512 MB` or a byte count. */
export function parseBytes(v: number | string): number {
  if (typeof v === 'number') return v;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$/.exec(v);
  if (!m) throw new Error(`not a size: ${v}`);
  const unit: Record<string, number> = {
    B: 1,
    KB: 1e3,
    MB: 1e6,
    GB: 1e9,
    TB: 1e12,
    KiB: 1024,
    MiB: 1024 ** 2,
    GiB: 1024 ** 3,
    TiB: 1024 ** 4,
  };
  return Math.round(Number(m[1]) * unit[m[2]]);
}

/** `5%` → 0.05; a number is already a fraction. */
export function parseFraction(v: number | string): number {
  if (typeof v === 'number') return v;
  return Number(v.trim().replace(/%$/, '')) / 100;
}

/* eslint-disable @typescript-eslint/no-explicit-any */
/**
 * Fill in defaults for a document that passed the schema. `file` is the recipe's path; relative
 * paths inside become absolute. Throws only on input the schema would have refused.
 */
export function resolveRecipe(doc: any, file: string): Recipe {
  const dir = path.dirname(path.resolve(file));
  const abs = (p: string | undefined) => (p === undefined ? undefined : path.resolve(dir, p));
  const threads = doc.target?.threads ?? Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
  const q = doc.quantize;
  return {
    version: 1,
    file: path.resolve(file),
    model: abs(doc.model)!,
    target: {
      provider: doc.target?.provider ?? 'cpu',
      threads,
      memory_limit: doc.target?.memory_limit !== undefined ? parseBytes(doc.target.memory_limit) : undefined,
      host: doc.target?.host,
    },
    objective: {
      metric: doc.objective?.metric ?? 'decode_latency',
      workload: {
        prompt_length: doc.objective?.workload?.prompt_length ?? 64,
        decode_tokens: doc.objective?.workload?.decode_tokens ?? 32,
        batch: doc.objective?.workload?.batch ?? 1,
      },
      accuracy: {
        max_ppl_increase: parseFraction(doc.objective?.accuracy?.max_ppl_increase ?? 0.05),
        min_top1_agreement: doc.objective?.accuracy?.min_top1_agreement,
        max_kl: doc.objective?.accuracy?.max_kl,
      },
    },
    quantize: q
      ? {
          method: q.method ?? DEFAULT_QUANT.method,
          bits: q.bits ?? DEFAULT_QUANT.bits,
          block_size: q.block_size ?? DEFAULT_QUANT.block_size,
          symmetric: q.symmetric ?? DEFAULT_QUANT.symmetric,
          accuracy_level: q.accuracy_level ?? DEFAULT_QUANT.accuracy_level,
          activations: q.activations ?? 'none',
          weight_type: q.weight_type ?? defaultWeightType(),
          skip: [...(q.skip ?? [])],
          overrides: (q.overrides ?? []).map((o: QuantOverride) => ({ ...o })),
          ...(q.gguf_type !== undefined || doc.runtime?.engine === 'llama.cpp'
            ? { gguf_type: q.gguf_type ?? 'Q4_K_M' }
            : {}),
        }
      : undefined,
    sparsity: doc.sparsity
      ? {
          method: doc.sparsity.method ?? 'magnitude',
          rules: (doc.sparsity.rules ?? []).map((r: SparsityRule) => ({ ...r })),
        }
      : undefined,
    low_rank: doc.low_rank
      ? {
          method: doc.low_rank.method ?? 'randomized_svd',
          rules: (doc.low_rank.rules ?? []).map((r: LowRankRule) => ({ ...r })),
        }
      : undefined,
    runtime: {
      intra_op_threads: doc.runtime?.intra_op_threads ?? threads,
      inter_op_threads: doc.runtime?.inter_op_threads ?? 1,
      graph_optimization: doc.runtime?.graph_optimization ?? 'all',
      execution_mode: doc.runtime?.execution_mode ?? 'sequential',
      ...(doc.runtime?.engine ? { engine: doc.runtime.engine } : {}),
      ...(doc.runtime?.llama ? { llama: { ...doc.runtime.llama } } : {}),
    },
    calibration: {
      text: abs(doc.calibration?.text),
      samples: doc.calibration?.samples ?? 8,
      seq_len: doc.calibration?.seq_len ?? 64,
    },
    evaluation: {
      text: abs(doc.evaluation?.text),
      tokenizer: abs(doc.evaluation?.tokenizer),
      window: doc.evaluation?.window ?? 128,
      max_windows: doc.evaluation?.max_windows,
    },
    search: {
      agent: doc.search?.agent ?? 'offline',
      trials: doc.search?.trials ?? 12,
      minutes: doc.search?.minutes,
      seed: doc.search?.seed ?? 0,
      tolerance: doc.search?.tolerance ?? 0.03,
      space: { ...(doc.search?.space ?? {}) },
    },
  };
}
/* eslint-enable @typescript-eslint/no-explicit-any */
