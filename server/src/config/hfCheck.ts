// Checks of a Hugging Face config.json: JSON syntax, the architecture numbers (hfConfig.ts), the
// `quantization_config` block (AWQ/GPTQ style), and, when an ONNX model sits beside it, whether the
// config agrees with the graph. jsonc-parser keeps offsets, so each diagnostic lands on its key.
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  parseTree,
  findNodeAtLocation,
  getNodeValue,
  Node as JNode,
  ParseError,
  ParseErrorCode,
} from 'jsonc-parser/lib/esm/main.js';
import { architectureFromConfig, familyOfArch, HfConfigError, ModelArchitecture } from './hfConfig';
import { Family, familyById } from './families';
import { Diagnostic, LineIndex, Range, diag } from './diagnostics';
import { ModelCache } from './modelCache';
import { MAX_RECIPE_BYTES, looksBinary } from './parse';
import { MAX_NESTING, jsonTooDeep } from './depth';
import type { ModelGraph } from '../model/graph';

export interface HfConfigAnalysis {
  file: string;
  arch?: ModelArchitecture;
  graph?: ModelGraph;
  diagnostics: Diagnostic[];
  dependencies: string[];
}

/** jsonc-parser's error codes in words (its own printer says `CommaExpected`). */
const PARSE_ERROR_TEXT: Record<number, string> = {
  [ParseErrorCode.InvalidSymbol]: 'unexpected character (not part of any JSON value)',
  [ParseErrorCode.InvalidNumberFormat]: 'malformed number',
  [ParseErrorCode.PropertyNameExpected]: 'a property name in double quotes is expected here',
  [ParseErrorCode.ValueExpected]: 'a value is expected here',
  [ParseErrorCode.ColonExpected]: "a ':' is expected after the property name",
  [ParseErrorCode.CommaExpected]: "a ',' is expected between entries",
  [ParseErrorCode.CloseBraceExpected]: "a closing '}' is missing",
  [ParseErrorCode.CloseBracketExpected]: "a closing ']' is missing",
  [ParseErrorCode.EndOfFileExpected]: 'text after the end of the JSON value',
  [ParseErrorCode.InvalidCommentToken]: 'comments are not allowed in JSON',
  [ParseErrorCode.UnexpectedEndOfComment]: 'comment not closed (comments are not allowed in JSON)',
  [ParseErrorCode.UnexpectedEndOfString]: 'string not closed: a closing double quote is missing',
  [ParseErrorCode.UnexpectedEndOfNumber]: 'number cut off',
  [ParseErrorCode.InvalidUnicode]: 'invalid \\u escape (four hex digits are expected)',
  [ParseErrorCode.InvalidEscapeCharacter]: 'invalid escape sequence in a string',
  [ParseErrorCode.InvalidCharacter]: 'control character inside a string (escape it)',
};

export function parseErrorText(code: ParseErrorCode): string {
  return PARSE_ERROR_TEXT[code] ?? 'invalid JSON';
}

/** Keys that mark a config.json as a Hugging Face model config (other config.json files are left alone). */
const HF_MARKERS = ['model_type', 'architectures', 'hidden_size', 'num_hidden_layers', 'n_embd', 'n_layer'];
export const HF_QUANT_BITS = [2, 3, 4, 8];

export async function analyzeHfConfig(
  text: string,
  file: string,
  ctx: { models: ModelCache; modelFile?: string },
): Promise<HfConfigAnalysis> {
  const a: HfConfigAnalysis = { file: path.resolve(file), diagnostics: [], dependencies: [] };
  const top: Range = { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } };
  if (text.length > MAX_RECIPE_BYTES) {
    a.diagnostics.push(
      diag(
        top,
        'error',
        'file-too-large',
        `file is ${(text.length / 1048576).toFixed(1)} MB; config ` +
          `files over ${MAX_RECIPE_BYTES / 1048576} MB are not checked`,
      ),
    );
    return a;
  }
  if (looksBinary(text)) {
    a.diagnostics.push(diag(top, 'error', 'binary-file', 'file looks binary, not JSON text'));
    return a;
  }
  const lines = new LineIndex(text);
  const deep = jsonTooDeep(text);
  if (deep !== undefined) {
    // jsonc-parser recurses per level: refuse before it overflows the stack.
    a.diagnostics.push(
      diag(
        lines.range(deep, deep + 1),
        'error',
        'json-too-deep',
        `nesting deeper than ${MAX_NESTING} levels here; a config.json needs a few, so the file is not parsed`,
      ),
    );
    return a;
  }
  const errors: ParseError[] = [];
  const root = parseTree(text, errors, { allowTrailingComma: false, disallowComments: true });
  for (const e of errors) {
    const at = lines.range(e.offset, e.offset + Math.max(1, e.length));
    a.diagnostics.push(diag(at, 'error', 'json-syntax', `JSON: ${parseErrorText(e.error)}`));
  }
  if (!root || root.type !== 'object') {
    if (!errors.length)
      a.diagnostics.push(diag(top, 'error', 'hf-config-invalid', 'config.json must be a JSON object'));
    return a;
  }
  const value = getNodeValue(root) as Record<string, unknown>;
  if (!HF_MARKERS.some((k) => k in value)) return a;

  const keyRange = (p: (string | number)[]): Range => {
    for (let n = p.length; n > 0; n--) {
      const node = findNodeAtLocation(root, p.slice(0, n));
      const prop = node?.parent;
      if (prop?.type === 'property' && prop.children?.[0])
        return lines.range(prop.children[0].offset, prop.children[0].offset + prop.children[0].length);
      if (node) return lines.range(node.offset, node.offset + node.length);
    }
    return lines.range(root.offset, root.offset + 1);
  };
  const valueRange = (p: (string | number)[]): Range => {
    const node: JNode | undefined = findNodeAtLocation(root, p);
    return node ? lines.range(node.offset, node.offset + node.length) : keyRange(p);
  };

  let arch: ModelArchitecture;
  try {
    arch = architectureFromConfig(value);
  } catch (err) {
    const key = err instanceof HfConfigError ? err.key : undefined;
    const notMultiple = /not a multiple/.test((err as Error).message);
    const at = err instanceof HfConfigError ? (err.at ?? key) : undefined;
    a.diagnostics.push(
      diag(
        at && at in value ? valueRange([at]) : lines.range(root.offset, root.offset + 1),
        'error',
        notMultiple ? 'hidden-not-divisible' : 'hf-config-invalid',
        (err as Error).message,
      ),
    );
    return a;
  }
  a.arch = arch;
  if (arch.num_attention_heads % arch.num_key_value_heads !== 0) {
    a.diagnostics.push(
      diag(
        valueRange(['num_key_value_heads']),
        'error',
        'kv-heads-not-divisor',
        `num_key_value_heads ${arch.num_key_value_heads} must divide num_attention_heads ` +
          `${arch.num_attention_heads} (grouped-query attention ` +
          'shares each kv head among heads/kv_heads query heads)',
      ),
    );
  }

  const qc = value.quantization_config;
  if (qc !== undefined) {
    if (typeof qc !== 'object' || qc === null || Array.isArray(qc)) {
      a.diagnostics.push(
        diag(valueRange(['quantization_config']), 'error', 'wrong-type', 'quantization_config must be an object'),
      );
    } else {
      const q = qc as Record<string, unknown>;
      const QP = (k: string) => ['quantization_config', k];
      if (q.bits !== undefined && !(typeof q.bits === 'number' && HF_QUANT_BITS.includes(q.bits))) {
        a.diagnostics.push(
          diag(
            valueRange(QP('bits')),
            'error',
            'quant-bits-unsupported',
            `quantization_config.bits ${JSON.stringify(q.bits)}: ` +
              `AWQ/GPTQ kernels pack ${HF_QUANT_BITS.join(', ')} bits`,
          ),
        );
      }
      for (const k of ['sym', 'desc_act']) {
        if (q[k] !== undefined && typeof q[k] !== 'boolean') {
          a.diagnostics.push(
            diag(
              valueRange(QP(k)),
              'error',
              'wrong-type',
              `quantization_config.${k} must be true or false, got ${JSON.stringify(q[k])}`,
            ),
          );
        }
      }
      const gs = q.group_size;
      if (gs !== undefined) {
        if (typeof gs !== 'number' || !Number.isInteger(gs) || (gs <= 0 && gs !== -1)) {
          a.diagnostics.push(
            diag(
              valueRange(QP('group_size')),
              'error',
              'wrong-type',
              'quantization_config.group_size must be a positive integer ' +
                `(or -1 for one group per row), got ${JSON.stringify(gs)}`,
            ),
          );
        } else if (gs > 0) {
          const bad = [
            ['hidden_size', arch.hidden_size],
            ['intermediate_size', arch.intermediate_size],
          ].filter(([, n]) => (n as number) % gs !== 0);
          if (bad.length) {
            const cands = [32, 64, 128, 256].filter(
              (c) => arch.hidden_size % c === 0 && arch.intermediate_size % c === 0,
            );
            const best = cands.sort((x, y) => Math.abs(Math.log2(x / gs)) - Math.abs(Math.log2(y / gs)))[0];
            a.diagnostics.push(
              diag(
                valueRange(QP('group_size')),
                'error',
                'group-size-not-divisor',
                `group_size ${gs} does not divide ${bad.map(([k, n]) => `${k} ${n}`).join(' and ')}` +
                  `${best ? `; nearest that divides both: ${best}` : ''}`,
                best ? { fix: 'replace', path: QP('group_size'), values: [best] } : undefined,
              ),
            );
          }
        }
      }
    }
  }

  // The graph beside it.
  const modelFile = ctx.modelFile ?? path.join(path.dirname(a.file), 'model.onnx');
  if (fs.existsSync(modelFile)) {
    a.dependencies.push(modelFile);
    const load = await ctx.models.get(modelFile);
    if (load.ok) {
      a.graph = load.graph;
      compareWithGraph(a, arch, load.graph, valueRange);
    }
  }
  return a;
}

/** The numbers a graph implies, read from its layer shapes at the module paths of its family (Llama's by default). */
export function graphArchitecture(
  g: ModelGraph,
  family?: Family,
): {
  hidden?: number;
  intermediate?: number;
  layers?: number;
  vocab?: number;
  kvWidth?: number;
  witness: Record<string, string>;
} {
  const f = family ?? familyById('llama');
  const M = f.modules;
  const by = (leaf: string | undefined) =>
    leaf === undefined ? undefined : g.layers.find((l) => l.name.endsWith(`.${leaf}`));
  const fusedUp = f.fused.find((x) => x.split === 'halves');
  const qLeaf = M.attn.q ?? f.fused.find((x) => x.parts.includes('q'))?.module;
  const q = by(qLeaf) ?? by(M.mlp.up);
  const up = by(M.mlp.up) ?? by(M.mlp.gate);
  const head = g.layers.find((l) => l.name === 'lm_head');
  const k = by(M.attn.k);
  const idx = new Set<number>();
  const blockRe = new RegExp(`^${M.blocks.replace(/\./g, '\\.')}\\.(\\d+)\\.`);
  for (const l of g.layers) {
    const m = blockRe.exec(l.name);
    if (m) idx.add(Number(m[1]));
  }
  const upHalves = up !== undefined && fusedUp !== undefined && up.name.endsWith(`.${fusedUp.module}`);
  return {
    hidden: q?.K,
    intermediate: up ? (upHalves ? up.N / 2 : up.N) : undefined,
    layers: idx.size || undefined,
    vocab: head?.N,
    kvWidth: k?.N,
    witness: {
      hidden: q ? `${q.name} K` : '',
      intermediate: up ? `${up.name} N${upHalves ? ' / 2' : ''}` : '',
      vocab: head ? 'lm_head N' : '',
      layers: `${M.blocks}.<i>`,
      kvWidth: k ? `${k.name} N` : '',
    },
  };
}

function compareWithGraph(
  a: HfConfigAnalysis,
  arch: ModelArchitecture,
  g: ModelGraph,
  at: (p: string[]) => Range,
): void {
  const f = familyOfArch(arch);
  const ga = graphArchitecture(g, f);
  const keys = (f ?? familyById('llama')).keys;
  const pairs: [keyof typeof ga & string, string, number][] = [
    ['hidden', keys.hidden_size[0], arch.hidden_size],
    ['intermediate', keys.intermediate_size[0] ?? 'intermediate_size', arch.intermediate_size],
    ['layers', keys.num_hidden_layers[0], arch.num_hidden_layers],
    ['vocab', 'vocab_size', arch.vocab_size],
  ];
  // Grouped-query attention: k_proj's output width is num_key_value_heads × head_dim.
  if (ga.kvWidth !== undefined && ga.kvWidth !== arch.num_key_value_heads * arch.head_dim) {
    a.diagnostics.push(
      diag(
        at(['num_key_value_heads']),
        'warning',
        'config-graph-mismatch',
        `num_key_value_heads ${arch.num_key_value_heads} × head_dim ${arch.head_dim} = ` +
          `${arch.num_key_value_heads * arch.head_dim}, but ` +
          `${path.basename(g.path)} has ${ga.kvWidth} (${ga.witness.kvWidth})`,
      ),
    );
  }
  for (const [k, key, want] of pairs) {
    const have = ga[k] as number | undefined;
    if (have !== undefined && have !== want) {
      a.diagnostics.push(
        diag(
          at([key]),
          'warning',
          'config-graph-mismatch',
          `${key} is ${want} but ${path.basename(g.path)} has ${have} ` +
            `(${ga.witness[k]}): config.json and the model disagree`,
        ),
      );
    }
  }
}
