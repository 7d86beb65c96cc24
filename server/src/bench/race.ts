// A paired race: a contender timed against a reference in one worker process, in ABBA order (contender,
// reference, reference, contender), so that both see the same machine load and a linear drift within a
// block cancels. Each block gives one pair: log(contender time / reference time) over the block. The
// figure is the median of those log ratios, with a distribution-free 95% interval from order statistics
// (the exact Binomial(n, ½) ranks; no normality assumed: a neighbour's burst skews single pairs).
//
// The race stops as soon as the interval decides against a threshold (the log ratio to beat: the
// incumbent's, or 0 = the reference itself):
//   better  the whole interval is below the threshold;
//   worse   the whole interval is above it;
//   tied    the whole interval lies within ±log(1 + tolerance) of it (`search.tolerance`, default 3%);
// or at the time cap ("unresolved"). A tie is a verdict of its own, never a coin flip.
//
// The reference is the fp32 model, the same for the whole search, so every contender's ratio is on one
// scale and any two contenders compare by their ratios. A duel (RaceAgainst: the incumbent's compressed
// model as the reference, its figures put back on the fp32 scale by chainRatios) is built and measured
// too; docs/ARCHITECTURE.md "Paired racing" says why the tuner does not use it by default. When the two sessions do
// not fit in memory, or the reference fails to load, the race is unpaired: the contender alone, its
// samples divided by the reference's figure from its own run; the result says `paired: false` and why,
// and the interval then includes the load's drift.
//
// This file holds the statistics (pure, unit-tested) and the worker side (raceLatency, called by
// ./measure.ts when a job carries `race`).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { SessionOptionsUsed } from './record';

export type RaceVerdict = 'better' | 'worse' | 'tied' | 'unresolved';
export type RaceSeries = 'decode' | 'prefill' | 'inference';

export interface RaceSettings {
  /** Ties: within ±log(1 + tolerance) of the threshold (0.03 = 3%). */
  tolerance: number;
  /** The log ratio (contender / reference time) to decide against; default 0, the reference itself. */
  threshold?: number;
  /** Per-trial time cap of the race, ms. */
  capMs: number;
  /** Which series decides (default: decode for decoders, inference otherwise). */
  series?: RaceSeries;
  /** Pairs before any decision (default 6: fewer cannot give a 95% order-statistics interval). */
  minPairs?: number;
  /** The reference's own medians (ms), for the unpaired fallback. */
  referenceMs?: Partial<Record<RaceSeries, number>>;
  /** Memory available to the two sessions, bytes (default os.freemem(); tests set it). */
  memoryBytes?: number;
  /**
   * Ground truth instead of a decision (bench/paired.ts's tables): race until the interval lies within
   * ±precision of the ratio (0.02 = ±2%), or until it is wholly above the threshold ('worse': not a
   * contender, so its precision cannot matter), or the cap. Unset: stop at the first verdict.
   */
  precision?: number;
}

/** A ratio contender / reference time (below 1 = the contender is faster) with its 95% interval. */
export interface RatioFigure {
  ratio: number;
  lo: number;
  hi: number;
  n: number;
}

/**
 * A duel: the race's reference is the incumbent plan's compressed model instead of fp32 (RunOptions
 * `raceAgainst`). Its `ratios` are the incumbent's own ratios to fp32 per series, so a duel's figures can
 * be put on the fp32 scale (chainRatios) and every plan still ranks on one scale.
 */
export interface RaceAgainst {
  /** The incumbent's model file (an artifact in the run store). */
  model: string;
  /** Its session options (its runtime knobs may differ from the contender's). */
  session: SessionOptionsUsed;
  /** Who it is, for the record: "trial #3". */
  label: string;
  /** The incumbent's ratio to fp32 per series (below 1: faster than fp32). */
  ratios: Partial<Record<RaceSeries, number>>;
}

export interface RaceResult {
  paired: boolean;
  /**
   * What the contender was timed against: absent or 'fp32' for the fp32 model; otherwise the incumbent
   * of a duel ("trial #3"), and `duel` holds the direct figures (contender / incumbent) while the series
   * fields are on the fp32 scale (the incumbent's ratio × the duel's).
   */
  reference?: string;
  duel?: Partial<Record<RaceSeries, RatioFigure>>;
  /** Why the race is unpaired, or what else a reader should know. */
  note?: string;
  verdict: RaceVerdict;
  series: RaceSeries;
  threshold: number;
  tolerance: number;
  /** Pairs (ABBA blocks; samples when unpaired) taken. */
  pairs: number;
  /** Wall time of the race itself, ms (part of the trial's cost). */
  wall_ms: number;
  decode?: RatioFigure;
  prefill?: RatioFigure;
  inference?: RatioFigure;
}

// ---------------------------------------------------------------- statistics

function logChoose(n: number, k: number): number {
  let s = 0;
  for (let i = 1; i <= k; i++) s += Math.log(n - k + i) - Math.log(i);
  return s;
}

/**
 * The 0-based ranks [l, u] of a distribution-free interval for the median of n samples with coverage
 * at least `level`: the largest k with P(Binomial(n, ½) < k) ≤ (1 − level)/2 gives ranks k−1 and n−k.
 * Null when n is too small for any such interval (n < 6 at 95%).
 */
export function medianRanks(n: number, level = 0.95): [number, number] | null {
  const alpha = (1 - level) / 2;
  let cdf = 0;
  let k = 0;
  // cdf = P(X ≤ k − 1) before the step; grow k while P(X ≤ k) stays within alpha.
  for (;;) {
    const next = cdf + Math.exp(logChoose(n, k) - n * Math.LN2);
    if (next > alpha) break;
    cdf = next;
    k++;
  }
  if (k === 0) return null;
  return [k - 1, n - k];
}

/**
 * Median of the log ratios, as a ratio, with its order-statistics 95% interval (lo/hi ±Infinity when n is too small).
 */
export function ratioFigure(logRatios: readonly number[]): RatioFigure {
  const s = [...logRatios].sort((a, b) => a - b);
  const n = s.length;
  const mid = n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  const r = medianRanks(n);
  return { ratio: Math.exp(mid), lo: r ? Math.exp(s[r[0]]) : 0, hi: r ? Math.exp(s[r[1]]) : Infinity, n };
}

/** The verdict of an interval against a threshold (log ratio) and a tolerance; 'unresolved' while undecided. */
export function verdictOf(f: RatioFigure, threshold: number, tolerance: number): RaceVerdict {
  if (!(f.hi < Infinity) || !(f.lo > 0)) return 'unresolved';
  const lo = Math.log(f.lo);
  const hi = Math.log(f.hi);
  const band = Math.log(1 + tolerance);
  if (hi < threshold) return 'better';
  if (lo > threshold) return 'worse';
  if (lo >= threshold - band && hi <= threshold + band) return 'tied';
  return 'unresolved';
}

/** Whether an interval lies within ±precision of its ratio (0.02: lo ≥ ratio/1.02 and hi ≤ ratio·1.02). */
export function withinPrecision(f: RatioFigure, precision: number): boolean {
  return f.lo > 0 && f.hi < Infinity && f.hi <= f.ratio * (1 + precision) && f.lo >= f.ratio / (1 + precision);
}

/** One ABBA block's log ratio: contender samples a1, a2 against reference samples b1, b2. */
export function blockLogRatio(a1: number, b1: number, b2: number, a2: number): number {
  return Math.log((a1 + a2) / (b1 + b2));
}

/** Something to time: each sample gives one value per series ([prefill, decode] or [inference]). */
export interface RaceSubject {
  sample(): Promise<number[]>;
}

export interface RaceRun {
  settings: RaceSettings;
  /** 'decoder' subjects give [prefill, decode]; 'generic' give [inference]. */
  kind: 'decoder' | 'generic';
  contender: RaceSubject;
  /** Absent: unpaired (the note says why). */
  reference?: RaceSubject;
  note?: string;
  now?: () => number;
  onPair?: (pairs: number, f: RatioFigure) => void;
}

const MAX_PAIRS = 2000;

/**
 * Runs the race: ABBA blocks until the deciding series' interval gives a verdict (after minPairs), or
 * the cap. Also the raw samples of the contender, for the record's usual latency summaries.
 */
export async function race(
  run: RaceRun,
): Promise<{ result: RaceResult; samples: number[][]; referenceSamples: number[][] }> {
  const now = run.now ?? (() => Number(process.hrtime.bigint()) / 1e6);
  const st = run.settings;
  const names: RaceSeries[] = run.kind === 'decoder' ? ['prefill', 'decode'] : ['inference'];
  const series: RaceSeries =
    st.series && names.includes(st.series) ? st.series : run.kind === 'decoder' ? 'decode' : 'inference';
  const threshold = st.threshold ?? 0;
  const minPairs = Math.max(6, st.minPairs ?? 6);
  const logs: number[][] = names.map(() => []);
  const samples: number[][] = names.map(() => []);
  const referenceSamples: number[][] = names.map(() => []);
  const t0 = now();
  let verdict: RaceVerdict = 'unresolved';
  let note = run.note;
  const refMs = st.referenceMs ?? {};
  if (!run.reference && names.some((s) => !(refMs[s]! > 0))) {
    note = `${note ?? 'unpaired'}; no reference figure to divide by`;
  }
  for (let pairs = 0; pairs < MAX_PAIRS;) {
    if (run.reference) {
      const a1 = await run.contender.sample();
      const b1 = await run.reference.sample();
      const b2 = await run.reference.sample();
      const a2 = await run.contender.sample();
      names.forEach((_, i) => {
        logs[i].push(blockLogRatio(a1[i], b1[i], b2[i], a2[i]));
        samples[i].push(a1[i], a2[i]);
        referenceSamples[i].push(b1[i], b2[i]);
      });
    } else {
      const a = await run.contender.sample();
      names.forEach((s, i) => {
        samples[i].push(a[i]);
        if (refMs[s]! > 0) logs[i].push(Math.log(a[i] / refMs[s]!));
      });
    }
    pairs++;
    const k = names.indexOf(series);
    if (logs[k].length === 0) {
      if (now() - t0 >= st.capMs) break;
      continue;
    }
    const f = ratioFigure(logs[k]);
    run.onPair?.(pairs, f);
    if (pairs >= minPairs) {
      verdict = verdictOf(f, threshold, st.tolerance);
      const done =
        st.precision !== undefined ? withinPrecision(f, st.precision) || verdict === 'worse' : verdict !== 'unresolved';
      if (done) break;
    }
    if (now() - t0 >= st.capMs) break;
  }
  const result: RaceResult = {
    paired: run.reference !== undefined,
    ...(note ? { note } : {}),
    verdict,
    series,
    threshold,
    tolerance: st.tolerance,
    pairs: samples[0].length / (run.reference ? 2 : 1),
    wall_ms: now() - t0,
  };
  names.forEach((s, i) => {
    if (logs[i].length) result[s] = ratioFigure(logs[i]);
  });
  return { result, samples, referenceSamples };
}

/**
 * A duel's result on the fp32 scale: each series' figure (ratio and interval) times the incumbent's ratio
 * for that series, the direct figures kept under `duel`, the threshold moved by the same factor. A series
 * the incumbent has no ratio for is dropped from the fp32-scale fields (it stays under `duel`).
 */
export function chainRatios(r: RaceResult, against: Pick<RaceAgainst, 'label' | 'ratios'>): RaceResult {
  const out: RaceResult = { ...r, reference: against.label, duel: {} };
  for (const s of ['decode', 'prefill', 'inference'] as const) {
    const f = r[s];
    if (!f) continue;
    out.duel![s] = f;
    const k = against.ratios[s];
    if (k !== undefined && k > 0 && Number.isFinite(k))
      out[s] = { ratio: f.ratio * k, lo: f.lo * k, hi: f.hi * k, n: f.n };
    else delete out[s];
  }
  const k = against.ratios[r.series];
  if (k !== undefined && k > 0) out.threshold = r.threshold + Math.log(k);
  return out;
}

// ---------------------------------------------------------------- memory

/** Bytes of a model file and the external data beside it that share its name (model.onnx.data, model.onnx_data). */
export function modelFileBytes(model: string): number {
  let total = 0;
  try {
    total += fs.statSync(model).size;
    const dir = path.dirname(model);
    const base = path.basename(model);
    for (const f of fs.readdirSync(dir)) {
      if (f !== base && f.startsWith(base)) total += fs.statSync(path.join(dir, f)).size;
    }
  } catch {
    /* a missing file is the loader's to report */
  }
  return total;
}

/**
 * Whether two sessions fit: each needs about its files' bytes once loaded, plus as much again while
 * onnxruntime builds it (we load one after the other, so the peak is the first's plus twice the second's).
 * Returns the reason when they don't.
 */
export function pairFits(
  model: string,
  reference: string,
  memoryBytes = os.freemem(),
  label = 'the fp32 reference',
): string | undefined {
  const a = modelFileBytes(model);
  const b = modelFileBytes(reference);
  const need = a + 2 * b;
  if (need <= memoryBytes) return undefined;
  const mib = (x: number) => `${Math.round(x / 2 ** 20)} MiB`;
  return (
    `unpaired: the contender (${mib(a)}) and ${label} ` +
    `(${mib(b)}) need about ${mib(need)}, ${mib(memoryBytes)} free`
  );
}
