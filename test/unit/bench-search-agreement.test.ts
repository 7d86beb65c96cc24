import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { agreement, ranks, spearman } from '../../bench/agreement';

test('ranks average ties', () => {
  assert.deepEqual(ranks([3, 1, 2, 1]), [4, 1.5, 3, 1.5]);
});

test('spearman: same order is 1, reversed is -1, monotone transforms do not matter', () => {
  assert.equal(spearman([1, 2, 3, 4], [10, 20, 30, 40]), 1);
  assert.equal(spearman([1, 2, 3, 4], [0.4, 0.3, 0.2, 0.1]), -1);
  assert.ok(Math.abs(spearman([1, 2, 3, 4], [1, 8, 27, 64]) - 1) < 1e-12);
});

test('spearman matches the textbook formula without ties', () => {
  const a = [0.9, 0.5, 0.7, 1.0, 0.6];
  const b = [0.8, 0.6, 0.5, 1.1, 0.7];
  // ranks a: 4 1 3 5 2; b: 4 2 1 5 3; d² = 0 1 4 0 1 = 6; 1 - 6·6 / (5·24) = 0.7
  assert.ok(Math.abs(spearman(a, b) - 0.7) < 1e-12);
});

test('spearman is NaN with a constant side or under two points, and rejects unequal lengths', () => {
  assert.ok(Number.isNaN(spearman([1, 1, 1], [1, 2, 3])));
  assert.ok(Number.isNaN(spearman([1], [1])));
  assert.throws(() => spearman([1, 2], [1]), /2 values against 1/);
});

test('agreement compares common keys and names the largest disagreement in either direction', () => {
  const a = new Map([
    ['int4', 0.5],
    ['int8', 0.8],
    ['fp16', 1.0],
    ['only-a', 0.1],
  ]);
  const b = new Map([
    ['int4', 0.52],
    ['int8', 0.6],
    ['fp16', 1.01],
    ['only-b', 2],
  ]);
  const r = agreement(a, b);
  assert.equal(r.common, 3);
  assert.equal(r.spearman, 1);
  assert.equal(r.largest?.key, 'int8');
  assert.ok(Math.abs(r.largest!.factor - 0.8 / 0.6) < 1e-12);
  assert.throws(() => agreement(new Map([['x', 0]]), new Map([['x', 1]])), /x is not positive/);
});
