// The paired race's statistics (server/src/bench/race.ts): order-statistics intervals, verdicts, ABBA
// pairing under a drifting load, ties, the time cap and the unpaired fallback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  blockLogRatio,
  chainRatios,
  medianRanks,
  pairFits,
  race,
  withinPrecision,
  RaceSubject,
  ratioFigure,
  verdictOf,
} from '../../server/src/bench/race';
import { Rng } from '../../server/src/agent/rng';
import { resolveRecipe } from '../../server/src/config/recipe';
import { synthesizeDecoder } from '../../server/src/model/synth';
import { architectureFromConfig } from '../../server/src/config/hfConfig';
import { runRecipe } from '../../server/src/bench/run';
import { schedule, startLoad } from '../../server/src/bench/loadgen';

test('medianRanks gives the exact binomial ranks of a 95% interval', () => {
  assert.equal(medianRanks(5), null); // 2·(1/32) > 5%: no interval from 5 samples
  assert.deepEqual(medianRanks(6), [0, 5]);
  // n = 20: P(X ≤ 5) = 0.0207 ≤ 0.025 < P(X ≤ 6) = 0.0577 → ranks 5 and 14 (0-based).
  assert.deepEqual(medianRanks(20), [5, 14]);
  // The coverage holds: simulate medians of uniform samples.
  const rng = new Rng(7);
  const rnd = () => rng.next();
  let covered = 0;
  for (let r = 0; r < 2000; r++) {
    const xs = Array.from({ length: 30 }, () => rnd()).sort((a, b) => a - b);
    const [l, u] = medianRanks(30)!;
    if (xs[l] <= 0.5 && 0.5 <= xs[u]) covered++;
  }
  assert.ok(covered / 2000 >= 0.94, `coverage ${covered / 2000}`);
});

test('verdicts: better, worse, tied within the tolerance, unresolved', () => {
  const f = (lo: number, hi: number) => ({ ratio: (lo + hi) / 2, lo, hi, n: 10 });
  assert.equal(verdictOf(f(0.5, 0.6), 0, 0.03), 'better');
  assert.equal(verdictOf(f(1.1, 1.2), 0, 0.03), 'worse');
  assert.equal(verdictOf(f(0.99, 1.02), 0, 0.03), 'tied');
  assert.equal(verdictOf(f(0.9, 1.2), 0, 0.03), 'unresolved');
  // Against an incumbent at 0.5× fp32 time.
  assert.equal(verdictOf(f(0.45, 0.48), Math.log(0.5), 0.03), 'better');
  assert.equal(verdictOf(f(0.495, 0.51), Math.log(0.5), 0.03), 'tied');
  assert.equal(verdictOf(ratioFigure([0.1, 0.2]), 0, 0.03), 'unresolved'); // too few pairs for an interval
});

test('an ABBA block cancels a linear drift', () => {
  // Contender 2 ms, reference 4 ms, a load slowing everything by 10% more each sample slot.
  const d = (slot: number) => 1 + 0.1 * slot;
  assert.ok(Math.abs(blockLogRatio(2 * d(0), 4 * d(1), 4 * d(2), 2 * d(3)) - Math.log(0.5)) < 1e-12);
  // Alternating order (ABAB) would not: the contender's slots are earlier on average.
  assert.ok(Math.abs(Math.log((2 * d(0) + 2 * d(2)) / (4 * d(1) + 4 * d(3))) - Math.log(0.5)) > 0.02);
  assert.ok(Math.abs(blockLogRatio(2, 4, 4, 2) - Math.log(0.5)) < 1e-12);
});

/** A machine whose load comes in stretches: a factor 1 or 1–4× that holds for 5–40 consecutive samples. */
function machine(seed: number) {
  const rng = new Rng(seed);
  const rnd = () => rng.next();
  let left = 0;
  let factor = 1;
  let clock = 0;
  const tick = (ms: number) => {
    if (left-- <= 0) {
      left = 5 + Math.floor(rnd() * 35);
      factor = rnd() < 0.5 ? 1 : 1 + 3 * rnd();
    }
    const t = ms * factor * (1 + 0.02 * rnd());
    clock += t;
    return t;
  };
  const subject = (ms: number): RaceSubject => ({ sample: async () => [tick(ms * 4), tick(ms)] });
  return { subject, now: () => clock };
}

test('a paired race finds the true ratio under a load that comes in stretches', async () => {
  for (const seed of [1, 2, 3]) {
    const m = machine(seed);
    const { result } = await race({
      settings: { tolerance: 0.03, capMs: 1e9 },
      kind: 'decoder',
      contender: m.subject(1),
      reference: m.subject(2),
      now: m.now,
    });
    assert.equal(result.verdict, 'better');
    assert.equal(result.paired, true);
    assert.ok(result.decode!.lo <= 0.5 * 1.03 && result.decode!.hi >= 0.5 / 1.03, JSON.stringify(result.decode));
    assert.ok(result.wall_ms > 0);
  }
});

test('a tie is recorded as a tie, and the cap ends an undecidable race as unresolved', async () => {
  const m = machine(4);
  const tie = await race({
    settings: { tolerance: 0.05, capMs: 1e9, threshold: Math.log(0.5) },
    kind: 'decoder',
    contender: m.subject(1),
    reference: m.subject(2),
    now: m.now,
  });
  assert.equal(tie.result.verdict, 'tied');
  assert.ok(tie.result.decode!.lo >= 0.5 / 1.05 && tie.result.decode!.hi <= 0.5 * 1.05);
  // A 1% difference with a 0.1% tolerance cannot be decided in 200 ms of a 1 ms-per-sample model.
  const m2 = machine(5);
  const capped = await race({
    settings: { tolerance: 0.001, capMs: 200, threshold: Math.log(0.505) },
    kind: 'decoder',
    contender: m2.subject(1),
    reference: m2.subject(2),
    now: m2.now,
  });
  assert.equal(capped.result.verdict, 'unresolved');
  assert.ok(capped.result.wall_ms >= 200);
});

test('a precision race (ground truth) runs past the verdict until the interval is within ±2%, unless far worse', async () => {
  // Independent per-sample noise (up to +30%), which pairing cannot cancel: precision needs many pairs.
  const noisy = (seed: number) => {
    const rng = new Rng(seed);
    let clock = 0;
    const tick = (ms: number) => {
      const t = ms * (1 + 0.3 * rng.next());
      clock += t;
      return t;
    };
    const subject = (ms: number): RaceSubject => ({ sample: async () => [tick(ms * 4), tick(ms)] });
    return { subject, now: () => clock };
  };
  const run = (precision: number | undefined, threshold = 0) => {
    const m = noisy(7);
    return race({
      settings: { tolerance: 0.03, capMs: 1e9, threshold, ...(precision !== undefined ? { precision } : {}) },
      kind: 'decoder',
      contender: m.subject(1),
      reference: m.subject(2),
      now: m.now,
    });
  };
  const verdictOnly = (await run(undefined)).result;
  const { result } = await run(0.02);
  const f = result.decode!;
  assert.ok(withinPrecision(f, 0.02), JSON.stringify(f));
  assert.ok(f.lo <= 0.5 && f.hi >= 0.5, `the ±2% interval holds the true ratio 0.5: ${JSON.stringify(f)}`);
  assert.equal(result.verdict, 'better');
  assert.ok(result.pairs > verdictOnly.pairs, `${result.pairs} pairs vs ${verdictOnly.pairs}`);
  // Far above the threshold (not a contender for the best), precision cannot matter: it stops as worse.
  const far = (await run(0.02, Math.log(0.25))).result;
  assert.equal(far.verdict, 'worse');
  assert.ok(far.pairs < result.pairs, `${far.pairs} pairs vs ${result.pairs}`);
  assert.equal(withinPrecision({ ratio: 1, lo: 0.97, hi: 1.01, n: 20 }, 0.02), false);
  assert.equal(withinPrecision({ ratio: 1, lo: 0.99, hi: 1.019, n: 20 }, 0.02), true);
});

test('unpaired fallback: the contender alone, divided by the reference figure, noted', async () => {
  const m = machine(6);
  const { result } = await race({
    settings: { tolerance: 0.03, capMs: 5000, referenceMs: { decode: 2, prefill: 8 } },
    kind: 'decoder',
    contender: m.subject(1),
    note: 'unpaired: test',
    now: m.now,
  });
  assert.equal(result.paired, false);
  assert.match(result.note!, /unpaired/);
  assert.ok(result.decode!.n >= 6);
});

test('pairFits says when two sessions do not fit, with sizes', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'haqa-race-'));
  const a = path.join(dir, 'a.onnx');
  const b = path.join(dir, 'b.onnx');
  fs.writeFileSync(a, Buffer.alloc(1 << 20));
  fs.writeFileSync(b, Buffer.alloc(1 << 20));
  fs.writeFileSync(b + '.data', Buffer.alloc(3 << 20));
  assert.equal(pairFits(a, b, 64 << 20), undefined);
  assert.match(
    pairFits(a, b, 4 << 20)!,
    /unpaired: the contender \(1 MiB\) and the fp32 reference \(4 MiB\) need about 9 MiB, 4 MiB free/,
  );
  fs.rmSync(dir, { recursive: true });
});

test('worker races 4-bit vs fp32: paired, in the record; unpaired (noted) when memory is short', async (t) => {
  const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'haqa-race-run-'));
  t.after(() => fs.rmSync(ws, { recursive: true, force: true }));
  const config = {
    model_type: 'llama',
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    vocab_size: 512,
    tie_word_embeddings: false,
    max_position_embeddings: 128,
  };
  fs.mkdirSync(path.join(ws, 'dec'));
  fs.writeFileSync(path.join(ws, 'dec', 'config.json'), JSON.stringify(config));
  await synthesizeDecoder(architectureFromConfig(config), { out: path.join(ws, 'dec', 'model.onnx'), seed: 3 });
  const recipeOf = (bits: number) =>
    resolveRecipe(
      {
        model: 'dec/model.onnx',
        target: { threads: 1 },
        quantize: { bits, accuracy_level: 4 },
        objective: { workload: { prompt_length: 8, decode_tokens: 4, batch: 1 } },
      },
      path.join(ws, 'haqa.yaml'),
    );
  const recipe = recipeOf(4);
  const measure = { latency: true, accuracy: false };
  const rec = await runRecipe(recipe, { quick: true, measure, race: { tolerance: 0.03, capMs: 1500 } });
  assert.equal(rec.status, 'ok', rec.error?.message);
  assert.equal(rec.race?.paired, true);
  assert.ok(rec.race!.pairs >= 1 && rec.race!.decode!.ratio > 0 && Number.isFinite(rec.race!.decode!.ratio));
  assert.ok(['better', 'worse', 'tied', 'unresolved'].includes(rec.race!.verdict));
  assert.ok(rec.race!.wall_ms > 0);
  assert.ok(rec.metrics.decode_ms_per_token!.n >= 2, "the contender's own samples are summarized as usual");
  const short = await runRecipe(recipe, {
    quick: true,
    measure,
    race: { tolerance: 0.03, capMs: 800, memoryBytes: 1, referenceMs: { decode: 1, prefill: 1 } },
  });
  assert.equal(short.status, 'ok', short.error?.message);
  assert.equal(short.race?.paired, false);
  assert.match(short.race!.note!, /unpaired: the contender .* and the fp32 reference .* need about/);

  // A duel: an 8-bit contender raced against the 4-bit run's artifact, its figures put on the fp32 scale.
  const incumbent = {
    label: 'trial #1',
    ratios: { decode: rec.race!.decode!.ratio, prefill: rec.race!.prefill!.ratio },
  };
  const eight = recipeOf(8);
  const duel = await runRecipe(eight, {
    quick: true,
    measure,
    race: { tolerance: 0.03, capMs: 1500, threshold: Math.log(incumbent.ratios.decode) },
    raceAgainst: { model: rec.artifact!, session: rec.session_options, ...incumbent },
  });
  assert.equal(duel.status, 'ok', duel.error?.message);
  const d = duel.race!;
  assert.equal(d.paired, true);
  assert.equal(d.reference, 'trial #1');
  assert.ok(d.duel?.decode, 'the direct figure is kept');
  assert.ok(Math.abs(d.decode!.ratio - d.duel!.decode!.ratio * incumbent.ratios.decode) < 1e-9);
  assert.ok(Math.abs(d.threshold - Math.log(incumbent.ratios.decode)) < 1e-9, 'threshold back on the fp32 scale');
  // A reference that is not an artifact of the store is refused: the race is against fp32, and says why.
  const outside = await runRecipe(eight, {
    quick: true,
    measure,
    race: { tolerance: 0.03, capMs: 800 },
    raceAgainst: { model: path.join(ws, 'dec', 'model.onnx'), session: rec.session_options, ...incumbent },
  });
  assert.equal(outside.status, 'ok', outside.error?.message);
  assert.equal(outside.race?.reference, undefined);
  assert.match(outside.race!.note!, /raced against fp32, not trial #1: its model is not an artifact of the store/);
  // Sessions with different threads do not duel (a spinning pool would slow the rival): fp32, and why.
  const threads = await runRecipe(eight, {
    quick: true,
    measure,
    race: { tolerance: 0.03, capMs: 800 },
    raceAgainst: { model: rec.artifact!, session: { ...rec.session_options, intra_op_threads: 2 }, ...incumbent },
  });
  assert.equal(threads.race?.reference, undefined);
  assert.match(threads.race!.note!, /its session options differ \(intra_op_threads 2 vs 1\)/);
});

test('chainRatios puts a duel on the fp32 scale: figures and threshold times the incumbent ratio, the duel kept', () => {
  const r = {
    paired: true,
    verdict: 'better' as const,
    series: 'decode' as const,
    threshold: 0,
    tolerance: 0.03,
    pairs: 8,
    wall_ms: 100,
    decode: { ratio: 0.9, lo: 0.85, hi: 0.95, n: 8 },
    prefill: { ratio: 1.1, lo: 1, hi: 1.2, n: 8 },
  };
  const c = chainRatios(r, { label: 'trial #2', ratios: { decode: 0.5 } });
  assert.equal(c.reference, 'trial #2');
  assert.deepEqual(c.decode, { ratio: 0.45, lo: 0.425, hi: 0.475, n: 8 });
  assert.equal(c.prefill, undefined, 'no incumbent prefill ratio: not on the fp32 scale');
  assert.deepEqual(c.duel, { decode: r.decode, prefill: r.prefill });
  assert.ok(Math.abs(c.threshold - Math.log(0.5)) < 1e-12);
  assert.equal(c.verdict, 'better');
});

test('the load generator: a seeded schedule of bursts, a child process that loads the CPU and stops', async () => {
  const o = { seed: 5, threads: 2, burstMs: [50, 100] as [number, number] };
  assert.deepEqual(schedule(o, 20), schedule(o, 20), 'the same seed, the same bursts');
  assert.notDeepEqual(schedule(o, 20), schedule({ ...o, seed: 6 }, 20));
  const s = schedule(o, 200);
  assert.ok(
    s.some(([t]) => t === 0) && s.some(([t]) => t > 0) && s.every(([t, ms]) => t <= 2 && ms >= 50 && ms <= 100),
  );
  const load = startLoad({ ...o, busyShare: 1, memoryBytes: 2 ** 20 });
  // It burns CPU (0.1 s of it, within 10 s: a machine loaded by others gives it only a share).
  const cpu0 = await cpuOf(load.pid);
  let cpu1 = cpu0;
  for (let i = 0; i < 50 && cpu1 - cpu0 < 10; i++) {
    await new Promise((r) => setTimeout(r, 200));
    cpu1 = await cpuOf(load.pid);
  }
  await load.stop();
  if (process.platform === 'linux') assert.ok(cpu1 - cpu0 >= 10, `the child used ${cpu1 - cpu0} clock ticks of CPU`);
  assert.throws(() => process.kill(load.pid, 0), 'it is gone after stop()');
});

/** utime + stime of a process, in clock ticks (Linux /proc; the check runs on Linux only). */
async function cpuOf(pid: number): Promise<number> {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}
