// The method table: every recipe section the tuner can turn (the compression methods, and the runtime)
// declares its knobs here, once. The knob names (and the schema's `search.space` pattern, which a unit
// test holds to this table), each knob's value schema (validation, completion and hover text), how a
// knob lands in a recipe (`applyKnobs`) and in a document (`knobEdits`), and the tuner's default space
// all derive from it. What a method does to a layer is compress/methods.ts, keyed by the same ids.
//
// A section is one of three kinds, which is all that the knob language needs to know about it:
// - `settings`: the knob sets the section's field (no layer scope), e.g. `runtime.intra_op_threads`;
// - `overrides`: unscoped, the section's default; `@glob`-scoped, an override `{match: glob, field}`
//   (the last matching override wins), e.g. `quantize.bits@lm_head`;
// - `rules`: a rule `{match: glob ?? '**', field}` replacing the rule with the same match; null,
//   'none' or 0 remove it, e.g. `sparsity.pattern@model.layers.*.mlp.*`.
import type { Layer } from '../model/graph';
import type { SearchValue } from './recipe';

/** A recipe section with knobs (and the name of the record field that stores it: `config.<section>`). */
export type SectionName = 'quantize' | 'sparsity' | 'low_rank' | 'runtime';
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

export interface SectionDecl {
  name: SectionName;
  kind: SectionKind;
  /** The methods this section offers, for editor text and docs. */
  methods: readonly string[];
  /** Rules sections: the section a knob creates when the recipe has none. */
  create?: () => { method: string; rules: never[] };
  /** Fields that are lists of layer globs (`quantize.skip`), besides the `match` of each override or rule. */
  globLists?: readonly string[];
  knobs: readonly KnobDecl[];
}

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

export const SECTIONS: readonly SectionDecl[] = [
  {
    name: 'quantize',
    kind: 'overrides',
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
  },
  {
    name: 'sparsity',
    kind: 'rules',
    methods: ['magnitude', 'wanda'],
    create: () => ({ method: 'magnitude', rules: [] }),
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
  },
  {
    name: 'low_rank',
    kind: 'rules',
    methods: ['svd', 'randomized_svd'],
    create: () => ({ method: 'randomized_svd', rules: [] }),
    knobs: [{ field: 'rank', method: 'low rank', schemaPath: ['rules', '*', 'rank'], coerce: (v) => Number(v) }],
  },
  {
    name: 'runtime',
    kind: 'settings',
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
  },
];

/** The declaration of a recipe section, or undefined (a section without knobs). */
export function sectionDecl(name: unknown): SectionDecl | undefined {
  return SECTIONS.find((s) => s.name === name);
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
