// The recipe schema (what users write in haqa.yaml) is built here, in one place: the sections below are
// the recipe's own (model, target, objective, calibration, evaluation, search); every section with knobs
// (quantize, sparsity, low_rank, runtime) comes from its entry in the method table (config/methods.ts),
// with the definitions it brings and the search.space key pattern its knobs imply. Validation, hovers and
// completions (config/schema.ts) read the built schema; schemas/haqa.schema.json is the same schema written
// out for editors that validate YAML themselves (package.json yamlValidation): `npm run schema` writes it
// and a unit test fails when the file and this build differ.
import { SECTIONS, knobNamePattern } from './methods';

/* eslint-disable @typescript-eslint/no-explicit-any */
/** The recipe's own sections and shared definitions (the method sections are added by buildRecipeSchema). */
const BASE: any = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://github.com/haqa/haqa/schemas/haqa.schema.json',
  title: 'HAQA recipe (haqa.yaml)',
  description: 'How to compress an ONNX model, for which hardware, to what end, and what the tuner may change.',
  type: 'object',
  additionalProperties: false,
  required: ['model'],
  definitions: {
    glob: {
      type: 'string',
      minLength: 1,
      maxLength: 1024,
      description:
        'Glob over layer (module) names, e.g. `model.layers.*.mlp.down_proj`. `*` stays within ' +
        'one name part, `**` crosses dots.',
    },
    bytes: {
      description: 'A size: bytes as an integer, or a string with a unit such as `4GiB`, `512MB`.',
      anyOf: [
        { type: 'integer', minimum: 1 },
        { type: 'string', pattern: '^\\s*\\d+(\\.\\d+)?\\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\\s*$' },
      ],
    },
  },
  properties: {
    version: { const: 1, description: 'Recipe format version.' },
    model: {
      type: 'string',
      minLength: 1,
      description:
        'Path to the ONNX model, relative to this recipe. A Hugging Face `config.json` beside it ' +
        'is read when present.',
    },
    target: {
      type: 'object',
      additionalProperties: false,
      description: 'The hardware the model will run on.',
      properties: {
        provider: {
          enum: ['cpu', 'cuda', 'dml', 'coreml', 'webgpu'],
          description: 'onnxruntime execution provider. onnxruntime-node runs `cpu` everywhere.',
        },
        threads: { type: 'integer', minimum: 1, maximum: 1024, description: 'CPU cores the deployment may use.' },
        memory_limit: { $ref: '#/definitions/bytes', description: 'Memory available to the model at run time.' },
        host: {
          type: 'string',
          pattern:
            '^(local|ssh://[^:@/\\s]+@[^:@/\\s]+(:\\d{1,5})?' +
            '|redis://[^@/\\s]+(:\\d{1,5})?(/\\d+)?\\?class=[A-Za-z0-9._-]{1,64})$',
          description:
            'Where trials run (server/src/runner): `local` (default), `ssh://user@host:port` (keys ' +
            'from the SSH agent or a key file, host key checked against known_hosts; no password ' +
            'here), or a fleet queue `redis://host:port?class=avx2-2c`.',
        },
      },
    },
    objective: {
      type: 'object',
      additionalProperties: false,
      description: 'What to optimise, on which workload, within which accuracy budget.',
      properties: {
        metric: {
          enum: ['decode_latency', 'prefill_latency', 'throughput', 'size'],
          description:
            '`decode_latency`: ms per generated token with the KV cache. `prefill_latency`: ms for ' +
            "the prompt. `throughput`: generated tokens/s at the workload's batch. `size`: bytes on " +
            'disk.',
        },
        workload: {
          type: 'object',
          additionalProperties: false,
          properties: {
            prompt_length: { type: 'integer', minimum: 1, maximum: 131072, description: 'Prompt tokens (prefill).' },
            decode_tokens: {
              type: 'integer',
              minimum: 1,
              maximum: 4096,
              description: 'Tokens generated after the prompt.',
            },
            batch: { type: 'integer', minimum: 1, maximum: 1024, description: 'Sequences decoded together.' },
          },
        },
        accuracy: {
          type: 'object',
          additionalProperties: false,
          description: 'The accuracy budget against the fp32 model.',
          properties: {
            max_ppl_increase: {
              description: 'Largest perplexity increase allowed: a fraction (0.05) or a percentage string (`5%`).',
              anyOf: [
                { type: 'number', minimum: 0, maximum: 10 },
                { type: 'string', pattern: '^\\s*\\d+(\\.\\d+)?\\s*%\\s*$' },
              ],
            },
            min_top1_agreement: {
              type: 'number',
              minimum: 0,
              maximum: 1,
              description: 'Smallest share of next-token argmax agreeing with fp32.',
            },
            max_kl: {
              type: 'number',
              minimum: 0,
              description: 'Largest mean KL divergence (nats) of next-token distributions from fp32.',
            },
          },
        },
      },
    },
    calibration: {
      type: 'object',
      additionalProperties: false,
      description: 'Text fed to the fp32 model to collect activations (GPTQ, Wanda, static activations).',
      properties: {
        text: { type: 'string', minLength: 1, description: 'Path to a UTF-8 text file, relative to this recipe.' },
        samples: { type: 'integer', minimum: 1, maximum: 4096 },
        seq_len: { type: 'integer', minimum: 2, maximum: 8192 },
      },
    },
    evaluation: {
      type: 'object',
      additionalProperties: false,
      description: 'How accuracy is measured.',
      properties: {
        text: {
          type: 'string',
          minLength: 1,
          description: 'Held-out UTF-8 text for perplexity, relative to this recipe.',
        },
        tokenizer: {
          type: 'string',
          minLength: 1,
          description: 'Hugging Face tokenizer.json (default: beside the model).',
        },
        window: { type: 'integer', minimum: 2, maximum: 8192, description: 'Tokens per perplexity window.' },
        max_windows: { type: 'integer', minimum: 1, description: 'Cap on windows evaluated.' },
      },
    },
    search: {
      type: 'object',
      additionalProperties: false,
      description: 'What the tuner may change, and its budget.',
      properties: {
        agent: {
          enum: ['claude', 'offline', 'random', 'sweep'],
          description:
            'The search strategy (the proposers of server/src/agent/proposers.ts). `offline` ' +
            '(default): the built-in model-based optimizer (TPE). `claude`: the LLM agent (needs an ' +
            'API key; without one, `offline`). `random`: random search over the space. `sweep`: ' +
            'every assignment of the space, in order.',
        },
        trials: { type: 'integer', minimum: 1, maximum: 1000, description: 'Trial budget.' },
        minutes: { type: 'number', exclusiveMinimum: 0, description: 'Wall-time budget.' },
        seed: { type: 'integer', minimum: 0 },
        tolerance: {
          type: 'number',
          minimum: 0,
          maximum: 0.5,
          description:
            'Two plans whose paired speed ratios against fp32 differ by less than this fraction are ' +
            'tied (default 0.03); a race against the best stops once its interval says better, worse ' +
            'or tied within it.',
        },
        space: {
          type: 'object',
          description:
            'Knob → allowed values. A knob is a recipe path (`quantize.bits`), optionally scoped to ' +
            'layers with `@glob` (`quantize.bits@model.layers.*.mlp.down_proj`).',
          propertyNames: { maxLength: 1100, pattern: '<from the method table>' },
          additionalProperties: {
            type: 'array',
            minItems: 1,
            items: { type: ['number', 'string', 'boolean', 'null'] },
          },
        },
      },
    },
  },
};

/** Where the method sections go among the recipe's properties (after objective, in table order). */
const METHODS_AFTER = 'objective';

/** The whole recipe schema: BASE with every method section, its definitions and the knob-name pattern. */
export function buildRecipeSchema(): any {
  const base = structuredClone(BASE);
  const properties: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(base.properties)) {
    properties[key] = value;
    if (key === METHODS_AFTER) for (const s of SECTIONS) properties[s.name] = structuredClone(s.schema);
  }
  for (const s of SECTIONS) {
    for (const [name, def] of Object.entries(s.definitions ?? {})) {
      if (name in base.definitions) throw new Error(`schema definition ${name} is declared twice (${s.name})`);
      base.definitions[name] = structuredClone(def);
    }
  }
  base.properties = properties;
  base.properties.search.properties.space.propertyNames.pattern = knobNamePattern();
  return base;
}
/* eslint-enable @typescript-eslint/no-explicit-any */
