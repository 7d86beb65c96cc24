// The one config model: a recipe as the engine uses it, with every default filled in.
// The recipe schema (./recipeSchema, written out as schemas/haqa.schema.json) is the contract for what
// users write; `resolveRecipe` turns a document that passed it into a `Recipe`. The method sections
// (quantize, sparsity, low_rank, runtime) are the method table's (./methods): their types and defaults
// come from its entries. Parsing with positions and diagnostics live in ./parse and ./check.
import * as os from 'node:os';
import * as path from 'node:path';
import { SECTIONS, type SectionDecl } from './methods';
// Type only (erased): `search.agent` names a proposer of the registry; the schema's enum is held to it by a test.
import type { ProposerName } from '../agent/proposers';

// The method sections' types live beside their declarations in the method table.
export type {
  AccuracyLevel,
  Bits,
  BlockSize,
  Engine,
  GgufFileType,
  GgufTensorType,
  GraphOptimization,
  KvCacheType,
  LowRankConfig,
  LowRankRule,
  QuantMethod,
  QuantOverride,
  QuantSettings,
  QuantizeConfig,
  RuntimeConfig,
  SparsityConfig,
  SparsityRule,
  W8WeightType,
} from './methods';
export { DEFAULT_QUANT } from './methods';

export type Metric = 'decode_latency' | 'prefill_latency' | 'throughput' | 'size';
export type Provider = 'cpu' | 'cuda' | 'dml' | 'coreml' | 'webgpu';

/**
 * One member per entry of the method table, typed by its `resolve`: required where the entry is
 * `always` (runtime), optional otherwise (absent: the recipe does not use the method).
 */
type Decls = (typeof SECTIONS)[number];
type Always = SectionDecl<string, unknown, true>;
export type MethodSections = {
  [D in Decls as D extends Always ? D['name'] : never]: ReturnType<D['resolve']>;
} & {
  [D in Decls as D extends Always ? never : D['name']]?: ReturnType<D['resolve']>;
};

export interface Recipe extends MethodSections {
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
    ...resolveSections(doc, threads),
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

/** The method sections of a document, each resolved by its table entry, in table order. */
function resolveSections(doc: any, threads: number): MethodSections {
  const out: Record<string, unknown> = {};
  for (const s of SECTIONS as readonly SectionDecl[]) {
    const part = doc[s.name];
    out[s.name] = part == null && !s.always ? undefined : s.resolve(part ?? {}, { doc, threads });
  }
  return out as MethodSections;
}
/* eslint-enable @typescript-eslint/no-explicit-any */
