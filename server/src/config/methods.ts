// The method table: every recipe section the tuner can turn (the compression methods, and the runtime)
// declares itself here, once: its JSON Schema (config/recipeSchema.ts builds the recipe schema from the
// table, and schemas/haqa.schema.json is that build written out), its resolved type and defaults (the
// `Recipe` type of config/recipe.ts has one member per entry, typed by its `resolve`), and its knobs. The
// knob names (and the schema's `search.space` pattern), each knob's value schema (validation, completion
// and hover text), how a knob lands in a recipe (`applyKnobs`) and in a document (`knobEdits`), and the
// tuner's default space all derive from it. What a method does to a layer is compress/methods.ts, keyed
// by the same names; which layers a per-layer method's rules reach is config/planner.ts.
//
// A section is one of three kinds, which is all that the knob language needs to know about it:
// - `settings`: the knob sets the section's field (no layer scope), e.g. `runtime.intra_op_threads`;
// - `overrides`: unscoped, the section's default; `@glob`-scoped, an override `{match: glob, field}`
//   (the last matching override wins), e.g. `quantize.bits@lm_head`;
// - `rules`: a rule `{match: glob ?? '**', field}` replacing the rule with the same match; null,
//   'none' or 0 remove it, e.g. `sparsity.pattern@model.layers.*.mlp.*`.
import type { Layer } from '../model/graph';
import { int8Saturates } from '../util/cpu';
import type { SearchValue } from './recipe';

// ---- The sections' types, as the engine sees them once defaults are filled in.

export type Bits = 2 | 3 | 4 | 5 | 6 | 7 | 8 | 32;
export type BlockSize = 16 | 32 | 64 | 128 | 256;
export type AccuracyLevel = 0 | 1 | 2 | 3 | 4;
export type QuantMethod = 'rtn' | 'gptq';
export type GraphOptimization = 'disabled' | 'basic' | 'extended' | 'all';
/** How the 8-bit-activation paths store their int8 weight codes (onnxruntime's weight_type). */
export type W8WeightType = 'int8' | 'uint8';
/** The runtime a recipe's model runs in (bench/runtimes.ts lists them). */
export type Engine = 'onnxruntime' | 'llama.cpp';
/** GGUF tensor types HAQA writes (compress/gguf.ts), and the file types a recipe may ask for. */
export type GgufTensorType = 'F32' | 'F16' | 'Q8_0' | 'Q4_0' | 'Q4_K' | 'Q6_K';
export type GgufFileType = GgufTensorType | 'Q4_K_M';
/** llama.cpp's KV-cache element types (type_k / type_v). */
export type KvCacheType = 'f32' | 'f16' | 'q8_0' | 'q4_0';

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

export interface QuantizeConfig extends QuantSettings {
  activations: 'none' | 'dynamic' | 'static';
  /** Weight type of the 8-bit-activation paths (default: uint8 where u8×s8 kernels saturate, util/cpu.ts). */
  weight_type: W8WeightType;
  skip: string[];
  overrides: QuantOverride[];
  /** llama.cpp engine: the GGUF type of the exported weights (default Q4_K_M). */
  gguf_type?: GgufFileType;
}

export interface SparsityRule {
  match: string;
  pattern?: string;
  ratio?: number;
}
export interface SparsityConfig {
  method: 'magnitude' | 'wanda';
  rules: SparsityRule[];
}

/** What sparsity asks of a layer: keep `n` of every `m` weights along K, or zero a `ratio` of them. */
export type SparsityPlan = { n: number; m: number } | { ratio: number };

export interface LowRankRule {
  match: string;
  rank: number;
}
export interface LowRankConfig {
  method: 'svd' | 'randomized_svd';
  rules: LowRankRule[];
}

/** What low rank asks of a layer. */
export interface LowRankPlan {
  rank: number;
}

export interface RuntimeConfig {
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
}

export const DEFAULT_QUANT: QuantSettings = {
  method: 'rtn',
  bits: 4,
  block_size: 32,
  symmetric: true,
  accuracy_level: 0,
};

/** uint8 weights where this CPU's u8×s8 int8 kernels saturate (x86 without VNNI), int8 elsewhere. */
export function defaultWeightType(): W8WeightType {
  return int8Saturates() ? 'uint8' : 'int8';
}

export type SectionKind = 'settings' | 'overrides' | 'rules';

/** What a knob's default search values may depend on. */
export interface SpaceDefaultsContext {
  /** Layers compression can act on (not MatMulNBits). */
  quantizable: readonly Layer[];
  cores: number;
}

export interface KnobDecl {
  field: string;
  /** Which method of the section the knob belongs to (editor text and docs). */
  method: string;
  /** Schema path of the value (under the section, or under one of its rules / overrides). */
  schemaPath?: readonly (string | number)[];
  /** A value schema of its own, where the recipe has no field to point at (`quantize.skip@glob`). */
  schema?: { type: string; description: string };
  /** `required`: only `knob@glob` makes sense; `never`: the knob takes no scope. */
  scope?: 'required' | 'never';
  /** Rules: fields of the same rule that this one replaces (a rule holds a pattern or a ratio). */
  excludes?: readonly string[];
  /** Rules: how the value is stored. */
  coerce?: (v: SearchValue) => SearchValue;
  /** Values of the unscoped knob in the tuner's default space; undefined: not in it. */
  spaceDefault?: (ctx: SpaceDefaultsContext) => SearchValue[] | undefined;
}

/** What a section's `resolve` may read besides its own part of the document. */
export interface ResolveContext {
  /* eslint-disable-next-line @typescript-eslint/no-explicit-any */
  doc: any;
  /** target.threads, or this machine's cores. */
  threads: number;
}

/* eslint-disable @typescript-eslint/no-explicit-any */
/**
 * What a rules section asks of each layer, for the one planner (config/planner.ts): the last matching
 * rule sets the layer plan's `key` (and `<key>Rule`, the index of that rule).
 */
export interface RulePlanDecl<K extends string = string, V = any> {
  key: K;
  /** What a matching rule asks, given what an earlier matching rule asked (undefined: none). */
  fromRule(rule: any, previous: V | undefined): V | undefined;
  /** Short text of it for hovers and the results view (`2:4`, `rank 8`). */
  label(value: V): string;
}

/**
 * A recipe section with knobs. `N` is its name (and the record field that stores it: `config.<name>`),
 * `T` its resolved type, `A` whether every recipe has it (absent from the document, `resolve({})`),
 * `K` its kind, `P` (rules sections) what its rules ask of a layer.
 */
export interface SectionDecl<
  N extends string = string,
  T = unknown,
  A extends boolean = boolean,
  K extends SectionKind = SectionKind,
  P extends RulePlanDecl | undefined = RulePlanDecl | undefined,
> {
  name: N;
  kind: K;
  /** Present in every resolved recipe (otherwise only when the document has the section). */
  always?: A;
  /** The section's JSON Schema (with `$ref`s to the recipe schema's definitions). */
  schema: any;
  /** Definitions the section brings to the recipe schema (`#/definitions/<name>`). */
  definitions?: Record<string, any>;
  /** The section with every default filled in, from a document that passed the schema. */
  resolve(section: any, ctx: ResolveContext): T;
  /** Rules sections: what a matching rule asks of a layer (the planner's entry for it). */
  layerPlan?: P;
  /** Whether the resolved section reads calibration activations (GPTQ, Wanda, static ranges). */
  usesCalibration?(value: T): boolean;
  /** The methods this section offers, for editor text and docs. */
  methods: readonly string[];
  /** Fields that are lists of layer globs (`quantize.skip`), besides the `match` of each override or rule. */
  globLists?: readonly string[];
  knobs: readonly KnobDecl[];
}
/* eslint-enable @typescript-eslint/no-explicit-any */

/** Block sizes MatMulNBits takes. */
export const BLOCK_SIZES = [16, 32, 64, 128, 256] as const;

/** Block sizes (16..256) that divide the K of every given layer. */
export function commonBlockSizes(layers: readonly Layer[]): number[] {
  return BLOCK_SIZES.filter((b) => layers.every((l) => l.K % b === 0));
}

/** Intra-op thread counts worth trying on a machine with `cores` cores. */
export function threadValues(cores: number): number[] {
  if (cores <= 8) return Array.from({ length: cores }, (_, i) => i + 1);
  const v = [1, 2, 4];
  for (let t = 8; t < cores; t *= 2) v.push(t);
  v.push(cores);
  return v;
}

const removes = (v: SearchValue) => v === null || v === 'none' || v === 0;

/**
 * A table entry, typed by its name, resolved type, kind, presence and planner entry (the `Recipe` and
 * `LayerPlan` types read them). Give `resolve` a return type and the entry's other functions typed
 * parameters: TypeScript infers the section's type from them, and an untyped one leaves it `{}`.
 */
function section<
  const N extends string,
  T,
  const K extends SectionKind,
  const A extends boolean = false,
  const P extends RulePlanDecl | undefined = undefined,
>(d: SectionDecl<N, T, A, K, P>) {
  return d;
}

/** `n:m` with 1 ≤ n < m, or undefined. */
export function parseNM(pattern: string): { n: number; m: number } | undefined {
  const mm = /^(\d+):(\d+)$/.exec(pattern);
  if (!mm) return undefined;
  const n = Number(mm[1]);
  const m = Number(mm[2]);
  return n >= 1 && m >= 2 && n < m ? { n, m } : undefined;
}

// ---- The sections' schemas (descriptions are the editor's hover and completion text).

const QUANTIZE_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  description:
    'Weight quantization: defaults for every layer, then overrides by pattern (the last matching override wins).',
  properties: {
    method: { $ref: '#/definitions/quantMethod' },
    bits: { $ref: '#/definitions/bits' },
    block_size: { $ref: '#/definitions/blockSize' },
    symmetric: { type: 'boolean', description: 'Symmetric quantization (no zero points).' },
    accuracy_level: { $ref: '#/definitions/accuracyLevel' },
    activations: {
      enum: ['none', 'dynamic', 'static'],
      description:
        '8-bit activations: `dynamic` (DynamicQuantizeLinear + MatMulInteger) or `static` (QDQ ' +
        'with calibrated ranges). Applies to layers kept at 8 bits or in float.',
    },
    weight_type: {
      enum: ['int8', 'uint8'],
      description:
        "With 8-bit activations: the type of the per-channel weights (onnxruntime's " +
        "weight_type). On x86 CPUs without VNNI, onnxruntime's u8×int8 kernels add pairs of " +
        'products in 16 bits, which saturates for full-range weights and costs accuracy; with ' +
        '`uint8` weights (zero point 128) it takes a kernel that cannot overflow. Default: ' +
        '`uint8` on such CPUs, `int8` elsewhere.',
    },
    skip: { type: 'array', items: { $ref: '#/definitions/glob' }, description: 'Layers left in float.' },
    overrides: { type: 'array', items: { $ref: '#/definitions/override' } },
    gguf_type: {
      enum: ['F32', 'F16', 'Q8_0', 'Q4_0', 'Q4_K', 'Q6_K', 'Q4_K_M'],
      description:
        'runtime.engine llama.cpp: the GGUF type of the exported weights (default Q4_K_M: Q4_K, ' +
        'with Q6_K for the output head and for attn_v/ffn_down in the layers llama.cpp gives ' +
        'more bits). Norms stay F32; skip and overrides apply per tensor.',
    },
  },
};
const SPARSITY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  description: 'Pruning of weights, per pattern.',
  properties: {
    method: {
      enum: ['magnitude', 'wanda'],
      description: '`magnitude`: smallest |w|. `wanda`: smallest |w|·‖x‖ using calibration activations.',
    },
    rules: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['match'],
        properties: {
          match: { $ref: '#/definitions/glob' },
          pattern: {
            type: 'string',
            pattern: '^\\d+:\\d+$',
            description:
              'N:M structured sparsity: keep (at most) N non-zero weights in every M consecutive ' +
              'input weights, e.g. `2:4`.',
          },
          ratio: {
            type: 'number',
            exclusiveMinimum: 0,
            exclusiveMaximum: 1,
            description: 'Unstructured sparsity: share of weights set to zero.',
          },
        },
      },
    },
  },
};
const LOW_RANK_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  description: 'Replace a layer W (K×N) by two of rank r: W ≈ A·B with A K×r and B r×N.',
  properties: {
    method: {
      enum: ['svd', 'randomized_svd'],
      description: 'Truncated SVD, exact or randomized (faster on large layers).',
    },
    rules: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['match', 'rank'],
        properties: {
          match: { $ref: '#/definitions/glob' },
          rank: { type: 'integer', minimum: 1, description: 'Rank r. Saves work only while r·(K+N) < K·N.' },
        },
      },
    },
  },
};
const RUNTIME_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  description:
    "The runtime that runs the model (engine) and its options: onnxruntime's session " +
    "options, or llama.cpp's under `llama`.",
  properties: {
    intra_op_threads: {
      type: 'integer',
      minimum: 1,
      maximum: 1024,
      description: 'Threads inside one operator (defaults to target.threads).',
    },
    inter_op_threads: {
      type: 'integer',
      minimum: 1,
      maximum: 1024,
      description: 'Threads across operators (parallel execution mode only).',
    },
    graph_optimization: {
      enum: ['disabled', 'basic', 'extended', 'all'],
      description: 'onnxruntime graph optimisation level.',
    },
    execution_mode: { enum: ['sequential', 'parallel'] },
    engine: {
      enum: ['onnxruntime', 'llama.cpp'],
      description:
        'Which runtime runs the model (default onnxruntime). llama.cpp runs a GGUF file HAQA ' +
        'exports from the same source model (quantize.gguf_type); accuracy is scored against ' +
        "onnxruntime's fp32 on the same text and tokenizer.",
    },
    llama: {
      type: 'object',
      additionalProperties: false,
      description: "llama.cpp's knobs (runtime.engine llama.cpp).",
      properties: {
        threads: {
          type: 'integer',
          minimum: 1,
          maximum: 1024,
          description: 'Threads llama.cpp evaluates with (defaults to intra_op_threads).',
        },
        batch_size: {
          type: 'integer',
          minimum: 1,
          maximum: 65536,
          description: 'Logical batch: tokens per llama.cpp evaluation call (default: the context size, at least 512).',
        },
        ubatch_size: {
          type: 'integer',
          minimum: 1,
          maximum: 65536,
          description:
            'Physical batch. node-llama-cpp 3.21 sets it from batch_size; accepted for parity, not passed on.',
        },
        flash_attention: { type: 'boolean', description: "llama.cpp's flash-attention kernels (default false)." },
        type_k: {
          enum: ['f32', 'f16', 'q8_0', 'q4_0'],
          description: "Element type of the KV cache's keys (quantized types save memory and bandwidth).",
        },
        type_v: {
          enum: ['f32', 'f16', 'q8_0', 'q4_0'],
          description: "Element type of the KV cache's values (quantized types need flash_attention).",
        },
      },
    },
  },
};
const QUANTIZE_DEFINITIONS = {
  bits: {
    enum: [2, 3, 4, 5, 6, 7, 8, 32],
    description: 'Weight bit-width. 4 and 8 run as MatMulNBits on the CPU provider; 32 keeps the layer in float.',
  },
  blockSize: {
    enum: [16, 32, 64, 128, 256],
    description:
      'Number of consecutive input features that share one scale (MatMulNBits `block_size`). ' +
      "Must divide the layer's K.",
  },
  accuracyLevel: {
    enum: [0, 1, 2, 3, 4],
    description:
      'MatMulNBits `accuracy_level`: the compute type of the kernel. 0 = default (fp32 ' +
      'compute), 1 = fp32, 2 = fp16, 3 = bf16, 4 = int8 (quantizes activations on the fly; ' +
      'fastest on CPUs with AVX2).',
  },
  quantMethod: {
    enum: ['rtn', 'gptq'],
    description: '`rtn`: round to nearest. `gptq`: error-compensating quantization using calibration activations.',
  },
  override: {
    type: 'object',
    additionalProperties: false,
    required: ['match'],
    properties: {
      match: { $ref: '#/definitions/glob' },
      bits: { $ref: '#/definitions/bits' },
      block_size: { $ref: '#/definitions/blockSize' },
      symmetric: { type: 'boolean', description: 'Symmetric quantization (no zero points).' },
      accuracy_level: { $ref: '#/definitions/accuracyLevel' },
      method: { $ref: '#/definitions/quantMethod' },
      skip: { type: 'boolean', description: 'Leave the matching layers in float.' },
      gguf_type: {
        enum: ['F32', 'F16', 'Q8_0', 'Q4_0', 'Q4_K', 'Q6_K'],
        description:
          "runtime.engine llama.cpp: the GGUF type of the matched tensors, as llama.cpp's " +
          '--tensor-type. Q4_K and Q6_K need rows that are a multiple of 256 (otherwise Q8_0, then ' +
          'F16).',
      },
    },
  },
};

// ---- The table.

export const SECTIONS = [
  section({
    name: 'quantize',
    kind: 'overrides',
    schema: QUANTIZE_SCHEMA,
    definitions: QUANTIZE_DEFINITIONS,
    usesCalibration: (q: QuantizeConfig) =>
      q.method === 'gptq' || q.overrides.some((o) => o.method === 'gptq') || q.activations === 'static',
    resolve: (q, { doc }): QuantizeConfig => ({
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
    }),
    methods: ['rtn', 'gptq', 'dynamic activations', 'static activations', 'gguf'],
    globLists: ['skip'],
    knobs: [
      { field: 'bits', method: 'weight quantization', schemaPath: ['bits'], spaceDefault: () => [4, 8, 32] },
      {
        field: 'block_size',
        method: 'weight quantization',
        schemaPath: ['block_size'],
        spaceDefault: (c) => {
          const b = commonBlockSizes(c.quantizable);
          return b.length ? b : undefined;
        },
      },
      {
        field: 'accuracy_level',
        method: 'weight quantization',
        schemaPath: ['accuracy_level'],
        spaceDefault: () => [0, 4],
      },
      {
        field: 'symmetric',
        method: 'weight quantization',
        schemaPath: ['symmetric'],
        spaceDefault: () => [true, false],
      },
      { field: 'method', method: 'weight quantization', schemaPath: ['method'] },
      { field: 'activations', method: 'activation quantization', schemaPath: ['activations'] },
      {
        field: 'skip',
        method: 'weight quantization',
        scope: 'required',
        schema: { type: 'boolean', description: 'Leave the matching layers in float.' },
      },
      // llama.cpp's weight types (runtime.engine: llama.cpp); ignored by onnxruntime (config/runtimeCheck.ts says so).
      { field: 'gguf_type', method: 'GGUF quantization', schemaPath: ['gguf_type'] },
    ],
  }),
  section({
    name: 'sparsity',
    kind: 'rules',
    schema: SPARSITY_SCHEMA,
    usesCalibration: (s: SparsityConfig) => s.method === 'wanda' && s.rules.length > 0,
    resolve: (s): SparsityConfig => ({
      method: s.method ?? 'magnitude',
      rules: (s.rules ?? []).map((r: SparsityRule) => ({ ...r })),
    }),
    // A pattern that does not parse leaves what an earlier rule asked.
    layerPlan: {
      key: 'sparsity',
      fromRule: (r: SparsityRule, previous: SparsityPlan | undefined) =>
        (r.pattern ? parseNM(r.pattern) : undefined) ?? (r.ratio !== undefined ? { ratio: r.ratio } : previous),
      label: (v: SparsityPlan) => ('n' in v ? `${v.n}:${v.m}` : `${Math.round(v.ratio * 100)}% sparse`),
    },
    methods: ['magnitude', 'wanda'],
    knobs: [
      {
        field: 'pattern',
        method: 'N:M sparsity',
        schemaPath: ['rules', '*', 'pattern'],
        excludes: ['ratio'],
        coerce: (v) => String(v),
      },
      {
        field: 'ratio',
        method: 'unstructured sparsity',
        schemaPath: ['rules', '*', 'ratio'],
        excludes: ['pattern'],
        coerce: (v) => Number(v),
      },
    ],
  }),
  section({
    name: 'low_rank',
    kind: 'rules',
    schema: LOW_RANK_SCHEMA,
    resolve: (s): LowRankConfig => ({
      method: s.method ?? 'randomized_svd',
      rules: (s.rules ?? []).map((r: LowRankRule) => ({ ...r })),
    }),
    layerPlan: {
      key: 'lowRank',
      fromRule: (r: LowRankRule): LowRankPlan => ({ rank: r.rank }),
      label: (v: LowRankPlan) => `rank ${v.rank}`,
    },
    methods: ['svd', 'randomized_svd'],
    knobs: [{ field: 'rank', method: 'low rank', schemaPath: ['rules', '*', 'rank'], coerce: (v) => Number(v) }],
  }),
  section({
    name: 'runtime',
    kind: 'settings',
    always: true,
    schema: RUNTIME_SCHEMA,
    resolve: (rt, { threads }): RuntimeConfig => ({
      intra_op_threads: rt?.intra_op_threads ?? threads,
      inter_op_threads: rt?.inter_op_threads ?? 1,
      graph_optimization: rt?.graph_optimization ?? 'all',
      execution_mode: rt?.execution_mode ?? 'sequential',
      ...(rt?.engine ? { engine: rt.engine } : {}),
      ...(rt?.llama ? { llama: { ...rt.llama } } : {}),
    }),
    methods: ['onnxruntime session options', 'runtime choice'],
    knobs: [
      {
        field: 'intra_op_threads',
        method: 'session',
        schemaPath: ['intra_op_threads'],
        scope: 'never',
        spaceDefault: (c) => (c.cores > 1 ? threadValues(c.cores) : undefined),
      },
      { field: 'inter_op_threads', method: 'session', schemaPath: ['inter_op_threads'], scope: 'never' },
      { field: 'graph_optimization', method: 'session', schemaPath: ['graph_optimization'], scope: 'never' },
      { field: 'execution_mode', method: 'session', schemaPath: ['execution_mode'], scope: 'never' },
      // Which runtime runs the model (bench/runtimes.ts); not in the
      // default space: a recipe that names llama.cpp opts in.
      { field: 'engine', method: 'runtime', schemaPath: ['engine'], scope: 'never' },
    ],
  }),
] as const;

type Decls = (typeof SECTIONS)[number];
/** A recipe section with knobs: a name of the table. */
export type SectionName = Decls['name'];
/** The sections that change the model's weights (every kind but `settings`). */
export type CompressionSectionName = Extract<Decls, { kind: 'overrides' | 'rules' }>['name'];
export const COMPRESSION_SECTIONS = (SECTIONS as readonly SectionDecl[])
  .filter((s) => s.kind !== 'settings')
  .map((s) => s.name) as readonly CompressionSectionName[];

/** The rules sections' planner entries, in table order. */
export const RULE_PLANS: readonly { section: SectionName; plan: RulePlanDecl }[] = (
  SECTIONS as readonly SectionDecl[]
).flatMap((s) => (s.layerPlan ? [{ section: s.name as SectionName, plan: s.layerPlan }] : []));
// What each rules section's planner entry puts on a layer plan (`sparsity`, `lowRank`), typed by the table.
// (Helpers with a bare type parameter, so a section without a planner entry maps to no key at all.)
type PlanOf<D> = D extends { layerPlan?: infer P } ? Exclude<P, undefined> : never;
type PlanKey<P> = P extends RulePlanDecl<infer K> ? K : never;
type PlanValue<P> = P extends RulePlanDecl<string, infer V> ? V : never;
export type RulePlans = { [D in Decls as PlanKey<PlanOf<D>>]?: PlanValue<PlanOf<D>> };

/** Whether a compression step of these (resolved) sections reads calibration data, as each entry says. */
export function usesCalibration(sections: object): boolean {
  const values = sections as Record<string, unknown>;
  return (SECTIONS as readonly SectionDecl[]).some(
    (s) => values[s.name] != null && s.usesCalibration?.(values[s.name]),
  );
}

/** Whether a resolved section changes the model: an overrides section by being there, rules by having some. */
export function sectionInEffect(s: SectionDecl, value: unknown): boolean {
  if (value === undefined || value === null) return false;
  if (s.kind === 'rules') return ((value as { rules?: unknown[] }).rules?.length ?? 0) > 0;
  return s.kind === 'overrides';
}

/** The declaration of a recipe section, or undefined (a section without knobs). */
export function sectionDecl(name: unknown): SectionDecl | undefined {
  return (SECTIONS as readonly SectionDecl[]).find((s) => s.name === name);
}

/** Where a section's layer globs are written: its glob-list fields, and the list whose entries have a `match`. */
export function globFields(s: SectionDecl): { lists: readonly string[]; matchIn?: 'overrides' | 'rules' } {
  return { lists: s.globLists ?? [], matchIn: s.kind === 'settings' ? undefined : s.kind };
}

export interface ResolvedKnob {
  section: SectionDecl;
  knob: KnobDecl;
  name: string;
}

const byName = new Map<string, ResolvedKnob>();
for (const section of SECTIONS) {
  for (const knob of section.knobs)
    byName.set(`${section.name}.${knob.field}`, { section, knob, name: `${section.name}.${knob.field}` });
}

/** Every knob name (`quantize.bits`), in table order. */
export const KNOB_NAMES: readonly string[] = [...byName.keys()];

/** The declaration of a knob path (`quantize.bits`, without `@scope`), or undefined. */
export function knobDecl(path: string): ResolvedKnob | undefined {
  return byName.get(path);
}

/** Whether a value removes a rule (rules sections only): null, 'none' or 0. */
export function removesRule(r: ResolvedKnob, value: unknown): boolean {
  return r.section.kind === 'rules' && removes(value as SearchValue);
}

/** The schema path of a knob's value in the recipe schema, or undefined when the knob has its own schema. */
export function knobSchemaPath(r: ResolvedKnob): (string | number)[] | undefined {
  return r.knob.schemaPath && [r.section.name, ...r.knob.schemaPath];
}

/** The `search.space` propertyNames pattern the table implies (schemas/haqa.schema.json must say the same). */
export function knobNamePattern(): string {
  const parts = SECTIONS.map((s) => {
    const fields = s.knobs.map((k) => k.field);
    return fields.length === 1 ? `${s.name}\\.${fields[0]}` : `${s.name}\\.(${fields.join('|')})`;
  });
  return `^(${parts.join('|')})(@.+)?$`;
}

/** Why a knob's scope is wrong for it, or undefined (`placeholder` names the glob in the message). */
export function scopeError(r: ResolvedKnob, scope: string | undefined, placeholder = 'pattern'): string | undefined {
  if (r.knob.scope === 'required' && scope === undefined)
    return `${r.name} needs a layer scope (${r.name}@${placeholder})`;
  if (r.knob.scope === 'never' && scope !== undefined)
    return `${r.section.name} knobs apply to the whole session and take no @scope`;
  return undefined;
}

/** The tuner's default values of every unscoped knob that has some, in table order. */
export function defaultKnobValues(ctx: SpaceDefaultsContext): { knob: string; values: SearchValue[] }[] {
  const out: { knob: string; values: SearchValue[] }[] = [];
  for (const r of byName.values()) {
    const values = r.knob.spaceDefault?.(ctx);
    if (values) out.push({ knob: r.name, values });
  }
  return out;
}
