// The run store survives crashes and concurrent writers: torn lines are skipped, appends from two
// processes never interleave, an interrupted artifact build leaves no half model, prune cleans up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { RunStore, hashModelFiles } from '../../server/src/bench/store';
import { RunRecord, recipeHash, fp32Recipe, compresses } from '../../server/src/bench/record';
import { resolveRecipe } from '../../server/src/config/recipe';
import { writeModel } from '../../server/src/model/onnx';
import { tempDir, tinyMlpModel } from '../helpers/tinyModel';

const STORE_TS = path.resolve(__dirname, '../../server/src/bench/store.ts');

function fakeRecord(id: string, artifact?: string): RunRecord {
  return {
    id,
    recipe_file: '/w/haqa.yaml',
    recipe_hash: 'h',
    source_model: '/w/model.onnx',
    artifact,
    config: {
      workload: { prompt_length: 8, decode_tokens: 4, batch: 1 },
      runtime: { intra_op_threads: 1, inter_op_threads: 1, graph_optimization: 'all', execution_mode: 'sequential' },
    },
    status: 'ok',
    metrics: { model_bytes: 1 },
    session_options: {
      provider: 'cpu',
      intra_op_threads: 1,
      inter_op_threads: 1,
      graph_optimization: 'all',
      execution_mode: 'sequential',
    },
    hardware: { cpu: 'x', arch: 'x64', isa: [], cores: 1, memory_bytes: 1, os: 'linux', node: 'v20', onnxruntime: '1' },
    onnxruntime: '1',
    quick: true,
    started: '',
    finished: '',
  };
}

/** Runs a snippet in a child process (with tsx), returning its exit code. */
function child(code: string, onStdout?: (s: string, kill: () => void) => void): Promise<number | null> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    p.stdout.on('data', (b: Buffer) => onStdout?.(b.toString(), () => p.kill('SIGKILL')));
    p.on('exit', (c) => resolve(c));
  });
}

test('records append and read back; a torn last line is skipped and the next append starts clean', async () => {
  const store = new RunStore(tempDir('haqa-store-'));
  assert.deepEqual(store.read(), { records: [], skipped: [] });
  await store.append(fakeRecord('a'));
  await store.append(fakeRecord('b'));
  // A crash in the middle of a write: half a record, no newline.
  const line = JSON.stringify(fakeRecord('torn'));
  fs.appendFileSync(store.runsFile, line.slice(0, line.length / 2));
  let r = store.read();
  assert.deepEqual(
    r.records.map((x) => x.id),
    ['a', 'b'],
  );
  assert.equal(r.skipped.length, 1);
  assert.match(r.skipped[0].reason, /torn last line/);
  await store.append(fakeRecord('c'));
  r = store.read();
  assert.deepEqual(
    r.records.map((x) => x.id),
    ['a', 'b', 'c'],
    'the new record is not glued to the torn one',
  );
  assert.equal(r.skipped.length, 1);
  assert.equal(store.latest()?.id, 'c');
  assert.equal(store.latest((x) => x.id < 'c')?.id, 'b');
});

test('two processes appending at once never interleave records', async () => {
  const dir = tempDir('haqa-store-conc-');
  const big = 'x'.repeat(20_000); // larger than any atomic-write guarantee
  const writer = (tag: string) => `
    const { RunStore } = require(${JSON.stringify(STORE_TS)});
    (async () => {
      const s = new RunStore(${JSON.stringify(dir)});
      for (let i = 0; i < 40; i++) await s.append({ id: '${tag}' + i, status: 'ok', pad: '${big}' });
    })();`;
  const codes = await Promise.all([child(writer('p')), child(writer('q'))]);
  assert.deepEqual(codes, [0, 0]);
  const { records, skipped } = new RunStore(dir).read();
  assert.equal(skipped.length, 0);
  assert.equal(records.length, 80);
  assert.equal(new Set(records.map((r) => r.id)).size, 80);
});

test('an artifact build killed with SIGKILL leaves no half model; prune removes its leftovers', async () => {
  const dir = tempDir('haqa-store-kill-');
  const code = `
    const fs = require('node:fs');
    const { RunStore } = require(${JSON.stringify(STORE_TS)});
    new RunStore(${JSON.stringify(dir)}).buildArtifact('k1', async (out) => {
      fs.writeFileSync(out, Buffer.alloc(100000, 7));   // half-written model
      console.log('WRITING');
      await new Promise(() => setInterval(() => {}, 1000));
    });`;
  const exit = await child(code, (s, kill) => {
    if (s.includes('WRITING')) kill();
  });
  assert.equal(exit, null, 'killed');
  const store = new RunStore(dir);
  assert.equal(store.findArtifact('k1'), undefined);
  assert.equal(fs.existsSync(store.artifactDir('k1')), false);
  const leftovers = fs.readdirSync(store.artifactsDir);
  assert.equal(leftovers.length, 1);
  assert.match(leftovers[0], /^\.tmp-/);
  // A reference being written atomically by a worker that died, and one of a live process.
  const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
  fs.mkdirSync(store.referenceDir, { recursive: true });
  const deadTmp = `.ref.json.${deadPid}.0a1b2c3d.tmp`;
  const liveTmp = `.ref2.json.${process.pid}.0a1b2c3d.tmp`;
  fs.writeFileSync(path.join(store.referenceDir, deadTmp), '{"half');
  fs.writeFileSync(path.join(store.referenceDir, liveTmp), '{"half');
  const res = await store.prune(10);
  assert.deepEqual(res.removed.sort(), [path.join('reference', deadTmp), ...leftovers].sort());
  assert.deepEqual(fs.readdirSync(store.artifactsDir), []);
  assert.deepEqual(fs.readdirSync(store.referenceDir), [liveTmp], 'a live writer keeps its file');
});

test('artifacts: built once per key, hashed with external data, pruned unless a recent record uses them', async () => {
  const dir = tempDir('haqa-store-art-');
  const store = new RunStore(dir);
  let builds = 0;
  const build = async (out: string) => {
    builds++;
    await writeModel(tinyMlpModel({ hidden: 16, intermediate: 32, layers: 1 }), out, { externalData: true });
  };
  const a = await store.buildArtifact('k1', build);
  assert.ok(fs.existsSync(a.model + '.data'));
  const again = store.findArtifact('k1');
  assert.equal(again?.meta.model_hash, a.meta.model_hash);
  assert.equal(builds, 1);
  // The hash covers the external data: changing a weight byte changes it.
  const h = await hashModelFiles(a.model);
  assert.equal(h.hash, a.meta.model_hash);
  assert.equal(h.bytes, fs.statSync(a.model).size + fs.statSync(a.model + '.data').size);
  const data = fs.readFileSync(a.model + '.data');
  data[100] ^= 1;
  fs.writeFileSync(a.model + '.data', data);
  assert.notEqual((await hashModelFiles(a.model)).hash, a.meta.model_hash);

  // A failing build leaves nothing behind.
  await assert.rejects(
    store.buildArtifact('k2', async () => {
      throw new Error('boom');
    }),
    /boom/,
  );
  assert.deepEqual(fs.readdirSync(store.artifactsDir), ['k1']);

  const b = await store.buildArtifact('k3', build);
  await store.append(fakeRecord('r1', a.model));
  await store.append(fakeRecord('r2', b.model));
  const kept = await store.prune(1, 0);
  assert.deepEqual(kept.removed, ['k1']);
  assert.ok(kept.freedBytes > 0);
  assert.ok(store.findArtifact('k3'));
});

test('recipe hash: same content, same hash; compression/runtime knobs change it; fp32Recipe drops compression', () => {
  const file = '/w/haqa.yaml';
  const a = resolveRecipe({ model: 'm.onnx', quantize: { bits: 4 }, runtime: { intra_op_threads: 2 } }, file);
  const b = resolveRecipe(
    {
      runtime: { intra_op_threads: 2 },
      quantize: { block_size: 32, bits: 4 },
      model: './m.onnx',
      search: { trials: 3 },
    },
    file,
  );
  assert.equal(recipeHash(a), recipeHash(b), 'key order, explicit defaults and the search section do not count');
  const c = resolveRecipe({ model: 'm.onnx', quantize: { bits: 8 }, runtime: { intra_op_threads: 2 } }, file);
  const d = resolveRecipe({ model: 'm.onnx', quantize: { bits: 4 }, runtime: { intra_op_threads: 1 } }, file);
  assert.notEqual(recipeHash(a), recipeHash(c));
  assert.notEqual(recipeHash(a), recipeHash(d));
  // weight_type (whose default depends on the CPU) counts only where 8-bit activations use it.
  const wt = (weight_type: string, activations?: string) =>
    recipeHash(
      resolveRecipe(
        { model: 'm.onnx', quantize: { bits: 8, weight_type, activations }, runtime: { intra_op_threads: 2 } },
        file,
      ),
    );
  assert.equal(wt('int8'), wt('uint8'));
  assert.equal(wt('int8'), recipeHash(c));
  assert.notEqual(wt('int8', 'dynamic'), wt('uint8', 'dynamic'));
  // Moving the workspace (same relative layout) keeps the hash.
  assert.equal(
    recipeHash(a),
    recipeHash(
      resolveRecipe(
        { model: 'm.onnx', quantize: { bits: 4 }, runtime: { intra_op_threads: 2 } },
        '/elsewhere/haqa.yaml',
      ),
    ),
  );
  const f = fp32Recipe(a);
  assert.equal(compresses(f), false);
  assert.equal(compresses(a), true);
  assert.deepEqual(f.runtime, a.runtime);
});
