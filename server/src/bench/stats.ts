// Robust summaries of repeated timings on a noisy, shared machine: the median with p10/p90, and a
// distribution-free confidence interval of the median from order statistics, which decides when we
// have measured enough. No normality is assumed: timings are skewed (a busy neighbour only ever adds).

export interface Summary {
  median: number;
  /**
   * The fastest sample: on a shared machine load only ever adds time, so this is the closest a window
   * gets to the configuration's own speed (unraced runs' tuner figure, agent/evaluator.ts). Absent in
   * records written before it was kept.
   */
  min?: number;
  p10: number;
  p90: number;
  n: number;
  /** Half-width of the ~95% CI of the median, relative to the median (0.03 = ±3%); null below 3 samples. */
  ci_rel: number | null;
}

/** Linear-interpolated quantile of sorted values (q in [0, 1]). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export function median(xs: readonly number[]): number {
  return quantile(
    [...xs].sort((a, b) => a - b),
    0.5,
  );
}

/**
 * The ~95% confidence interval of the median from order statistics: with n samples the median lies
 * between the l-th and u-th smallest with probability ≈ 0.95 for l, u = n/2 ∓ 1.96·√n/2 (the normal
 * approximation of the Binomial(n, ½) rank of the true median). Indices are 0-based and clamped.
 */
export function medianCI(sorted: readonly number[]): [number, number] {
  const n = sorted.length;
  if (n === 0) return [NaN, NaN];
  const half = (1.96 * Math.sqrt(n)) / 2;
  const l = Math.max(0, Math.floor(n / 2 - half) - 1);
  const u = Math.min(n - 1, Math.ceil(n / 2 + half) - 1);
  return [sorted[l], sorted[u]];
}

export function summarize(samples: readonly number[]): Summary {
  const s = [...samples].sort((a, b) => a - b);
  const median = quantile(s, 0.5);
  const [lo, hi] = medianCI(s);
  const ci_rel = s.length < 3 || !(median > 0) ? null : (hi - lo) / 2 / median;
  return { median, min: s[0], p10: quantile(s, 0.1), p90: quantile(s, 0.9), n: s.length, ci_rel };
}

export interface RepeatPolicy {
  /** Always take at least this many samples (after warm-up). */
  minReps: number;
  /** Sample for at least this long, so the window spans the machine's load as it comes and goes. */
  minMs: number;
  /** Never more than this many. */
  maxReps: number;
  /** Stop once the median's CI half-width is within this fraction of the median... */
  targetCiRel: number;
  /** ...or once this much time was spent sampling. */
  maxMs: number;
}

// Caps are mostly in time: a cheap model may take many samples (it costs little), an expensive one
// stops on the clock. The tuner runs QUICK; `haqa bench` without --quick runs FULL.
// QUICK also samples for 5 s at least: load on a shared machine comes in stretches of seconds, and the
// tuner reads a window's fastest sample (agent/evaluator.ts), which needs the window to outlast them.
// Measured on the 2-core machine (10 fresh processes each, the fixture's 4-bit model, a quiet hour):
// the fastest sample of a 2 s window varied by σ 0.17–0.23 of log latency, of a 5 s window by 0.02
// (1 thread) to 0.11 (2 threads). In a busier hour (the search table, bench/REPORT.md §2) even 5 s
// windows varied by σ 0.17–0.20: a longer window helps only as far as the load's stretches are short.
export const FULL_POLICY: RepeatPolicy = { minReps: 10, minMs: 0, maxReps: 400, targetCiRel: 0.02, maxMs: 30_000 };
export const QUICK_POLICY: RepeatPolicy = { minReps: 5, minMs: 5_000, maxReps: 400, targetCiRel: 0.05, maxMs: 6_000 };

/** True when every series has converged (or a cap is hit). */
export function enough(series: readonly (readonly number[])[], policy: RepeatPolicy, elapsedMs: number): boolean {
  const n = Math.min(...series.map((s) => s.length));
  if (n < policy.minReps || (elapsedMs < policy.minMs && n < policy.maxReps)) return false;
  if (n >= policy.maxReps || elapsedMs >= policy.maxMs) return true;
  return series.every((s) => {
    const ci = summarize(s).ci_rel;
    return ci !== null && ci <= policy.targetCiRel;
  });
}
