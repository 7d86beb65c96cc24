// The weight generator: normal with the requested spread, reproducible, independent of chunking.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalChunks, constantChunks, streamSeed } from '../../server/src/model/synth/random';

function collect(gen: Iterable<Float32Array>): Float32Array {
  const parts: Float32Array[] = [];
  for (const c of gen) parts.push(c.slice()); // chunks share one buffer
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

test('normal(0, std): mean, spread and tails of 200k draws', () => {
  const std = 0.02;
  const x = collect(normalChunks(1, 'w', 200_001, std));
  assert.equal(x.length, 200_001);
  let s = 0,
    s2 = 0,
    beyond2 = 0;
  for (const v of x) {
    s += v;
    s2 += v * v;
    if (Math.abs(v) > 2 * std) beyond2++;
  }
  const mean = s / x.length;
  const sd = Math.sqrt(s2 / x.length - mean * mean);
  assert.ok(Math.abs(mean) < (4 * std) / Math.sqrt(x.length), `mean ${mean}`);
  assert.ok(Math.abs(sd / std - 1) < 0.01, `std ${sd}`);
  const frac = beyond2 / x.length; // 4.55% for a normal distribution
  assert.ok(Math.abs(frac - 0.0455) < 0.003, `P(|x| > 2σ) = ${frac}`);
});

test('values do not depend on the chunk size; streams differ by seed and by tensor name', () => {
  const a = collect(normalChunks(5, 'model.layers.0.mlp.up_proj.weight', 10_001, 1, 1 << 20));
  const b = collect(normalChunks(5, 'model.layers.0.mlp.up_proj.weight', 10_001, 1, 64));
  const c = collect(normalChunks(5, 'model.layers.0.mlp.up_proj.weight', 10_001, 1, 7)); // odd: rounded to even
  assert.deepEqual(a, b);
  assert.deepEqual(a, c);
  assert.notDeepEqual(a, collect(normalChunks(6, 'model.layers.0.mlp.up_proj.weight', 10_001, 1)));
  assert.notDeepEqual(a, collect(normalChunks(5, 'model.layers.1.mlp.up_proj.weight', 10_001, 1)));
  assert.notEqual(streamSeed(0, 'a'), streamSeed(0, 'b'));
});

test('constant chunks cover the count exactly', () => {
  const x = collect(constantChunks(1, 2_500_000));
  assert.equal(x.length, 2_500_000);
  assert.ok(x.every((v) => v === 1));
});
