// Paired search benchmark (issue 13; not a test): does the tuner's answer survive a noisy machine?
//
//   node --import tsx bench/paired.ts --stage table-a|table-b|live-own|live-loadgen|live-own-duel|live-loadgen-duel|all|summary
//        [--remeasure]
//        [--recipe examples/tiny-llama/haqa.yaml] [--precision 0.02] [--cap 90] [--seeds 5] [--trials 12]
//        [--out bench/results]
//
// Ground truth (`table-a`, `table-b`): every configuration of the recipe's search space raced against
// the fp32 model in one worker (bench/race.ts: ABBA blocks, both models under the same load) until the
// 95% interval of the decode-time ratio lies within ±precision (RaceSettings.precision) or the cap; a
// configuration whose whole interval is above 1.1× the best so far stops early ('worse'). The
// second table runs in the reverse order, at another hour, and reuses the first's accuracy (it is
// deterministic: the same artifact); bench/agreement.ts says how well the two reproduce. The truth a
// search is scored by is the geometric mean of the tables' ratios (one table when only one exists).
//
// Live searches (`live-own`, `live-loadgen`): the real loop (agent/loop.ts, the tuner's ranking rule and
// races) with the offline optimizer and random search, `--seeds` seeds × `--trials` trials, each trial a
// real compression (artifacts reused across searches of a stage) and a real race; under the machine's own
// load, or with bench/loadgen.ts running beside them. After each trial the search's current answer (the
// loop's best) is kept, and scored when the summary is made: its ground-truth ratio over the best feasible
// configuration's (so the live stages may run before, between or after the tables). Trial wall times kept.
// The tuner races every trial against fp32; the `-duel` live stages are the same searches with each new
// plan raced against the incumbent instead (a duel, bench/race.ts RaceAgainst; RecipeEvaluator
// raceReference 'incumbent'): the comparison behind the choice of reference. They are not part of `all`.
//
// Each stage writes <out>/paired-<stage>.json; `summary` reads them into <out>/paired.json, which
// bench/run.ts's `paired` part renders as bench/REPORT.md §2.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { loadSetting } from '../server/src/agent/setting';
import { enumerate, planKey } from '../server/src/agent/space';
import { judge, objectiveOf } from '../server/src/agent/objective';
import { runLoop } from '../server/src/agent/loop';
import { TpeSearch } from '../server/src/agent/offline';
import { RandomSearch } from '../server/src/agent/random';
import { RecipeEvaluator } from '../server/src/agent/evaluator';
import { applyKnobs } from '../server/src/config/plan';
import { runRecipe } from '../server/src/bench/run';
import { DEFAULT_TOLERANCE } from '../server/src/agent/ranking';
import type { Proposer } from '../server/src/agent/proposer';
import type { Config, TrialMetrics } from '../server/src/agent/types';
import { withinPrecision, type RatioFigure } from '../server/src/bench/race';
import { sha256 } from '../server/src/bench/record';
import { startLoad } from '../server/src/bench/loadgen';
import { median } from '../server/src/bench/stats';
import { writeFileAtomicSync } from '../server/src/util/atomicWrite';
import { agreement } from './agreement';

const { values } = parseArgs({
  options: {
    stage: { type: 'string', default: 'summary' },
    recipe: { type: 'string', default: 'examples/tiny-llama/haqa.yaml' },
    precision: { type: 'string', default: '0.02' },
    cap: { type: 'string', default: '90' },
    seeds: { type: 'string', default: '5' },
    trials: { type: 'string', default: '12' },
    out: { type: 'string', default: 'bench/results' },
    remeasure: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '2' },
  },
});
const OUT = path.resolve(values.out!);
const PRECISION = Number(values.precision);
/** How near the best so far a configuration must be for its precision to matter. */
const NEAR = 1.1;
const CAP_MS = Number(values.cap) * 1000;
/** The tables' run store (their artifacts are shared by both tables). */
const STORE = path.join(os.tmpdir(), 'haqa-bench-paired-store');
/** Each live stage has its own store: a plan is compressed for real the first time a search tries it, and
 *  reused by later searches of the stage (as a user's store reuses it across tune sessions). */
const liveStore = (stage: string) => path.join(os.tmpdir(), `haqa-bench-${stage}-store`);

/** One configuration of a ground-truth table. */
export interface PairedEntry {
  key: string;
  config: Config;
  status: 'ok' | 'failed';
  error?: string;
  /** Decode time / fp32 decode time, with its 95% interval (lo, hi) and pairs (n). */
  decode?: RatioFigure;
  paired?: boolean;
  note?: string;
  /** The race's wall time, ms. */
  race_ms?: number;
  /** 'worse': stopped early, wholly above `threshold` (NEAR × the best so far). */
  verdict?: string;
  threshold?: number;
  ppl?: number;
  ppl_fp32?: number;
  model_bytes?: number;
}

export interface PairedTable {
  stage: string;
  key: string;
  precision: number;
  cap_ms: number;
  started_at: string;
  finished_at: string;
  load: number[];
  cpu: string;
  flags: string[];
  baseline: TrialMetrics;
  entries: PairedEntry[];
}

const file = (stage: string) => path.join(OUT, `paired-${stage}.json`);
/** A stage's JSON, when it was measured for this model, space and CPU (`key`); otherwise undefined. */
const read = <T extends { key: string }>(stage: string, key: string): T | undefined => {
  if (!fs.existsSync(file(stage))) return undefined;
  const j = JSON.parse(fs.readFileSync(file(stage), 'utf8')) as T;
  if (j.key === key) return j;
  console.error(`${file(stage)} was measured for another model, space or machine: not used`);
  return undefined;
};
const write = (stage: string, j: unknown) => {
  fs.mkdirSync(OUT, { recursive: true });
  writeFileAtomicSync(file(stage), JSON.stringify(j, null, 1) + '\n');
};

async function setting() {
  const s = await loadSetting(path.resolve(values.recipe!));
  const configs = [...new Map([...enumerate(s.space)].map((c) => [planKey(c, s.setting), c])).entries()];
  const key = sha256(
    JSON.stringify([
      sha256(fs.readFileSync(s.setting.recipe.model)),
      s.space.knobs.map((k) => [k.key, k.values]),
      s.setting.hardware.cpu,
      s.setting.hardware.isa,
    ]),
  ).slice(0, 16);
  return { ...s, configs, key };
}

/** Load average now (1, 5, 15 min); the CPU and its ISA flags come from the setting's hardware profile. */
const loadNow = () => os.loadavg().map((x) => Math.round(x * 100) / 100);

/** What every stage's JSON starts with: which stage, for which setting, when, under what load, on which CPU. */
function stageHeader(stage: string, s: Awaited<ReturnType<typeof setting>>, started_at: string, load0: number[]) {
  return {
    stage,
    key: s.key,
    started_at,
    finished_at: new Date().toISOString(),
    load: [...load0, ...loadNow()],
    cpu: s.setting.hardware.cpu,
    flags: s.setting.hardware.isa,
  };
}

async function measureTable(stage: 'table-a' | 'table-b'): Promise<void> {
  const s = await setting();
  const first = stage === 'table-b' ? read<PairedTable>('table-a', s.key) : undefined;
  const accuracy = new Map(first?.entries.map((e) => [planKey(e.config, s.setting), e]));
  const ev = new RecipeEvaluator(s.setting.recipe, {
    quick: true,
    storeDir: STORE,
    racePrecision: PRECISION,
    raceCapMs: CAP_MS,
  });
  const started_at = new Date().toISOString();
  const load0 = loadNow();
  const baseline = await ev.baseline();
  const order = stage === 'table-b' ? [...s.configs].reverse() : s.configs;
  const entries: PairedEntry[] = [];
  for (const [i, [key, config]] of order.entries()) {
    const known = accuracy.get(key);
    const speedOnly = known?.status === 'ok' && known.ppl !== undefined;
    const t = Date.now();
    // Precision only matters near the best: a configuration whose whole interval is above 1.1× the best so
    // far (or fp32, before any) stops as 'worse' (RaceSettings.precision).
    const bestSoFar = Math.min(1, ...entries.filter((e) => e.decode).map((e) => e.decode!.ratio));
    const threshold = Math.log(NEAR * bestSoFar);
    const r = await ev.evaluate(config, { speedOnly, race: { threshold, tolerance: DEFAULT_TOLERANCE } });
    const race = r.metrics.race;
    const e: PairedEntry =
      r.status === 'ok' && race?.decode
        ? {
            key,
            config,
            status: 'ok',
            decode: race.decode,
            paired: race.paired,
            ...(race.note ? { note: race.note } : {}),
            race_ms: race.wall_ms,
            verdict: race.verdict,
            threshold: Math.exp(threshold),
            ppl: speedOnly ? known!.ppl : r.metrics.ppl,
            ppl_fp32: speedOnly ? known!.ppl_fp32 : r.metrics.ppl_fp32,
            model_bytes: r.metrics.model_bytes,
          }
        : { key, config, status: 'failed', error: r.error ?? 'no race figure' };
    entries.push(e);
    const d = e.decode;
    console.error(
      `  ${stage} ${i + 1}/${order.length} ${JSON.stringify(config)} → ` +
        (d
          ? `${d.ratio.toFixed(3)}× fp32 [${d.lo.toFixed(3)}, ${d.hi.toFixed(3)}] ${d.n} pairs, ` +
            `${((Date.now() - t) / 1000).toFixed(1)} s`
          : e.error),
    );
  }
  write(stage, {
    ...stageHeader(stage, s, started_at, load0),
    precision: PRECISION,
    cap_ms: CAP_MS,
    baseline,
    entries,
  } satisfies PairedTable);
}

/** The ground truth: per plan, the geometric mean of the tables' ratios, and its metrics for judging. */
// Entries are keyed by the plan key of their configuration as this code computes it (`keyOf`), not by
// the key stored when they were measured: the plan key's format grows with the engine (issue 17 added
// llama.cpp's fields), and a table measured before must still score a search run after (scoring keeps
// the stored keys as aliases, for live files written before).
function truthOf(tables: PairedTable[], keyOf: (c: Config) => string) {
  const byKey = new Map<string, { ratios: number[]; e: PairedEntry }>();
  for (const t of tables)
    for (const e of t.entries) {
      if (e.status !== 'ok' || !e.decode) continue;
      const k = keyOf(e.config);
      const v = byKey.get(k) ?? { ratios: [], e };
      v.ratios.push(e.decode.ratio);
      byKey.set(k, v);
    }
  return new Map(
    [...byKey].map(([k, v]) => [
      k,
      { ...v, ratio: Math.exp(v.ratios.reduce((a, b) => a + Math.log(b), 0) / v.ratios.length) },
    ]),
  );
}

interface LiveFile {
  key: string;
  runs: LiveRun[];
  trials: number;
  seeds: number;
  started_at: string;
  finished_at: string;
  load: number[];
}

interface TraceEntry {
  config: Config;
  status: string;
  repeat?: boolean;
  ratio?: number;
  lo?: number;
  hi?: number;
  pairs?: number;
  verdict?: string;
  threshold?: number;
  /** A duel's rival ("trial #3"); absent: raced against fp32. */
  reference?: string;
  note?: string;
}

interface LiveRun {
  strategy: string;
  seed: number;
  /** After trial t: the plan key of the search's answer (the loop's best, when feasible), or null. */
  answers: (string | null)[];
  /** Wall time of each trial, s (compression when the plan is new to this stage's store, race, accuracy). */
  trial_s: number[];
  /** Each trial as the loop saw it: its plan, the race's figure and verdict against the threshold. */
  trace?: TraceEntry[];
  answer?: Config;
}

/** Ground truth for scoring: each plan's ratio, whether it is feasible, and the best feasible ratio. */
function scoring(tables: PairedTable[], recipe: Parameters<typeof objectiveOf>[0], keyOf: (c: Config) => string) {
  const truth = truthOf(tables, keyOf);
  const objective = objectiveOf(recipe);
  const feasible = (k: string) => {
    const v = truth.get(k);
    if (!v) return false;
    const m: TrialMetrics = { decode_ms_per_token: v.ratio, ppl: v.e.ppl, ppl_fp32: v.e.ppl_fp32 };
    return judge(objective, 'ok', m, tables[0]?.baseline).feasible;
  };
  const best = Math.min(...[...truth].filter(([k]) => feasible(k)).map(([, v]) => v.ratio));
  const alias = new Map(tables.flatMap((t) => t.entries.map((e) => [e.key, keyOf(e.config)] as const)));
  /** An answer's ground truth over the best (Infinity: none yet, infeasible or not in the tables). */
  const score = (key: string | null) => {
    const k = key && (truth.has(key) ? key : alias.get(key));
    return k && feasible(k) ? truth.get(k)!.ratio / best : Infinity;
  };
  return { truth, best, score };
}

type LiveStage = (typeof LIVE_STAGES)[number];
const LIVE_STAGES = ['live-own', 'live-loadgen', 'live-own-duel', 'live-loadgen-duel'] as const;

async function live(stage: LiveStage): Promise<void> {
  const s = await setting();
  const seeds = Number(values.seeds);
  const trials = Number(values.trials);
  const objective = objectiveOf(s.setting.recipe);
  const loadgen = stage.startsWith('live-loadgen');
  const ev = new RecipeEvaluator(s.setting.recipe, {
    quick: true,
    storeDir: liveStore(stage),
    raceReference: stage.endsWith('-duel') ? 'incumbent' : 'fp32',
  });
  const load = loadgen ? startLoad({ seed: 13, threads: 1 }) : undefined;
  const runs: LiveRun[] = [];
  const started_at = new Date().toISOString();
  const load0 = loadNow();
  try {
    const baseline = await ev.baseline();
    const strategies: Record<string, (seed: number) => Proposer> = {
      offline: (seed) => new TpeSearch({ seed }),
      random: (seed) => new RandomSearch(seed),
    };
    // Seeds outermost, so both strategies see the same hours of the machine.
    for (let seed = 0; seed < seeds; seed++)
      for (const [strategy, make] of Object.entries(strategies)) {
        const run: LiveRun = { strategy, seed, answers: [], trial_s: [], trace: [] };
        let t = Date.now();
        const result = await runLoop({
          setting: s.setting,
          space: s.space,
          objective,
          evaluator: ev,
          proposer: make(seed),
          budget: { trials },
          baseline,
          onEvent: (e) => {
            if (e.type !== 'trial-end') return;
            run.trial_s.push((Date.now() - t) / 1000);
            t = Date.now();
            run.answers.push(e.best?.feasible ? planKey(e.best.config, s.setting) : null);
            const race = e.trial.metrics.race;
            run.trace!.push({
              config: e.trial.config,
              status: e.trial.status,
              ...(e.trial.repeatOf ? { repeat: true } : {}),
              ...(race?.decode
                ? { ratio: race.decode.ratio, lo: race.decode.lo, hi: race.decode.hi, pairs: race.decode.n }
                : {}),
              ...(race ? { verdict: race.verdict, threshold: Math.exp(race.threshold) } : {}),
              ...(race?.reference ? { reference: race.reference } : {}),
              ...(race?.note ? { note: race.note } : {}),
            });
          },
        });
        run.answer = result.best?.config;
        runs.push(run);
        console.error(
          `  ${stage} ${strategy} seed ${seed}: answer ${JSON.stringify(run.answer)}; ` +
            `trials ${run.trial_s.map((x) => x.toFixed(0)).join(' ')} s`,
        );
        // Written after every search, so an interrupted stage keeps what it measured.
        write(stage, liveRecord());
      }
  } finally {
    await load?.stop();
  }
  function liveRecord() {
    return {
      ...stageHeader(stage, s, started_at, load0),
      loadgen: loadgen ? { seed: 13, threads: 1 } : undefined,
      reference: stage.endsWith('-duel') ? 'incumbent' : 'fp32',
      seeds,
      trials,
      runs,
    };
  }
  write(stage, liveRecord());
}

/**
 * Is a duel fair to both sides? (`duel-bias`, not part of `all`.) The ground truth's best plan A and the
 * best other plan B with the same threads, compressed once; then, `--rounds` times: A against fp32, B
 * against fp32, A against a copy of its own artifact (1.0 if the race favours neither side), A against
 * B and B against A (their product is 1.0 if unbiased). Each to ±1% or the cap.
 */
async function duelBias(): Promise<void> {
  const s = await setting();
  const tables = (['table-a', 'table-b'] as const).map((t) => read<PairedTable>(t, s.key)).filter((t) => !!t);
  const byTruth = [...truthOf(tables, (c) => planKey(c, s.setting)).values()].sort((x, y) => x.ratio - y.ratio);
  if (byTruth.length < 2) throw new Error('duel-bias needs a ground-truth table (run --stage table-a first)');
  const threads = (c: Config) => c['runtime.intra_op_threads'];
  const A = byTruth[0].e.config;
  const B = byTruth.find((v) => threads(v.e.config) === threads(A) && v.e.config !== A)!.e.config;
  const store = path.join(os.tmpdir(), 'haqa-bench-duel-bias-store');
  const rounds = Number(values.rounds);
  const measure = { latency: true, accuracy: false };
  // Threshold far above: a precision race then never stops early as 'worse'.
  const settings = { tolerance: DEFAULT_TOLERANCE, capMs: CAP_MS, precision: 0.01, threshold: Math.log(10) };
  const started_at = new Date().toISOString();
  const load0 = loadNow();
  const fp32 = async (c: Config) => {
    const r = await runRecipe(applyKnobs(s.setting.recipe, c), {
      quick: true,
      storeDir: store,
      measure,
      race: settings,
    });
    if (r.status !== 'ok' || !r.race?.decode) throw new Error(`${JSON.stringify(c)}: ${r.error?.message ?? 'no race'}`);
    return r;
  };
  const ra = await fp32(A);
  const rb = await fp32(B);
  // A's artifact copied beside it in the store: the same bytes under another name.
  const copy = path.join(path.dirname(path.dirname(ra.artifact!)), `copy-${path.basename(path.dirname(ra.artifact!))}`);
  fs.rmSync(copy, { recursive: true, force: true });
  fs.cpSync(path.dirname(ra.artifact!), copy, { recursive: true });
  const duel = async (c: Config, rival: typeof ra, label: string, model = rival.artifact!) => {
    const r = await runRecipe(applyKnobs(s.setting.recipe, c), {
      quick: true,
      storeDir: store,
      measure,
      race: settings,
      raceAgainst: { model, session: rival.session_options, label, ratios: { decode: 1, prefill: 1 } },
    });
    if (r.race?.reference !== label) throw new Error(`${label}: not a duel (${r.race?.note ?? r.error?.message})`);
    return r.race.duel!.decode!;
  };
  const figures: { contender: string; reference: string; figure: RatioFigure }[] = [];
  const add = (contender: string, reference: string, figure: RatioFigure) => {
    figures.push({ contender, reference, figure });
    console.error(
      `  duel-bias ${contender} vs ${reference}: ${figure.ratio.toFixed(3)} ` +
        `[${figure.lo.toFixed(3)}, ${figure.hi.toFixed(3)}] n${figure.n}`,
    );
  };
  add('A', 'fp32', ra.race!.decode!);
  add('B', 'fp32', rb.race!.decode!);
  for (let i = 0; i < rounds; i++) {
    add('A', 'A (copy)', await duel(A, ra, 'A (copy)', path.join(copy, path.basename(ra.artifact!))));
    add('A', 'B', await duel(A, rb, 'B'));
    add('B', 'A', await duel(B, ra, 'A'));
    add('A', 'fp32', (await fp32(A)).race!.decode!);
    add('B', 'fp32', (await fp32(B)).race!.decode!);
  }
  write('duel-bias', {
    ...stageHeader('duel-bias', s, started_at, load0),
    A,
    B,
    figures,
  });
}

/** What the report renders (bench/run.ts pairedSection), written to <out>/paired.json. */
async function summary(): Promise<void> {
  const s = await setting();
  const tables = (['table-a', 'table-b'] as const).map((t) => read<PairedTable>(t, s.key)).filter((t) => !!t);
  const out: Record<string, unknown> = { precision: PRECISION, tables: {} };
  const keyOf = (c: Config) => planKey(c, s.setting);
  const truth = truthOf(tables, keyOf);
  const [a, b] = tables;
  if (a && b) {
    const name = (e: PairedEntry) => JSON.stringify(e.config);
    const ratios = (t: PairedTable) =>
      new Map(t.entries.filter((e) => e.decode).map((e) => [name(e), e.decode!.ratio] as const));
    out.agreement = agreement(ratios(a), ratios(b));
    // Where both tables measured a configuration closely (≥ 30 pairs each), do their intervals overlap? A
    // disjoint pair means the ratio itself moved between the hours (the load changes relative costs), which
    // pairing cannot cancel, rather than noise.
    const close = a.entries.flatMap((e) => {
      const f = b.entries.find((x) => keyOf(x.config) === keyOf(e.config))?.decode;
      return e.decode && f && e.decode.n >= 30 && f.n >= 30 ? [[e.decode, f] as const] : [];
    });
    out.disjoint = {
      compared: close.length,
      disjoint: close.filter(([x, y]) => x.hi < y.lo || y.hi < x.lo).length,
    };
  }
  for (const t of tables) {
    const ok = t.entries.filter((e) => e.decode);
    /** Configurations within NEAR of the table's best: where precision matters. */
    const best = Math.min(...ok.map((e) => e.decode!.ratio));
    const near = ok.filter((e) => e.decode!.ratio <= NEAR * best);
    (out.tables as Record<string, unknown>)[t.stage] = {
      configurations: t.entries.length,
      failed: t.entries.length - ok.length,
      within_precision: ok.filter((e) => withinPrecision(e.decode!, t.precision)).length,
      stopped_worse: ok.filter((e) => e.verdict === 'worse' && !withinPrecision(e.decode!, t.precision)).length,
      near_best: near.length,
      near_best_within_precision: near.filter((e) => withinPrecision(e.decode!, t.precision)).length,
      unpaired: ok.filter((e) => !e.paired).length,
      median_race_s: median(ok.map((e) => (e.race_ms ?? 0) / 1000)),
      median_pairs: median(ok.map((e) => e.decode!.n)),
      precision: t.precision,
      cap_s: t.cap_ms / 1000,
      started_at: t.started_at,
      finished_at: t.finished_at,
      load: t.load,
      cpu: t.cpu,
      flags: t.flags,
    };
  }
  const sc = tables.length ? scoring(tables, s.setting.recipe, keyOf) : undefined;
  // The table's top: the configurations by ground truth, each table's figure beside it.
  out.top = [...truth.entries()]
    .sort((x, y) => x[1].ratio - y[1].ratio)
    .slice(0, 8)
    .map(([k, v]) => ({
      config: v.e.config,
      feasible: sc ? sc.score(k) < Infinity : undefined,
      ratio: v.ratio,
      ppl_increase: v.e.ppl && v.e.ppl_fp32 ? v.e.ppl / v.e.ppl_fp32 - 1 : undefined,
      tables: tables.map((t) => {
        const e = t.entries.find((x) => keyOf(x.config) === k)?.decode;
        return e ? { ratio: e.ratio, lo: e.lo, hi: e.hi, n: e.n } : null;
      }),
    }));
  out.live = {};
  for (const stage of LIVE_STAGES) {
    const l = read<LiveFile>(stage, s.key);
    if (!l || !sc) continue;
    // Seeds completed by both strategies (an interrupted stage is reported for what it finished).
    const done = [...new Set(l.runs.map((r) => r.seed))].filter((seed) =>
      ['offline', 'random'].every((s) => l.runs.some((r) => r.seed === seed && r.strategy === s)),
    );
    const of = (s: string) => l.runs.filter((r) => r.strategy === s && done.includes(r.seed));
    const curve = (r: LiveRun) => r.answers.map((k) => sc.score(k));
    const meanAt = (s: string, t: number) => mean(of(s).map((r) => Math.min(curve(r)[t - 1] ?? Infinity, 4)));
    const strategies = ['offline', 'random'];
    (out.live as Record<string, unknown>)[stage] = {
      seeds: done.length,
      trials: l.trials,
      started_at: l.started_at,
      finished_at: l.finished_at,
      load: l.load,
      scored_by: tables.map((t) => t.stage),
      within_5pct_at_budget: Object.fromEntries(
        strategies.map((s) => [s, of(s).filter((r) => curve(r)[l.trials - 1] <= 1.05).length]),
      ),
      answers: Object.fromEntries(strategies.map((s) => [s, of(s).map((r) => curve(r)[l.trials - 1])])),
      mean_curve: Object.fromEntries(
        strategies.map((s) => [s, Array.from({ length: l.trials }, (_, i) => meanAt(s, i + 1))]),
      ),
      beats_random_at_every_trial: Array.from({ length: l.trials }, (_, i) => i + 1).every(
        (t) => meanAt('offline', t) <= meanAt('random', t) + 1e-9,
      ),
      median_trial_s: Object.fromEntries(strategies.map((s) => [s, median(of(s).flatMap((r) => r.trial_s))])),
    };
  }
  const bias = read<{ key: string; figures: { contender: string; reference: string; figure: RatioFigure }[] }>(
    'duel-bias',
    s.key,
  );
  if (bias) {
    const of = (c: string, r: string) => bias.figures.filter((x) => x.contender === c && x.reference === r);
    const ab = of('A', 'B');
    const ba = of('B', 'A');
    out.duel_bias = {
      ...bias,
      figures: undefined,
      self: of('A', 'A (copy)').map((x) => x.figure),
      products: ab.map((x, i) => (ba[i] ? x.figure.ratio * ba[i].figure.ratio : undefined)),
      a_vs_b: ab.map((x) => x.figure),
      b_vs_a: ba.map((x) => x.figure),
      a_fp32: of('A', 'fp32').map((x) => x.figure),
      b_fp32: of('B', 'fp32').map((x) => x.figure),
    };
  }
  console.log(JSON.stringify(out, null, 1));
  fs.mkdirSync(OUT, { recursive: true });
  writeFileAtomicSync(path.join(OUT, 'paired.json'), JSON.stringify(out, null, 1) + '\n');
}

function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}

async function main(): Promise<void> {
  const stage = values.stage!;
  const stages = ['table-a', 'live-own', 'live-loadgen', 'table-b'] as const;
  // `all` (npm run bench's part): the stages whose JSON is missing, in an order that puts the two tables
  // at different hours; `--remeasure` measures them all again.
  // A stage measured for another model, space or CPU counts as missing.
  const key = stage === 'all' && !values.remeasure ? (await setting()).key : '';
  const todo =
    stage === 'all' ? stages.filter((s) => values.remeasure || !read(s, key)) : stage === 'summary' ? [] : [stage];
  for (const s of todo) {
    if (s === 'table-a' || s === 'table-b') await measureTable(s);
    else if ((LIVE_STAGES as readonly string[]).includes(s)) await live(s as LiveStage);
    else if (s === 'duel-bias') await duelBias();
    else throw new Error(`unknown stage '${s}' (table-a, table-b, ${LIVE_STAGES.join(', ')}, duel-bias, all, summary)`);
  }
  await summary();
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
