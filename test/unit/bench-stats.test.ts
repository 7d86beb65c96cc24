// The statistics that decide when a timing is measured well enough.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { enough, medianCI, quantile, summarize, QUICK_POLICY } from '../../server/src/bench/stats';
import { rng } from '../helpers/tinyModel';

test('quantiles and summary of a known sample', () => {
  const s = [5, 1, 4, 2, 3];
  const sum = summarize(s);
  assert.equal(sum.median, 3);
  assert.equal(sum.min, 1);
  assert.equal(sum.n, 5);
  assert.ok(Math.abs(sum.p10 - 1.4) < 1e-12);
  assert.ok(Math.abs(sum.p90 - 4.6) < 1e-12);
  assert.equal(quantile([], 0.5), NaN);
  assert.equal(summarize([1, 2]).ci_rel, null, 'no interval from two samples');
});

test('the order-statistics interval covers the true median about 95% of the time', () => {
  // Skewed timings (exponential with median ln 2 · 1 + 10): the interval must not assume normality.
  const r = rng(7);
  const trueMedian = 10 + Math.LN2;
  let covered = 0;
  const trials = 2000;
  for (let t = 0; t < trials; t++) {
    const xs = Array.from({ length: 25 }, () => 10 - Math.log(1 - r())).sort((a, b) => a - b);
    const [lo, hi] = medianCI(xs);
    if (lo <= trueMedian && trueMedian <= hi) covered++;
  }
  const rate = covered / trials;
  assert.ok(rate > 0.93 && rate < 0.99, `coverage ${rate}`);
});

test('repetition stops when the interval is tight, or at the caps, never before the minimum', () => {
  const t = QUICK_POLICY.minMs; // past the minimum sampling time
  const tight = Array.from({ length: QUICK_POLICY.minReps }, (_, i) => 100 + (i % 2) * 0.1);
  assert.equal(enough([tight.slice(0, -1)], QUICK_POLICY, t), false, 'below the minimum');
  assert.equal(enough([tight], QUICK_POLICY, t), true);
  const noisy = Array.from({ length: QUICK_POLICY.minReps }, (_, i) => (i % 2 ? 50 : 150));
  assert.equal(enough([noisy], QUICK_POLICY, t), false);
  assert.equal(enough([noisy], QUICK_POLICY, QUICK_POLICY.maxMs), true, 'time cap');
  assert.equal(enough([tight, noisy], QUICK_POLICY, t), false, 'every series must converge');
});

test('a window samples for its minimum time, so it spans the load as it comes and goes', () => {
  const tight = Array.from({ length: QUICK_POLICY.minReps }, (_, i) => 100 + (i % 2) * 0.1);
  assert.equal(enough([tight], QUICK_POLICY, QUICK_POLICY.minMs - 1), false, 'converged, but too soon');
  const many = Array.from({ length: QUICK_POLICY.maxReps }, () => 100);
  assert.equal(enough([many], QUICK_POLICY, 0), true, 'the repetition cap still ends it');
});
