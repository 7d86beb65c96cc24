// What the agent is told about the model, the machine, the objective and the space, as JSON data.
// Everything that comes from model files (layer names, config.json fields) is untrusted: names that are
// not plausible identifiers are replaced by a placeholder with their index, other strings have their
// control characters taken out and their length capped (util/sanitize), and all of it is only ever shown
// as JSON (promptJson: no raw control characters, no `<`/`>`), never spliced into the instructions.
import * as path from 'node:path';
import { familyOfArch, ModelArchitecture } from '../config/hfConfig';
import { planLayers } from '../config/plan';
import { flatText, promptJson, promptName } from '../util/sanitize';
import { hasInt8Dot, HardwareProfile } from './profile';
import type { Objective } from './objective';
import { layerGroups, quantizable, SearchSpace, SpaceContext } from './space';

/** A tag-delimited block of JSON data for a system prompt; nothing inside can close or open a tag. */
export function dataBlock(tag: string, v: unknown): string {
  return `<${tag}>\n${promptJson(v, 1)}\n</${tag}>`;
}

export interface ModelSummary {
  file: string;
  architecture?: Record<string, unknown>;
  layers: number;
  params: number;
  groups: { glob: string; count: number; K: number[]; N: number[]; params: number; plan: string }[];
}

export function modelSummary(setting: SpaceContext, arch?: ModelArchitecture): ModelSummary {
  const q = quantizable(setting.layers);
  const plans = planLayers(setting.recipe, setting.layers);
  const planText = (name: string) => {
    const p = plans.find((x) => x.layer.name === name);
    return p?.quant ? `${p.quant.bits}-bit block ${p.quant.block_size} acc ${p.quant.accuracy_level}` : 'float';
  };
  const uniq = (xs: number[]) => [...new Set(xs)].slice(0, 4);
  return {
    file: flatText(path.basename(setting.recipe.model)),
    architecture: arch
      ? {
          model_type: promptName(arch.model_type, 1, 'model_type'),
          hidden_size: arch.hidden_size,
          intermediate_size: arch.intermediate_size,
          num_hidden_layers: arch.num_hidden_layers,
          num_attention_heads: arch.num_attention_heads,
          num_key_value_heads: arch.num_key_value_heads,
          vocab_size: arch.vocab_size,
          tie_word_embeddings: arch.tie_word_embeddings,
          ...familyFacts(arch),
        }
      : undefined,
    layers: q.length,
    params: q.reduce((s, l) => s + l.params, 0),
    groups: layerGroups(q)
      .slice(0, 40)
      .map((g, i) => ({
        glob: promptName(g.glob, i + 1, 'layer-group'),
        count: g.layers.length,
        K: uniq(g.layers.map((l) => l.K)),
        N: uniq(g.layers.map((l) => l.N)),
        params: g.layers.reduce((s, l) => s + l.params, 0),
        plan: planText(g.layers[0].name),
      })),
  };
}

/** What the family table says about the model (config/families.ts): fused projections and attention quirks. */
function familyFacts(arch: ModelArchitecture): Record<string, unknown> {
  const f = familyOfArch(arch);
  if (!f) return {};
  const facts: Record<string, unknown> = {
    family: f.label,
    head_dim: arch.head_dim,
    norm: f.norm,
    activation: f.activation,
  };
  if (f.fused.length) facts.fused_projections = f.fused.map((x) => `${x.module} = ${x.parts.join(' + ')}`);
  if (arch.sliding_window !== undefined) facts.sliding_window = arch.sliding_window;
  if (arch.attn_logit_softcapping !== undefined) facts.attn_logit_softcapping = arch.attn_logit_softcapping;
  if (arch.final_logit_softcapping !== undefined) facts.final_logit_softcapping = arch.final_logit_softcapping;
  return facts;
}

export function hardwareSummary(hw: HardwareProfile): Record<string, unknown> {
  return {
    cpu: flatText(hw.cpu, 80),
    arch: hw.arch,
    cores: hw.cores,
    isa: hw.isa,
    memory_gib: +(hw.memory_bytes / 2 ** 30).toFixed(1),
    bandwidth_gbs: hw.bandwidth_gbs,
    busy_cores: hw.busy_cores,
    providers: hw.providers,
    int8_dot_product: hasInt8Dot(hw),
  };
}

export function spaceSummary(space: SearchSpace): Record<string, unknown> {
  const knobs = space.knobs.map((k, i) => ({
    knob: promptName(k.key, i + 1, 'knob'),
    values: k.values,
    layers: k.layers.length,
  }));
  return { source: space.source, assignments: space.size, knobs };
}

export function objectiveSummary(o: Objective, budget: { trials: number; minutes?: number }): Record<string, unknown> {
  return {
    metric: o.metric,
    reads: o.field,
    better: o.direction === 'min' ? 'lower' : 'higher',
    unit: o.unit,
    accuracy_budget: {
      max_ppl_increase: o.max_ppl_increase,
      min_top1_agreement: o.min_top1_agreement,
      max_kl: o.max_kl,
    },
    trial_budget: budget.trials,
    minutes: budget.minutes,
  };
}

/**
 * MatMulNBits' speed against fp32 MatMul on one decode-shaped product: the figures bench/REPORT.md §7
 * quotes from the kernel probe (bench/kernelProbe.ts) on the project's AVX2 machine. The one place they
 * are written; a probe of the user's own machine (`.haqa/kernels/`) replaces them where it has run.
 */
export const REPORTED_KERNELS = {
  where: "bench/REPORT.md §7's kernel probe on an AVX2 CPU",
  vsFp32: { '4/0': 0.89, '4/4': 12.6, '8/0': 0.08, '8/4': 3.4 } as Record<string, number>,
};

/** "0.08× the speed of fp32 MatMul", from this machine's probe when given, else the report's. */
export function kernelSpeed(
  bits: 4 | 8,
  level: 0 | 4,
  probe?: { figures: KernelRatio[]; measured_at: string },
): string {
  const mine = probe?.figures.find((f) => f.bits === bits && (f.accuracy_level ?? 0) === level);
  const ratio = mine?.vs_fp32 ?? REPORTED_KERNELS.vsFp32[`${bits}/${level}`];
  const where = mine ? `measured on this machine ${probe!.measured_at.slice(0, 10)}` : REPORTED_KERNELS.where;
  return `${ratio.toFixed(2)}× the speed of fp32 MatMul (${where})`;
}
interface KernelRatio {
  bits: number;
  accuracy_level?: number;
  vs_fp32: number;
}

/** What onnxruntime's CPU kernels can and cannot do: the facts that make some settings counterintuitive. */
export const KERNEL_FACTS = [
  'MatMulNBits (com.microsoft) runs 4- and 8-bit weights; block_size ' +
    "is one of 16, 32, 64, 128, 256 and must divide the layer's K.",
  'accuracy_level is the compute type: 0 default (fp32), 4 = int8 compute (activations quantized on the fly).',
  `4-bit with accuracy_level 0 measured ${kernelSpeed(4, 0)}, with accuracy_level 4 ${kernelSpeed(4, 4)}.`,
  `8-bit with accuracy_level 0 measured ${kernelSpeed(8, 0)}, with ` +
    `accuracy_level 4 ${kernelSpeed(8, 4)}. Lower bits are not automatically faster.`,
  'At batch 64 (prefill-like) 4-bit was no faster than fp32: gains are for bandwidth-bound decode.',
  'No N:M sparse kernels on the CPU execution provider: 2:4 sparsity saves no time there.',
  'Low rank (one MatMul of K x N into two of rank r) saves time only when r(K+N) is well below K*N.',
  'Decode is weight-bandwidth bound: a token cannot be faster than weight bytes read per token / memory bandwidth.',
];
