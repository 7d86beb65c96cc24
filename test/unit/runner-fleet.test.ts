// The fleet against a real redis-server on loopback (started and stopped here): two `haqa worker`
// processes of one class pull trials from the queue; one is killed mid-trial (with its benchmark
// worker); its trial is retried by the other, and every trial ends with exactly one record in the store.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { resolveRecipe } from '../../server/src/config/recipe';
import { runnerFor } from '../../server/src/runner';
import { storeRecord } from '../../server/src/runner/device';
import { RunStore } from '../../server/src/bench/store';
import { tempDir, writeTinyModel } from '../helpers/tinyModel';
import { redisMissing, startRedis, Redis } from '../helpers/services';

const ROOT = path.resolve(__dirname, '../..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const skip = redisMissing() ?? (fs.existsSync(CLI) ? undefined : 'dist/ not built (npm run build)');
const tmp = tempDir('haqa-fleet-');
const ws = path.join(tmp, 'ws');
let redis: Redis;
const workers: ChildProcess[] = [];

function startWorker(name: string, onLine: (l: string) => void): ChildProcess {
  const c = spawn(
    process.execPath,
    [
      CLI,
      'worker',
      '--queue',
      redis.url,
      '--class',
      'test-1c',
      '--cache',
      path.join(tmp, name),
      '--name',
      name,
      '--lock-seconds',
      '2',
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      env: { ...process.env, OMP_NUM_THREADS: '1' },
    },
  );
  let buf = '';
  c.stdout!.on('data', (b: Buffer) => {
    buf += b.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  workers.push(c);
  return c;
}

before(async () => {
  if (skip) return;
  fs.mkdirSync(ws, { recursive: true });
  await writeTinyModel(ws, { hidden: 64, intermediate: 128, layers: 2 }, 'model.onnx');
  redis = await startRedis(path.join(tmp, 'redis'));
});

after(async () => {
  for (const w of workers) {
    try {
      process.kill(-w.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  await redis?.stop();
});

test(
  'a worker killed mid-trial loses nothing: its trial is retried elsewhere, every trial recorded once',
  { skip, timeout: 120_000 },
  async () => {
    const started: Record<string, string[]> = { w1: [], w2: [] };
    const ready = (name: string) =>
      new Promise<void>((resolve) => {
        const w = startWorker(name, (l) => {
          if (l.startsWith('worker ')) resolve();
          const m = /^started (\S+)/.exec(l);
          if (m) {
            started[name].push(m[1]);
            // Device death: the fleet worker and its benchmark worker go at once, mid-trial.
            if (name === 'w1' && started.w1.length === 1) setTimeout(() => process.kill(-w.pid!, 'SIGKILL'), 300);
          }
        });
      });
    await Promise.all([ready('w1'), ready('w2')]);

    const runner = runnerFor(`${redis.url}?class=test-1c`);
    const bits = [4, 8, 4, 8];
    const recipes = bits.map((b, i) =>
      resolveRecipe(
        {
          model: 'model.onnx',
          target: { threads: 1 },
          quantize: { bits: b, block_size: i < 2 ? 32 : 16 },
          objective: { workload: { prompt_length: 4, decode_tokens: 2, batch: 1 } },
        },
        path.join(ws, 'haqa.yaml'),
      ),
    );
    const recs = await Promise.all(
      recipes.map((recipe, i) => runner.run({ recipe, quick: true, trial: { number: i + 1 } }, { storeDir: ws })),
    );
    await runner.close();

    for (const r of recs) assert.equal(r.status, 'ok', JSON.stringify(r.error));
    const killedJob = started.w1[0];
    assert.ok(killedJob, 'w1 started a trial before it was killed');
    const retried = recs.find((r) => r.device?.job === killedJob);
    assert.ok(retried, 'the killed trial came back');
    assert.equal(retried.device?.worker, 'w2', 'and was run by the surviving worker');
    assert.ok(started.w2.includes(killedJob));

    const stored = new RunStore(ws).read().records;
    assert.equal(stored.length, 4, 'one record per trial');
    assert.deepEqual(new Set(stored.map((r) => r.device?.job)), new Set(recs.map((r) => r.device?.job)));
    assert.deepEqual(stored.map((r) => r.trial?.number).sort(), [1, 2, 3, 4]);
    for (const r of stored) assert.equal(r.device?.runner, 'queue');

    // Collected again (a restart, a duplicate delivery): still one record per job.
    await storeRecord(ws, recs[0]);
    assert.equal(new RunStore(ws).read().records.length, 4);
  },
);
