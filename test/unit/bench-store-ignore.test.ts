// Issue 21: `.haqa/` stays out of git. When HAQA creates the store folder it writes `.haqa/.gitignore`
// (`*`); a store folder that already exists is left as it is, so a user's edit or removal of the file holds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { RunStore } from '../../server/src/bench/store';
import type { RunRecord } from '../../server/src/bench/record';
import { createStoreRoot, STORE_GITIGNORE } from '../../server/src/bench/storeIgnore';
import { hardwareFingerprint } from '../../server/src/bench/hardware';
import { writeKernelProbe } from '../../server/src/bench/kernelProbe';
import { writeModel } from '../../server/src/model/onnx';
import { tempDir, tinyMlpModel } from '../helpers/tinyModel';

const record = (id: string) => ({ id, status: 'ok', metrics: {} }) as unknown as RunRecord;
const git = (cwd: string, ...args: string[]) => spawnSync('git', args, { cwd, encoding: 'utf8' });
const build = async (out: string): Promise<void> => {
  await writeModel(tinyMlpModel({ hidden: 16, intermediate: 32, layers: 1 }), out);
};
const hasGit = git(process.cwd(), '--version').status === 0;

test(
  'the first append creates .haqa/ with a .gitignore that hides the whole store from git',
  { skip: !hasGit && 'no git' },
  async () => {
    const ws = tempDir('haqa-ignore-');
    assert.equal(git(ws, 'init', '-q').status, 0);
    fs.writeFileSync(path.join(ws, 'haqa.yaml'), 'model: m.onnx\n');
    const store = new RunStore(ws);
    await store.append(record('a'));
    await store.buildArtifact('k'.repeat(64), build);
    assert.equal(fs.readFileSync(path.join(ws, '.haqa', '.gitignore'), 'utf8'), STORE_GITIGNORE);
    const status = git(ws, 'status', '--porcelain', '--untracked-files=all');
    assert.equal(status.status, 0, status.stderr);
    assert.deepEqual(status.stdout.split('\n').filter(Boolean), ['?? haqa.yaml'], 'nothing of .haqa/ is listed');
    assert.equal(store.read().records.length, 1, 'the store reads its records as before');
  },
);

test('an existing .haqa/ is left as it is: no .gitignore added, an edited one kept', async () => {
  const ws = tempDir('haqa-ignore-');
  fs.mkdirSync(path.join(ws, '.haqa'));
  await new RunStore(ws).append(record('a'));
  assert.equal(fs.existsSync(path.join(ws, '.haqa', '.gitignore')), false);

  const ws2 = tempDir('haqa-ignore-');
  await new RunStore(ws2).append(record('a'));
  const mine = '*\n!runs/\n';
  fs.writeFileSync(path.join(ws2, '.haqa', '.gitignore'), mine);
  await new RunStore(ws2).append(record('b'));
  await new RunStore(ws2).buildArtifact('j'.repeat(64), build);
  assert.equal(fs.readFileSync(path.join(ws2, '.haqa', '.gitignore'), 'utf8'), mine);
});

test('concurrent creators: exactly one creates the folder and writes the file', async () => {
  const ws = tempDir('haqa-ignore-');
  const root = path.join(ws, 'nested', '.haqa');
  const created = await Promise.all([1, 2, 3, 4].map(() => createStoreRoot(root)));
  assert.equal(created.filter(Boolean).length, 1);
  assert.equal(fs.readFileSync(path.join(root, '.gitignore'), 'utf8'), STORE_GITIGNORE);
  assert.deepEqual(fs.readdirSync(root), ['.gitignore'], 'no temporary file left');
});

test('the other writers of .haqa/ (kernel probe cache) create it the same way', async () => {
  const ws = tempDir('haqa-ignore-');
  const hw = hardwareFingerprint();
  await writeKernelProbe(new RunStore(ws), hw, { K: 1, N: 1, threads: 1, reps: 1, figures: [], measured_at: '' });
  assert.equal(fs.readFileSync(path.join(ws, '.haqa', '.gitignore'), 'utf8'), STORE_GITIGNORE);
});
