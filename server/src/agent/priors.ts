// Hardware-aware priors: what is known about onnxruntime's CPU kernels before anything is measured
// (the kernel cliff bench/REPORT.md measures, and public onnxruntime discussions). They weight the first trials and the
// optimizer's densities; measurements override them.
//
// - MatMulNBits with accuracy_level 4 computes in int8 (activations quantized on the fly). On AVX2
//   CPUs without VNNI this is where the speed of 4- and 8-bit weights comes from; with the default
//   level 0, 4-bit is barely faster than fp32 (figures: describe.ts REPORTED_KERNELS).
// - 8-bit with accuracy_level 0 is a pathological kernel path, many times slower than fp32. A strong
//   prior against it, not a rule.
// - Decode is weight-bandwidth bound: fewer bits usually win, larger blocks carry fewer scales.
// - All idle cores for intra-op threads is the usual best at batch 1 (on a shared machine, fewer).
// - Layer-scoped bits lean to 8: those are the accuracy-sensitive layers.
import { hasInt8Dot, HardwareProfile } from './profile';
import type { Objective } from './objective';
import type { SearchSpace } from './space';
import type { Config, SearchValue } from './types';

export interface Priors {
  /** Relative weight of each value, per knob key (same order as the space's values). */
  weights: Record<string, number[]>;
  /** First configs to try, best guess first. */
  seeds: Config[];
  /** Log-factor added to a config's score for combinations known to be bad. */
  jointPenalty(config: Config): number;
  notes: string[];
}

function valueWeight(
  path: string,
  scope: string | undefined,
  v: SearchValue,
  hw: HardwareProfile,
  o: Objective,
): number {
  const latency = o.metric !== 'size';
  // The layers people scope bit-widths to are the sensitive ones (down_proj's activation outliers): for
  // them the prior leans to 8 bits. (Keeping lm_head in float stays neutral: it is a large layer in
  // small models, so its speed cost is as real as its accuracy benefit.)
  if (scope !== undefined && path === 'quantize.bits') return v === 8 ? 2 : v === 4 ? 1.2 : v === 32 ? 0.8 : 0.6;
  switch (path) {
    case 'quantize.accuracy_level':
      return v === 4 ? (latency ? (hasInt8Dot(hw) ? 3 : 4) : 1) : 1;
    case 'quantize.bits':
      if (o.metric === 'size') return v === 4 ? 3 : v === 8 ? 1.5 : v === 32 ? 0.3 : 1;
      return v === 4 ? 2 : v === 8 ? 1.6 : v === 32 ? 0.7 : 0.8;
    case 'quantize.block_size':
      return v === 32 ? 1.5 : v === 128 || v === 64 ? 1.2 : 1;
    case 'quantize.symmetric':
      return v === true ? 1.3 : 1;
    case 'runtime.intra_op_threads':
      // All idle cores: every core on a quiet machine, fewer when other work holds some.
      return v === Math.max(1, hw.cores - (hw.busy_cores ?? 0)) ? 3 : 1;
    case 'quantize.skip':
      return 1;
    case 'sparsity.pattern':
      // No N:M kernels on the CPU execution provider: 2:4 saves no time there.
      return hw.providers.includes('cuda') ? 1 : v === null || v === 'none' ? 3 : 0.5;
    default:
      return 1;
  }
}

export function hardwarePriors(space: SearchSpace, hw: HardwareProfile, o: Objective): Priors {
  const weights: Record<string, number[]> = {};
  for (const k of space.knobs) weights[k.key] = k.values.map((v) => valueWeight(k.path, k.scope, v, hw, o));

  const globalBits = space.knobs.find((k) => k.key === 'quantize.bits');
  const globalAcc = space.knobs.find((k) => k.key === 'quantize.accuracy_level');
  const jointPenalty = (c: Config): number => {
    // 8-bit weights with fp32 compute: the pathological path.
    const acc = c['quantize.accuracy_level'];
    let p = 0;
    for (const [key, v] of Object.entries(c)) {
      if (key.startsWith('quantize.bits') && v === 8 && (acc === 0 || acc === undefined))
        p -= key === 'quantize.bits' ? 3 : 1;
    }
    return p;
  };

  // Seeds: the prior's mode, then the two variants that the notes say can win (8-bit int8-compute;
  // the largest block).
  const mode: Config = {};
  for (const k of space.knobs) {
    const w = weights[k.key];
    mode[k.key] = k.values[w.indexOf(Math.max(...w))];
  }
  const seeds: Config[] = [mode];
  if (globalBits?.values.includes(8) && globalAcc?.values.includes(4))
    seeds.push({ ...mode, 'quantize.bits': 8, 'quantize.accuracy_level': 4 });
  const blocks = space.knobs.find((k) => k.key === 'quantize.block_size');
  if (blocks && blocks.values.length > 1)
    seeds.push({ ...mode, 'quantize.block_size': blocks.values[blocks.values.length - 1] });
  const notes = [
    hasInt8Dot(hw)
      ? 'CPU has int8 dot-product instructions: accuracy_level 4 (int8 compute) expected fastest for 4/8-bit weights'
      : 'CPU lacks VNNI/int8 dot products: accuracy_level 4 is still where ' +
        'MatMulNBits gains come from; 8-bit with accuracy_level 0 is known pathological',
  ];
  return { weights, seeds, jointPenalty, notes };
}
