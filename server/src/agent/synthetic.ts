// A deterministic stand-in for compress + benchmark: a cost model over the per-layer plan, shaped after
// the field notes (int8 compute is where MatMulNBits gains come from; 8-bit with fp32 compute is
// pathological), with multiplicative noise from a seeded generator. Its optimum is the counterintuitive
// one — 8-bit weights with accuracy_level 4 beat 4-bit — so a search that trusts "fewer bits is faster"
// does not find it. For tests of the loop and the optimizers and for bench/search.ts; not a benchmark.
import type { Layer } from '../model/graph';
import { applyKnobs, planLayers } from '../config/plan';
import { resolveRecipe } from '../config/recipe';
import { Rng } from './rng';
import { configKey, SpaceContext } from './space';
import type { Config, EvaluateOptions, Evaluation, Evaluator, TrialMetrics } from './types';

/** Layers of a small Llama-shaped decoder (names as Optimum exports them). */
export function syntheticLayers(spec: {
  layers: number;
  hidden: number;
  intermediate: number;
  vocab: number;
}): Layer[] {
  const out: Layer[] = [];
  const add = (name: string, K: number, N: number) =>
    out.push({
      name,
      node: `/${name.replace(/\./g, '/')}/MatMul`,
      nodeIndex: out.length,
      op: 'MatMul',
      weight: `${name}.weight`,
      K,
      N,
      transB: false,
      dtype: 'FLOAT',
      bits: 32,
      params: K * N,
      bytes: K * N * 4,
    });
  for (let i = 0; i < spec.layers; i++) {
    for (const p of ['q_proj', 'k_proj', 'v_proj', 'o_proj'])
      add(`model.layers.${i}.self_attn.${p}`, spec.hidden, spec.hidden);
    add(`model.layers.${i}.mlp.gate_proj`, spec.hidden, spec.intermediate);
    add(`model.layers.${i}.mlp.up_proj`, spec.hidden, spec.intermediate);
    add(`model.layers.${i}.mlp.down_proj`, spec.intermediate, spec.hidden);
  }
  add('lm_head', spec.hidden, spec.vocab);
  return out;
}

/** Time per weight relative to fp32, by (bits, accuracy_level). */
function kernelFactor(bits: number, acc: number): number {
  if (bits >= 32) return 1;
  if (bits === 8) return acc === 4 ? 0.34 : 30;
  if (bits === 4) return acc === 4 ? 0.4 : 0.9;
  return acc === 4 ? 0.5 : 1.2;
}
const BLOCK_TIME: Record<number, number> = { 16: 1.15, 32: 1, 64: 0.97, 128: 0.95, 256: 0.96 };
const BLOCK_ERR: Record<number, number> = { 16: 0.6, 32: 0.8, 64: 1, 128: 1.3, 256: 1.7 };

export interface SyntheticOptions {
  seed: number;
  /** Scale of the multiplicative latency noise, one-sided: × exp(noise·|N(0,1)|) (default 0.02). */
  noise?: number;
  /** Milliseconds each stage waits (lets tests cancel mid-trial). */
  delayMs?: number;
  ppl_fp32?: number;
}

export class SyntheticEvaluator implements Evaluator {
  /** Trials whose accuracy stage ran / were evaluated at all: tests assert on these. */
  accuracyRuns = 0;
  evaluations: Config[] = [];
  private repeats = new Map<string, number>();

  constructor(
    private setting: SpaceContext,
    private opts: SyntheticOptions,
  ) {}

  /** The noise-free decode latency and perplexity increase of a config. */
  model(config: Config): { decode: number; pplInc: number; bytes: number } {
    const r = applyKnobs(this.setting.recipe, config);
    let decode = 0;
    let pplInc = 0;
    let bytes = 0;
    const total = this.setting.layers.reduce((s, l) => s + l.params, 0);
    for (const p of planLayers(r, this.setting.layers)) {
      const share = p.layer.params / total;
      const q = p.quant;
      const f = q
        ? kernelFactor(q.bits, q.accuracy_level) * (BLOCK_TIME[q.block_size] ?? 1) * (q.symmetric ? 1 : 1.03)
        : 1;
      decode += p.layer.params * 1e-4 * f;
      bytes += q ? (p.layer.params * q.bits) / 8 + (p.layer.params / q.block_size) * 4 : p.layer.params * 4;
      if (q) {
        const base = q.bits <= 4 ? 0.03 : q.bits <= 8 ? 0.002 : 0;
        let e = base * (BLOCK_ERR[q.block_size] ?? 1) * (q.symmetric ? 1.1 : 1) * share * 2;
        if (q.bits <= 4 && /down_proj$/.test(p.layer.name))
          e += 0.02 / this.setting.layers.filter((l) => /down_proj$/.test(l.name)).length;
        if (q.bits <= 4 && p.layer.name === 'lm_head') e += 0.03;
        pplInc += e;
      }
    }
    const threads = Math.min(r.runtime.intra_op_threads, this.setting.hardware.cores);
    decode = decode / Math.pow(threads, 0.8) + 0.2;
    return { decode, pplInc, bytes };
  }

  private async wait(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    if (!this.opts.delayMs) return;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(resolve, this.opts.delayMs);
      signal?.addEventListener(
        'abort',
        () => {
          clearTimeout(t);
          reject(signal.reason ?? Object.assign(new Error('aborted'), { name: 'AbortError' }));
        },
        { once: true },
      );
    });
  }

  async baseline(signal?: AbortSignal): Promise<TrialMetrics> {
    await this.wait(signal);
    const r = this.model({ 'quantize.bits': 32 });
    const ppl = this.opts.ppl_fp32 ?? 10;
    return {
      decode_ms_per_token: r.decode,
      throughput: 1000 / r.decode,
      model_bytes: r.bytes,
      ppl,
      ppl_fp32: ppl,
      kl: 0,
      top1: 1,
    };
  }

  async evaluate(config: Config, opts: EvaluateOptions): Promise<Evaluation> {
    this.evaluations.push(config);
    const key = configKey(config);
    const rep = this.repeats.get(key) ?? 0;
    this.repeats.set(key, rep + 1);
    // Noise depends on the seed, the config and how often it ran: reproducible, yet not the same twice.
    let h = this.opts.seed >>> 0;
    for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193) >>> 0;
    const rng = new Rng(h + rep * 7919);
    const m = this.model(config);
    await this.wait(opts.signal);
    // Load only ever adds time (bench/REPORT.md §2): the noise is one-sided, the model's figure the floor.
    const decode = m.decode * Math.exp((this.opts.noise ?? 0.02) * Math.abs(rng.normal()));
    const speed: TrialMetrics = {
      decode_ms_per_token: decode,
      throughput: 1000 / decode,
      model_bytes: m.bytes,
      prefill_ms: decode * 8,
    };
    if (opts.afterSpeed?.(speed) === 'prune') return { metrics: speed, status: 'pruned' };
    if (opts.speedOnly) return { metrics: speed, status: 'ok' };
    await this.wait(opts.signal);
    this.accuracyRuns++;
    const ppl_fp32 = this.opts.ppl_fp32 ?? 10;
    const ppl = ppl_fp32 * (1 + m.pplInc * Math.exp(0.05 * rng.normal()));
    return {
      metrics: { ...speed, ppl, ppl_fp32, kl: m.pplInc / 2, top1: Math.max(0, 1 - m.pplInc * 2) },
      status: 'ok',
    };
  }
}

/** A complete setting over synthetic layers: recipe (defaults + `doc`), layers, a 2-core AVX2 machine. */
export function syntheticSetting(
  doc: Record<string, unknown> = {},
  file = '/tmp/haqa-synthetic/haqa.yaml',
): SpaceContext {
  return {
    recipe: resolveRecipe({ model: 'model.onnx', ...doc }, file),
    layers: syntheticLayers({ layers: 4, hidden: 256, intermediate: 768, vocab: 2048 }),
    hardware: {
      cpu: 'synthetic AVX2 CPU',
      arch: 'x64',
      cores: 2,
      isa: ['avx', 'avx2', 'fma'],
      memory_bytes: 24 * 2 ** 30,
      providers: ['cpu'],
    },
  };
}
