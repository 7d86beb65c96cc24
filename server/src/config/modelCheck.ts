// What the benchmark will need, checked before it runs: the config.json beside the model against the
// graph (KV heads, head_dim, layers, vocabulary), and the tokenizer's vocabulary against the model's.
// Each disagreement here is a run that would otherwise fail inside onnxruntime with "Got invalid
// dimensions for input: past_key_values.0.key" or "Gather … idx=665 must be within the inclusive range".
// The graph's own shapes are the truth (they are what onnxruntime runs); config.json is what to fix.
// Used by the recipe check (check.ts) and, for the run-time rule "the graph wins", by bench/run.ts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ModelGraph } from '../model/graph';
import { architectureFromConfig, familyOfArch, ModelArchitecture } from './hfConfig';
import { readRegularTextSync, READ_CAPS } from '../util/paths';
import { diag } from './diagnostics';
import { JsonPath, rangeOf } from './parse';
import type { RecipeAnalysis } from './check';

/** The numbers the benchmark depends on, as the graph itself fixes them (static dims only). */
export interface GraphShapes {
  kvHeads?: number;
  headDim?: number;
  layers?: number;
  vocab?: number;
  /** Where each number was read, for messages (`past_key_values.0.key dim 1`). */
  witness: Partial<Record<'kvHeads' | 'headDim' | 'layers' | 'vocab', string>>;
}

const staticDim = (d: number | string | undefined): number | undefined =>
  typeof d === 'number' && d > 0 ? d : undefined;

export function graphShapes(g: Pick<ModelGraph, 'inputs' | 'outputs' | 'layers'>): GraphShapes {
  const s: GraphShapes = { witness: {} };
  const past = g.inputs.find((i) => i.name === 'past_key_values.0.key');
  if (past && past.shape.length === 4) {
    s.kvHeads = staticDim(past.shape[1]);
    s.headDim = staticDim(past.shape[3]);
    if (s.kvHeads) s.witness.kvHeads = 'past_key_values.0.key dim 1';
    if (s.headDim) s.witness.headDim = 'past_key_values.0.key dim 3';
  }
  const layers = g.inputs.filter((i) => /^past_key_values\.\d+\.key$/.test(i.name)).length;
  if (layers) {
    s.layers = layers;
    s.witness.layers = 'past_key_values.<i>.key inputs';
  }
  const logits = g.outputs.find((o) => o.name === 'logits');
  const fromLogits = staticDim(logits?.shape[logits.shape.length - 1]);
  const head = g.layers.find((l) => l.name === 'lm_head');
  s.vocab = fromLogits ?? head?.N;
  if (s.vocab) s.witness.vocab = fromLogits ? 'logits last dim' : 'lm_head N';
  return s;
}

export interface ConfigMismatch {
  /** config.json key to fix. */
  key: string;
  config: number;
  graph: number;
  witness: string;
  /** 1-based line of the key in config.json, when found. */
  line?: number;
}

/** 1-based line of `"key":` in JSON text (first occurrence), for messages that say where to fix. */
export function keyLine(text: string, key: string): number | undefined {
  const m = new RegExp(`"${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"\\s*:`).exec(text);
  return m ? text.slice(0, m.index).split('\n').length : undefined;
}

/** Where config.json and the graph disagree on what the benchmark feeds the model. */
export function configGraphMismatches(arch: ModelArchitecture, shapes: GraphShapes, configText = ''): ConfigMismatch[] {
  const out: ConfigMismatch[] = [];
  const raw = (() => {
    try {
      return JSON.parse(configText) as Record<string, unknown>;
    } catch {
      return {};
    }
  })();
  // The key config.json actually uses (GPT-2's n_head), else the canonical one.
  const keyFor = (canon: string, aliases: string[]): string => aliases.find((k) => k in raw) ?? canon;
  const pairs: [keyof Omit<GraphShapes, 'witness'>, string, number][] = [
    [
      'kvHeads',
      keyFor('num_key_value_heads', ['num_key_value_heads', 'num_attention_heads', 'n_head']),
      arch.num_key_value_heads,
    ],
    ['headDim', keyFor('head_dim', ['head_dim', 'hidden_size', 'n_embd']), arch.head_dim],
    ['layers', keyFor('num_hidden_layers', ['num_hidden_layers', 'n_layer']), arch.num_hidden_layers],
    ['vocab', 'vocab_size', arch.vocab_size],
  ];
  for (const [k, key, want] of pairs) {
    const have = shapes[k];
    if (have !== undefined && have !== want) {
      const shown = k === 'headDim' && key !== 'head_dim' ? 'head_dim' : key;
      out.push({ key: shown, config: want, graph: have, witness: shapes.witness[k]!, line: keyLine(configText, key) });
    }
  }
  return out;
}

export function mismatchText(m: ConfigMismatch, configFile: string, modelFile: string): string {
  const where = `${path.basename(configFile)}${m.line ? `:${m.line}` : ''}`;
  return (
    `${where} says ${m.key} ${m.config}, but ${path.basename(modelFile)} has ${m.graph} (${m.witness}); ` +
    `the benchmark feeds the graph's shapes, so fix ${m.key} in config.json`
  );
}

/** config.json beside a model, read and parsed, or undefined when absent or unreadable (hfCheck reports those). */
export function configBeside(model: string): { file: string; text: string; arch: ModelArchitecture } | undefined {
  const file = path.join(path.dirname(model), 'config.json');
  if (!fs.existsSync(file)) return undefined;
  try {
    const text = readRegularTextSync(file, 'config.json', READ_CAPS.config);
    return { file, text, arch: architectureFromConfig(JSON.parse(text)) };
  } catch {
    return undefined;
  }
}

/** Token ids a tokenizer.json can produce: one more than its largest id (vocabulary and added tokens). */
export function tokenizerIdRange(file: string): number | undefined {
  try {
    const j = JSON.parse(readRegularTextSync(file, 'tokenizer', READ_CAPS.tokenizer)) as {
      model?: { vocab?: Record<string, number> | [string, number][] };
      added_tokens?: { id?: number }[];
    };
    let max = -1;
    const v = j.model?.vocab;
    if (Array.isArray(v))
      max = v.length - 1; // Unigram: [piece, score] pairs, ids are positions
    else if (v && typeof v === 'object')
      for (const id of Object.values(v)) if (typeof id === 'number' && id > max) max = id;
    for (const t of j.added_tokens ?? []) if (typeof t.id === 'number' && t.id > max) max = t.id;
    return max >= 0 ? max + 1 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The recipe diagnostics: on `model` when config.json beside it disagrees with the graph, and on the
 * tokenizer (`evaluation.tokenizer`, or `model` for the tokenizer.json beside it) when it can produce ids
 * the model has no embedding row for. Only when the benchmark would read them (a tokenizer for accuracy).
 */
export function checkModelInputs(a: RecipeAnalysis): void {
  const r = a.recipe!;
  const g = a.graph!;
  const shapes = graphShapes(g);
  const cfg = configBeside(r.model);
  if (cfg) {
    a.dependencies.push(cfg.file);
    for (const m of configGraphMismatches(cfg.arch, shapes, cfg.text)) {
      a.diagnostics.push(
        diag(rangeOf(a.parsed, ['model']), 'error', 'model-config-mismatch', mismatchText(m, cfg.file, r.model)),
      );
    }
  }
  const w = r.objective.workload;
  const win = cfg?.arch.sliding_window;
  if (win !== undefined && win < w.prompt_length + w.decode_tokens) {
    const fam = familyOfArch(cfg!.arch);
    const which = fam?.attention.slidingLayers === 'even' ? 'the even-numbered layers attend' : 'every layer attends';
    const at: JsonPath = a.doc?.objective ? ['objective', 'workload'] : ['model'];
    a.diagnostics.push(
      diag(
        rangeOf(a.parsed, at, 'key'),
        'hint',
        'sliding-window-workload',
        `config.json's sliding_window ${win} is smaller than this ` +
          `workload's ${w.prompt_length + w.decode_tokens} tokens ` +
          `(prompt_length + decode_tokens): ${which} to the last ${win} ` +
          'tokens only, while the KV cache still holds all of them',
      ),
    );
  }
  const vocab = shapes.vocab ?? cfg?.arch.vocab_size;
  const tok = r.evaluation.tokenizer ?? path.join(path.dirname(r.model), 'tokenizer.json');
  if (vocab === undefined || !r.evaluation.text || !fs.existsSync(tok)) return;
  a.dependencies.push(tok);
  const ids = tokenizerIdRange(tok);
  if (ids !== undefined && ids > vocab) {
    const at: JsonPath = r.evaluation.tokenizer ? ['evaluation', 'tokenizer'] : ['model'];
    a.diagnostics.push(
      diag(
        rangeOf(a.parsed, at),
        'error',
        'tokenizer-vocab-mismatch',
        `${path.basename(tok)} produces token ids up to ${ids - 1}, ` +
          `but ${path.basename(r.model)} has ${vocab} embedding rows ` +
          `(${shapes.witness.vocab ?? 'vocab_size in config.json'}): ` +
          `the evaluation would fail on the first id ≥ ${vocab}; ` +
          'use the tokenizer the model was trained with',
      ),
    );
  }
}
