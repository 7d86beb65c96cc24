// Reuse across trials (compress/layerCache.ts): a trial that changes one layer group recompresses only
// that group, and what it assembles is byte-identical to a fresh compression; calibration that a layer
// uses is part of its key; the store is bounded and `haqa runs prune` empties it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { compressModel, calibrateModel } from '../../server/src/compress/pipeline';
import { LayerCache } from '../../server/src/compress/layerCache';
import { writeModel } from '../../server/src/model/onnx';
import { tempDir, tinyMlpModel } from '../helpers/tinyModel';
import { recipeFor } from './compress-helpers';
import { main } from '../../server/src/cli';

/** The model file and its external data, as bytes, for byte-for-byte comparison. */
function filesOf(out: string): Buffer[] {
  return [fs.readFileSync(out), fs.existsSync(out + '.data') ? fs.readFileSync(out + '.data') : Buffer.alloc(0)];
}

function outIn(ws: string, n: string): string {
  fs.mkdirSync(path.join(ws, n), { recursive: true });
  return path.join(ws, n, 'q.onnx');
}

async function workspace(external: boolean): Promise<{ ws: string; model: string }> {
  const ws = tempDir('haqa-reuse-');
  const model = path.join(ws, 'model.onnx');
  await writeModel(tinyMlpModel({ hidden: 64, intermediate: 96, layers: 3 }), model, { externalData: external });
  return { ws, model };
}

const base = { bits: 4, block_size: 32, symmetric: true };
const oneGroup = { ...base, overrides: [{ match: 'model.layers.1.**', bits: 8 }] };

for (const external of [true, false]) {
  const where = external ? 'external data' : 'inline';
  test(`changing one layer group recompresses only it, byte-identical to a fresh compression (${where})`, async () => {
    const { ws, model } = await workspace(external);
    const cache = LayerCache.forWorkspace(ws);
    // Every output has the same file name (its external data file is named in the model), in its own folder.
    const out = (n: string) => outIn(ws, n);

    const fresh = await compressModel(recipeFor(model, { quantize: base }), { out: out('fresh-a') });
    const first = await compressModel(recipeFor(model, { quantize: base }), {
      out: out('cached-a'),
      layerCache: cache,
    });
    assert.deepEqual(cache.stats, { hits: 0, misses: 6, stored: 6, bytesReused: 0 });
    assert.deepEqual(filesOf(first.out), filesOf(fresh.out), 'a cold store changes nothing');

    const again = await compressModel(recipeFor(model, { quantize: base }), { out: out('again-a'), layerCache: cache });
    assert.equal(cache.stats.hits, 6, 'the same trial again is all hits');
    assert.deepEqual(filesOf(again.out), filesOf(fresh.out));
    assert.deepEqual(again.layers, fresh.layers, 'reports (actions, errors) are the stored ones');

    const freshB = await compressModel(recipeFor(model, { quantize: oneGroup }), { out: out('fresh-b') });
    const b = await compressModel(recipeFor(model, { quantize: oneGroup }), {
      out: out('cached-b'),
      layerCache: cache,
    });
    assert.equal(cache.stats.hits, 6 + 4, 'layers 0 and 2 come from the store');
    assert.equal(cache.stats.misses, 6 + 2, 'layer 1 (up and down) is recompressed');
    assert.deepEqual(filesOf(b.out), filesOf(freshB.out), 'the assembled model is the fresh one, byte for byte');
    assert.ok(b.layers.some((l) => l.actions.some((a) => a.startsWith('int8'))));
  });
}

test('GPTQ layers are keyed by the calibration they use: other statistics recompress them', async () => {
  const { ws, model } = await workspace(true);
  const cache = LayerCache.forWorkspace(ws);
  const recipe = (seed: number) =>
    recipeFor(model, {
      quantize: { ...base, method: 'gptq' },
      calibration: { samples: 2, seq_len: 8 },
      search: { seed },
    });
  const c1 = await calibrateModel(recipe(1));
  const c2 = await calibrateModel(recipe(2));
  await compressModel(recipe(1), { out: outIn(ws, 'g1'), calibration: c1, layerCache: cache });
  const hits = cache.stats.hits;
  const fresh = await compressModel(recipe(1), { out: outIn(ws, 'g2-fresh'), calibration: c2 });
  const other = await compressModel(recipe(1), { out: outIn(ws, 'g2'), calibration: c2, layerCache: cache });
  assert.equal(cache.stats.hits, hits, 'no layer reused across different calibration statistics');
  assert.deepEqual(filesOf(other.out), filesOf(fresh.out));
  await compressModel(recipe(1), { out: outIn(ws, 'g3'), calibration: c2, layerCache: cache });
  assert.equal(cache.stats.hits, hits + 6, 'the same statistics again: all reused');
});

test('the store is bounded (least recently used go first) and haqa runs prune empties it', async () => {
  const { ws, model } = await workspace(true);
  const big = LayerCache.forWorkspace(ws);
  await compressModel(recipeFor(model, { quantize: base }), { out: outIn(ws, 'a'), layerCache: big });
  const entries = () => fs.readdirSync(big.dir).filter((f) => f.endsWith('.layer'));
  assert.equal(entries().length, 6);
  const one = fs.statSync(path.join(big.dir, entries()[0])).size;
  const small = new LayerCache(big.dir, ws, one * 2.5);
  await compressModel(recipeFor(model, { quantize: oneGroup }), { out: outIn(ws, 'b'), layerCache: small });
  const total = entries().reduce((s, f) => s + fs.statSync(path.join(big.dir, f)).size, 0);
  assert.ok(total <= one * 2.5 + 1, `store holds ${total} bytes, bound ${one * 2.5}`);

  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l), signal: new AbortController().signal };
  const code = await main(['runs', 'prune', '--dir', ws], io);
  const r = { code, out: out.join('\n'), err: err.join('\n') };
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /layer store: removed \d+ entries/);
  assert.equal(entries().length, 0);
});

test('a store smaller than the model keeps its first layers for the next trial instead of cycling through them', async () => {
  const { ws, model } = await workspace(true);
  const big = LayerCache.forWorkspace(ws);
  await compressModel(recipeFor(model, { quantize: base }), { out: outIn(ws, 'probe'), layerCache: big });
  const entries = () => fs.readdirSync(big.dir).filter((f) => f.endsWith('.layer'));
  assert.equal(entries().length, 6);
  const one = Math.max(...entries().map((f) => fs.statSync(path.join(big.dir, f)).size));
  await big.evict(0);
  // Room for 3 of the 6 layers. Least-recently-used alone would leave the last 3, which the next
  // compression (walking from the first) evicts one by one before reaching them: nothing reused.
  const bound = one * 3.5;
  const first = new LayerCache(big.dir, ws, bound);
  await compressModel(recipeFor(model, { quantize: base }), { out: outIn(ws, 'a'), layerCache: first });
  const kept = entries().length;
  assert.ok(kept >= 3 && kept < 6, `${kept} of 6 layers fit`);
  assert.equal(first.stats.stored, kept + 1, 'one more is stored, found over the bound and dropped; then no more');
  const second = new LayerCache(big.dir, ws, bound);
  const out = outIn(ws, 'b');
  await compressModel(recipeFor(model, { quantize: base }), { out, layerCache: second });
  assert.equal(second.stats.hits, kept, 'the next trial reuses every layer that fit');
  const total = entries().reduce((s, f) => s + fs.statSync(path.join(big.dir, f)).size, 0);
  assert.ok(total <= bound, `store holds ${total} bytes, bound ${bound}`);
  const fresh = outIn(ws, 'fresh');
  await compressModel(recipeFor(model, { quantize: base }), { out: fresh });
  assert.deepEqual(filesOf(out), filesOf(fresh), 'what it assembled is what a fresh compression writes');
  // A trial changing the first group to 8 bits (bigger entries): storing them must not evict, one by one,
  // the layers it reuses next (the cascade that left an 8B-sized model with nothing reused).
  const third = new LayerCache(big.dir, ws, bound);
  const first8 = { ...base, overrides: [{ match: 'model.layers.0.**', bits: 8 }] };
  await compressModel(recipeFor(model, { quantize: first8 }), { out: outIn(ws, 'c'), layerCache: third });
  assert.equal(third.stats.hits, kept - 2, 'every kept layer but the first group two is reused');
});

test('a symlink committed as the store marker is not written through', async () => {
  const { ws, model } = await workspace(true);
  const cache = LayerCache.forWorkspace(ws);
  fs.mkdirSync(cache.dir, { recursive: true });
  const outside = path.join(tempDir('haqa-outside-'), 'precious.txt');
  fs.writeFileSync(outside, 'keep me');
  fs.symlinkSync(outside, path.join(cache.dir, '.last-compression'));
  await compressModel(recipeFor(model, { quantize: base }), { out: outIn(ws, 'a'), layerCache: cache });
  assert.equal(cache.stats.stored, 6, 'the layers are still stored');
  assert.equal(fs.readFileSync(outside, 'utf8'), 'keep me');
});
