// Advise mode: no runs. Suggestions for a recipe from the model and the hardware — by Claude when an
// API key is given, else by rules that encode the same kernel facts. Each suggestion is a knob
// assignment (plan.ts's language) with a rationale; the editor turns them into diagnostics whose quick
// fixes apply `knobEdits`. Every suggestion is validated (schema, model) before it is returned. A Claude
// session has the same hard caps as the tuning agent (limits.ts: requests, tool calls, bytes sent) and
// the same sanitizing of what goes out (util/sanitize); a malformed tool call is refused, never thrown.
import Anthropic from '@anthropic-ai/sdk';
import { applyKnobs, planLayers, parseNM } from '../config/plan';
import { knobValueError } from '../config/schema';
import { nearestBlockSize } from '../config/check';
import type { ModelArchitecture } from '../config/hfConfig';
import {
  dataBlock,
  hardwareSummary,
  KERNEL_FACTS,
  kernelSpeed,
  REPORTED_KERNELS,
  modelSummary,
  objectiveSummary,
} from './describe';
import type { KernelProbeResult } from '../bench/kernelProbe';
import { checkKeys, DEFAULT_MODEL, estimateCost, InputError, SECURITY_NOTE, RATIONALE_LIMIT, toolUses } from './claude';
import { adviceLimits, AgentLimits, bodyBytes, SessionMeter } from './limits';
import { clip, promptJson, promptText } from '../util/sanitize';
import { knobKeyError, layerGroups, planErrors, quantizable, short, SpaceContext } from './space';
import type { Objective } from './objective';
import { emptyUsage, SearchValue, Usage } from './types';

export interface Suggestion {
  id: string;
  title: string;
  rationale: string;
  knobs: Record<string, SearchValue>;
  /** Who made it. */
  source: 'rules' | 'claude';
}

/** Why a suggestion's knobs cannot be applied to this recipe and model, or an empty list. */
export function suggestionErrors(knobs: unknown, setting: SpaceContext): string[] {
  if (typeof knobs !== 'object' || knobs === null || Array.isArray(knobs))
    return [`knobs must be an object of knob → value, got ${short(knobs)}`];
  const entries = Object.entries(knobs as Record<string, unknown>);
  if (entries.length === 0) return ['knobs is empty'];
  if (entries.length > 16) return [`${entries.length} knobs (limit 16)`];
  const errors: string[] = [];
  for (const [k, v] of entries) {
    const e =
      knobKeyError(k, setting) ??
      (v !== null && !['number', 'string', 'boolean'].includes(typeof v)
        ? `value ${short(v)} must be a scalar`
        : knobValueError(k, v));
    if (e) errors.push(`${JSON.stringify(k.slice(0, 80))}: ${e}`);
  }
  return errors.length ? errors : planErrors(knobs as Record<string, SearchValue>, setting);
}

/**
 * The rule-based advisor: kernel facts applied to this recipe's plan, their figures from this machine's
 * kernel probe when one has run (`haqa advise --measure`), else from bench/REPORT.md (describe.ts).
 */
export function adviseOffline(setting: SpaceContext, probe?: KernelProbeResult): Suggestion[] {
  const { recipe, layers, hardware } = setting;
  const out: Suggestion[] = [];
  const add = (id: string, title: string, rationale: string, knobs: Record<string, SearchValue>) => {
    if (suggestionErrors(knobs, setting).length === 0) out.push({ id, title, rationale, knobs, source: 'rules' });
  };
  const q = quantizable(layers);
  const Ks = [...new Set(q.map((l) => l.K))];
  const plan = planLayers(recipe, layers);
  const quantized = plan.filter((p) => p.quant);
  const cpu = recipe.target.provider === 'cpu';

  if (!recipe.quantize && q.length > 0) {
    const bs = nearestBlockSize(32, Ks);
    add(
      'quantize-4bit-int8',
      'Quantize weights to 4 bits with int8 compute',
      'Decode is bound by reading weights: 4-bit weights read 8x fewer bytes than fp32. With ' +
        `accuracy_level 4 (int8 compute) 4-bit MatMulNBits measured ${kernelSpeed(4, 4, probe)}.`,
      { 'quantize.bits': 4, 'quantize.accuracy_level': 4, ...(bs ? { 'quantize.block_size': bs } : {}) },
    );
  }
  if (cpu && recipe.quantize && recipe.quantize.accuracy_level === 0 && quantized.length > 0) {
    const eight = quantized.some((p) => p.quant!.bits === 8);
    add(
      'accuracy-level-4',
      'Use int8 compute (accuracy_level 4)',
      eight
        ? `8-bit MatMulNBits with accuracy_level 0 measured ${kernelSpeed(8, 0, probe)}; ` +
            `with accuracy_level 4, ${kernelSpeed(8, 4, probe)}.`
        : `4-bit MatMulNBits with accuracy_level 0 measured ${kernelSpeed(4, 0, probe)}; ` +
            `with accuracy_level 4 (int8 compute), ${kernelSpeed(4, 4, probe)}.`,
      { 'quantize.accuracy_level': 4 },
    );
  }
  const lm = quantized.find((p) => p.layer.name === 'lm_head' && p.quant!.bits <= 4);
  if (lm && q.length > 1) {
    add(
      'skip-lm-head',
      'Keep lm_head in float',
      'The output projection turns hidden states into logits for every token of ' +
        'the vocabulary; its quantization error goes straight into the next-token ' +
        'distribution, and it is a small share of decoder weights in deeper models.',
      { 'quantize.skip@lm_head': true },
    );
  }
  const down = layerGroups(q).find((g) => /(^|\.)down_proj$/.test(g.glob));
  if (down && quantized.some((p) => down.layers.includes(p.layer) && p.quant!.bits <= 4)) {
    add(
      'down-proj-8bit',
      `8-bit with int8 compute for ${down.glob}`,
      'The MLP down projections see the largest activation outliers (after the SwiGLU product); 8 bits ' +
        'keep their error small, and with accuracy_level 4 8-bit runs about as fast as 4-bit on CPUs.',
      { [`quantize.bits@${down.glob}`]: 8, [`quantize.accuracy_level@${down.glob}`]: 4 },
    );
  }
  const badBlock = quantized.filter((p) => p.layer.K % p.quant!.block_size !== 0);
  if (badBlock.length > 0) {
    const bs = nearestBlockSize(badBlock[0].quant!.block_size, Ks);
    if (bs) {
      add(
        'block-size-divides-k',
        `Block size ${bs}`,
        `block_size ${badBlock[0].quant!.block_size} does not divide K=${badBlock[0].layer.K} of ` +
          `${JSON.stringify(badBlock[0].layer.name)}; ${bs} is the nearest size that divides every K.`,
        { 'quantize.block_size': bs },
      );
    }
  }
  if (cpu) {
    for (const b of new Set(quantized.map((p) => p.quant!.bits).filter((b) => b !== 4 && b !== 8))) {
      add(
        `bits-${b}`,
        `${b}-bit weights do not run on the CPU kernels`,
        `onnxruntime's CPU MatMulNBits runs 4 and 8 bits; ${b} bits would fail or fall back.`,
        { 'quantize.bits': b < 8 ? 4 : 8 },
      );
    }
  }
  if (recipe.runtime.intra_op_threads !== hardware.cores && recipe.objective.workload.batch === 1) {
    add(
      'threads-all-cores',
      `Use all ${hardware.cores} cores for intra-op threads`,
      'Single-sequence decode parallelises inside each MatMul; this machine has ' +
        `${hardware.cores} cores and the recipe uses ${recipe.runtime.intra_op_threads}.`,
      { 'runtime.intra_op_threads': hardware.cores },
    );
  }
  if (cpu) {
    for (const r of recipe.sparsity?.rules ?? []) {
      if (r.pattern && parseNM(r.pattern)) {
        add(
          `drop-nm-${r.match}`,
          `Drop ${r.pattern} sparsity on ${r.match}`,
          'The CPU execution provider has no N:M sparse kernels: the zeros cost accuracy and save no time.',
          { [`sparsity.pattern@${r.match}`]: null },
        );
      }
    }
  }
  for (const r of recipe.low_rank?.rules ?? []) {
    const hit = plan.filter(
      (p) =>
        p.lowRank &&
        p.lowRank.rank === r.rank &&
        p.lowRank.rank * (p.layer.K + p.layer.N) >= 0.8 * p.layer.K * p.layer.N,
    );
    if (hit.length > 0) {
      add(
        `drop-low-rank-${r.match}`,
        `Rank ${r.rank} saves no work on ${r.match}`,
        `r(K+N) = ${r.rank * (hit[0].layer.K + hit[0].layer.N)} is not well below K·N = ` +
          `${hit[0].layer.K * hit[0].layer.N} for ` +
          `${JSON.stringify(hit[0].layer.name)}: two MatMuls would cost as much as one.`,
        { [`low_rank.rank@${r.match}`]: null },
      );
    }
  }
  return out;
}

// ---------------------------------------------------------------- Claude

export interface AdviseResult {
  suggestions: Suggestion[];
  outcome: 'completed' | 'error' | 'budget' | 'cancelled';
  reason: string;
  usage: Usage;
}

const ADVISE_TOOLS: Anthropic.Tool[] = [
  {
    name: 'model_summary',
    description: 'The model: architecture and layer groups with shapes and current plan.',
    input_schema: { type: 'object', properties: {}, additionalProperties: false },
  },
  {
    name: 'hardware_profile',
    description: 'The machine and the kernel facts.',
    input_schema: { type: 'object', properties: {}, additionalProperties: false },
  },
  {
    name: 'submit_suggestions',
    description:
      'Your suggestions for the recipe, each a knob assignment in the recipe knob language (e.g. ' +
      '{"quantize.bits@model.layers.*.mlp.down_proj": 8}). Invalid ones are refused with reasons.',
    input_schema: {
      type: 'object',
      additionalProperties: false,
      required: ['suggestions'],
      properties: {
        suggestions: {
          type: 'array',
          maxItems: 12,
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['title', 'rationale', 'knobs'],
            properties: {
              title: { type: 'string', maxLength: 120 },
              rationale: { type: 'string', maxLength: RATIONALE_LIMIT },
              knobs: { type: 'object', additionalProperties: { type: ['number', 'string', 'boolean', 'null'] } },
            },
          },
        },
      },
    },
    cache_control: { type: 'ephemeral' },
  },
];

export interface AdviseClaudeOptions {
  apiKey: string;
  model?: string;
  baseURL?: string;
  maxRetries?: number;
  /** Requests per session (the request cap; default 5). */
  maxTurns?: number;
  /** Tool-call and byte caps (limits.ts; `requests` defaults to maxTurns). */
  limits?: Partial<AgentLimits>;
  signal?: AbortSignal;
  architecture?: ModelArchitecture;
  /** Per-layer measurements on this machine (agent/layerViews.ts promptTables), when cached. */
  layers?: Record<string, unknown>;
  /** Kernel facts measured on this machine (bench/kernelProbe.ts): they replace the quoted figures. */
  kernelFacts?: string[];
}

/** One suggestion from the model's input, or the reason it is refused. */
function parseSuggestion(x: unknown, i: number, setting: SpaceContext): Suggestion {
  const o = checkKeys(x, ['title', 'rationale', 'knobs'], ['title', 'rationale', 'knobs']);
  if (typeof o.title !== 'string' || o.title.length === 0 || o.title.length > 120)
    throw new InputError(`suggestion ${i + 1}: title must be a string of 1..120 characters`);
  if (typeof o.rationale !== 'string' || o.rationale.length > RATIONALE_LIMIT)
    throw new InputError(`suggestion ${i + 1}: rationale must be a string of at most ${RATIONALE_LIMIT} characters`);
  const errs = suggestionErrors(o.knobs, setting);
  if (errs.length)
    throw new InputError(`suggestion ${i + 1} (${JSON.stringify(o.title.slice(0, 40))}): ${errs.join('; ')}`);
  return {
    id: `claude-${i + 1}`,
    title: o.title,
    rationale: o.rationale,
    knobs: o.knobs as Record<string, SearchValue>,
    source: 'claude',
  };
}

export async function adviseWithClaude(
  setting: SpaceContext,
  objective: Objective,
  opts: AdviseClaudeOptions,
): Promise<AdviseResult> {
  const model = opts.model ?? DEFAULT_MODEL;
  const client = new Anthropic({ apiKey: opts.apiKey, baseURL: opts.baseURL, maxRetries: opts.maxRetries ?? 3 });
  const usage = emptyUsage();
  const meter = new SessionMeter(adviceLimits({ requests: opts.maxTurns, ...opts.limits }));
  // Measured here beats quoted: the report's figures give way to the probe's.
  const facts = opts.kernelFacts?.length
    ? [...KERNEL_FACTS.filter((l) => !l.includes(REPORTED_KERNELS.where)), ...opts.kernelFacts]
    : KERNEL_FACTS;
  const system = [
    "You are HAQA's advisor. Without running anything, suggest changes to a quantization recipe " +
      'for an ONNX language model on the machine below: per-layer bit-widths, block sizes, ' +
      'accuracy levels, layers to keep in float, sparsity patterns and low-rank ranks that make ' +
      'sense on this hardware, within the accuracy budget. Give each suggestion a short title, a ' +
      'rationale grounded in the facts below, and its knobs. Submit them with submit_suggestions.',
    SECURITY_NOTE,
    dataBlock('hardware', hardwareSummary(setting.hardware)),
    dataBlock('kernel_facts', facts),
    dataBlock('model', modelSummary(setting, opts.architecture)),
    dataBlock('objective', objectiveSummary(objective, { trials: 0 })),
    // Measured here: per-layer decode time, per-layer sensitivity, the plan under the budget (all through promptJson).
    ...(opts.layers ? [dataBlock('layer_measurements', opts.layers)] : []),
  ].join('\n\n');
  const messages: Anthropic.MessageParam[] = [{ role: 'user', content: 'Suggest changes to this recipe.' }];
  const done = (outcome: AdviseResult['outcome'], reason: string, suggestions: Suggestion[] = []): AdviseResult => ({
    suggestions,
    outcome,
    reason,
    usage: { ...usage, cost_usd: estimateCost(model, usage), tool_calls: meter.toolCalls, bytes_sent: meter.bytesSent },
  });
  for (;;) {
    const body: Anthropic.MessageCreateParamsNonStreaming = {
      model,
      max_tokens: 2048,
      system: [{ type: 'text', text: system, cache_control: { type: 'ephemeral' } }],
      tools: ADVISE_TOOLS,
      messages,
    };
    const capped = meter.request(bodyBytes(body));
    if (capped) return done('budget', `no valid suggestions: ${capped}`);
    let msg: Anthropic.Message;
    try {
      msg = await client.messages.create(body, { signal: opts.signal });
    } catch (err) {
      if (opts.signal?.aborted || err instanceof Anthropic.APIUserAbortError) return done('cancelled', 'cancelled');
      const e = err as InstanceType<typeof Anthropic.APIError>;
      return done('error', `Anthropic API error${e.status ? ` ${e.status}` : ''}: ${e.apiMessage ?? e.message}`);
    }
    usage.requests++;
    usage.input_tokens += msg.usage?.input_tokens ?? 0;
    usage.output_tokens += msg.usage?.output_tokens ?? 0;
    usage.cache_creation_input_tokens += msg.usage?.cache_creation_input_tokens ?? 0;
    usage.cache_read_input_tokens += msg.usage?.cache_read_input_tokens ?? 0;
    if (!Array.isArray(msg?.content)) return done('error', 'malformed API response: content is not a list of blocks');
    messages.push({ role: 'assistant', content: msg.content as Anthropic.ContentBlockParam[] });
    const uses = toolUses(msg.content);
    if (uses.some((u) => typeof u.id !== 'string' || !u.id))
      return done('error', 'malformed API response: a tool_use block has no id');
    const over = meter.reply(uses.length);
    if (over) return done('budget', over);
    if (uses.length === 0) {
      messages.push({ role: 'user', content: 'Submit your suggestions with submit_suggestions.' });
      continue;
    }
    const results: Anthropic.ToolResultBlockParam[] = [];
    let accepted: Suggestion[] | undefined;
    for (const u of uses) {
      try {
        if (typeof u.name !== 'string') throw new InputError(`tool name must be a string, got ${short(u.name)}`);
        if (u.name === 'model_summary' || u.name === 'hardware_profile') checkKeys(u.input, [], []);
        const answer = (v: unknown) => results.push({ type: 'tool_result', tool_use_id: u.id, content: promptJson(v) });
        if (u.name === 'model_summary') answer(modelSummary(setting, opts.architecture));
        else if (u.name === 'hardware_profile') answer({ ...hardwareSummary(setting.hardware), kernel_facts: facts });
        else if (u.name === 'submit_suggestions') {
          const o = checkKeys(u.input, ['suggestions'], ['suggestions']);
          if (!Array.isArray(o.suggestions) || o.suggestions.length > 12)
            throw new InputError('suggestions must be an array of at most 12');
          accepted = o.suggestions.map((s, i) => parseSuggestion(s, i, setting));
          results.push({ type: 'tool_result', tool_use_id: u.id, content: 'accepted' });
        } else throw new InputError(`unknown tool ${JSON.stringify(u.name.slice(0, 40))}`);
      } catch (err) {
        if (!(err instanceof InputError)) throw err;
        const content = promptText(clip(`refused: ${err.message}`, 4000));
        results.push({ type: 'tool_result', tool_use_id: u.id, is_error: true, content });
      }
    }
    if (accepted) return done('completed', 'the agent submitted its suggestions', accepted);
    messages.push({ role: 'user', content: results });
  }
}

/** Apply a suggestion to a recipe (for previews and tests). */
export function applySuggestion(setting: SpaceContext, s: Suggestion) {
  return applyKnobs(setting.recipe, s.knobs);
}
