// What each compression method does to a model, keyed by the recipe sections of config/methods.ts
// (which declares their knobs). compress/pipeline.ts runs these tables and names no method itself:
// - LAYER_STEPS, in the order a layer goes through them: sparsity → low rank → quantization, because
//   pruning picks weights on the original values, factorizing a pruned matrix keeps its dominant
//   directions, and quantization must see the final values it rounds. `weights` steps rewrite the float
//   matrices; the `emit` step (last) turns them into nodes (the interfaces are compress/step.ts).
// - GRAPH_PASSES, in order, once per model on the assembled graph after the layers: where a rotation,
//   a KV-cache change or another whole-graph rewrite registers.
// A new per-layer method: a step here (or in its own file, like quantizeStep.ts) and its section in
// config/methods.ts; a whole-graph pass: one entry in GRAPH_PASSES.
import type { SectionName } from '../config/methods';
import { lowRank } from './lowrank';
import { prune } from './sparsity';
import { quantizeStep } from './quantizeStep';
import { CompressError, Decision, GraphPass, LayerStep, WeightsStep } from './step';

interface SparsityDecision extends Decision {
  sparsity: { n: number; m: number } | { ratio: number };
  wanda: boolean;
}

const sparsityStep: WeightsStep<SparsityDecision> = {
  section: 'sparsity',
  kind: 'weights',
  decide(recipe, plan) {
    if (!plan.sparsity) return undefined;
    const wanda = recipe.sparsity?.method === 'wanda';
    return { sparsity: plan.sparsity, wanda, needs: { norms: wanda }, cacheKey: { wanda } };
  },
  apply(c, d, s) {
    if (s.mats.length !== 1) throw new CompressError(`${c.where}: sparsity must run before a factorization`);
    const m = s.mats[0];
    let norms: Float64Array | undefined;
    if (d.wanda) {
      const stats = c.calib?.inputs.get(s.x);
      if (!stats?.sqSum) throw new CompressError(`${c.where}: Wanda needs calibration activation norms for ${s.x}`);
      norms = stats.sqSum.map(Math.sqrt);
    }
    const sp = d.sparsity;
    prune(m.W, m.K, m.N, sp, norms);
    s.actions.push(
      `sparsity ${'m' in sp ? `${sp.n}:${sp.m}` : `${Math.round(sp.ratio * 100)}%`} ${norms ? 'wanda' : 'magnitude'}`,
    );
  },
};

interface LowRankDecision extends Decision {
  rank: number;
  method: 'svd' | 'randomized_svd';
  seed: number;
}

const lowRankStep: WeightsStep<LowRankDecision> = {
  section: 'low_rank',
  kind: 'weights',
  decide(recipe, plan) {
    if (!plan.lowRank) return undefined;
    const method = recipe.low_rank?.method ?? 'randomized_svd';
    const seed = recipe.search.seed + 1;
    return { rank: plan.lowRank.rank, method, seed, factorizes: true, cacheKey: { method, seed } };
  },
  apply(c, d, s) {
    if (s.mats.length !== 1)
      throw new CompressError(`${c.where}: low rank factors the whole weight, and it is already split`);
    const m = s.mats[0];
    const lr = lowRank(m.W, m.K, m.N, d.rank, { method: d.method, seed: d.seed });
    const mid = c.names.take(`${s.scope}/lowrank/MatMul_output_0`);
    s.mats = [
      {
        W: lr.a,
        K: m.K,
        N: lr.rank,
        input: m.input,
        output: mid,
        name: `${s.scope}/lowrank_a/MatMul`,
        stem: `${m.stem}.lowrank_a`,
      },
      {
        W: lr.b,
        K: lr.rank,
        N: m.N,
        input: mid,
        output: m.output,
        name: `${s.scope}/lowrank_b/MatMul`,
        stem: `${m.stem}.lowrank_b`,
      },
    ];
    s.actions.push(`lowrank r=${lr.rank} ${lr.method}`);
  },
};

/** Per-layer steps, in the order a layer goes through them (see the header). */
export const LAYER_STEPS: readonly LayerStep[] = [sparsityStep, lowRankStep, quantizeStep] as LayerStep[];

/** Whole-graph passes, in order, after the layers. */
export const GRAPH_PASSES: readonly GraphPass[] = [
  {
    // Custom-op domains (com.microsoft for MatMulNBits) that the new nodes use and the model does not import yet.
    name: 'opset imports',
    applies: () => true,
    run(g) {
      for (const domain of g.domains) {
        if (!g.opsetImport.some((o) => o.domain === domain)) g.opsetImport.push({ domain, version: 1 });
      }
    },
  },
];

/** The step of a section, or undefined (the runtime section has none). */
export function layerStep(section: SectionName): LayerStep | undefined {
  return LAYER_STEPS.find((s) => s.section === section);
}
