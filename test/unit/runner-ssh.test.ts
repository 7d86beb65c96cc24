// The SSH runner against a real OpenSSH server on loopback (throwaway keys, its own config, started and
// stopped here); the "remote" is this machine in another folder. Host keys are verified, the worker is
// installed once, the model is sent once and a partial upload resumes, progress streams back, a cancel
// leaves no process behind, and a missing onnxruntime is said plainly.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { resolveRecipe, Recipe } from '../../server/src/config/recipe';
import { runnerFor, runOnTarget } from '../../server/src/runner';
import { SshRunner } from '../../server/src/runner/ssh';
import { hardwareKey } from '../../server/src/runner/device';
import { hardwareFingerprint } from '../../server/src/bench/hardware';
import { RunStore } from '../../server/src/bench/store';
import { contentHash, recipeBundle } from '../../server/src/runner/bundle';
import { verifyHostKey } from '../../server/src/runner/knownHosts';
import { tempDir, writeTinyModel } from '../helpers/tinyModel';
import { startSshd, sshdMissing, Sshd } from '../helpers/services';

const ROOT = path.resolve(__dirname, '../..');
const skip =
  sshdMissing() ??
  (fs.existsSync(path.join(ROOT, 'dist', 'worker.js')) ? undefined : 'dist/ not built (npm run build)');
const tmp = tempDir('haqa-ssh-');
const ws = path.join(tmp, 'ws');
const remoteDir = path.join(tmp, 'remote');
let sshd: Sshd;

function recipe(model: string, extra: Record<string, unknown> = {}): Recipe {
  return resolveRecipe(
    {
      model,
      target: { threads: 1 },
      quantize: { bits: 4, block_size: 32 },
      objective: { workload: { prompt_length: 4, decode_tokens: 2, batch: 1 } },
      ...extra,
    },
    path.join(ws, 'haqa.yaml'),
  );
}

function runner(dir = remoteDir): SshRunner {
  return runnerFor(sshd.url, { knownHosts: sshd.knownHosts, identityFile: sshd.identity, remoteDir: dir }) as SshRunner;
}

before(async () => {
  if (skip) return;
  fs.mkdirSync(ws, { recursive: true });
  fs.mkdirSync(remoteDir, { recursive: true });
  // "npm install onnxruntime-node" on the remote: its node_modules is this checkout's.
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(remoteDir, 'node_modules'));
  await writeTinyModel(ws, { hidden: 64, intermediate: 128, layers: 2 }, 'a.onnx');
  await writeTinyModel(ws, { hidden: 64, intermediate: 128, layers: 2, seed: 7 }, 'b.onnx');
  sshd = await startSshd(path.join(tmp, 'sshd'), { env: { HAQA_BENCH_TEST_HOOKS: '1' } });
});

after(async () => {
  await sshd?.stop();
});

test('profiles the host, installs the worker, runs the trial there and records the device', { skip }, async () => {
  const r = runner();
  try {
    const hw = await r.profile();
    const here = hardwareFingerprint();
    assert.equal(hw.cpu, here.cpu);
    assert.equal(hw.cores, here.cores);
    assert.deepEqual(hw.isa, here.isa);
    assert.ok(Math.abs(hw.memory_bytes - here.memory_bytes) < 4 << 20, `${hw.memory_bytes} vs ${here.memory_bytes}`);
    assert.match(hw.onnxruntime, /^\d+\.\d+/);
    assert.ok(fs.readdirSync(path.join(remoteDir, 'haqa')).length === 1, 'one worker folder for this version');

    const stages: string[] = [];
    const rec = await r.run(
      { recipe: recipe('a.onnx'), quick: true },
      { storeDir: ws, onProgress: (p) => stages.push(p.stage) },
    );
    assert.equal(rec.status, 'ok', JSON.stringify(rec.error));
    assert.ok(rec.metrics.inference_ms && rec.metrics.inference_ms.median > 0);
    assert.equal(rec.device?.runner, 'ssh');
    assert.equal(rec.device?.host, sshd.url);
    assert.equal(rec.device?.fingerprint, hardwareKey(here));
    assert.equal(rec.source_model, path.join(ws, 'a.onnx'));
    assert.ok(rec.artifact?.startsWith(`${sshd.url}${remoteDir}/store/`), rec.artifact);
    assert.ok(
      stages.includes('compress') && stages.includes('latency'),
      `remote progress streamed: ${stages.join(',')}`,
    );
    const stored = new RunStore(ws).read().records;
    assert.equal(stored.length, 1);
    assert.equal(stored[0].device?.host, sshd.url);
    assert.ok(!JSON.stringify(stored[0]).includes('PRIVATE KEY'));

    // The model went once, under its sha256; a second trial of it sends nothing.
    const { sha256 } = await contentHash(path.join(ws, 'a.onnx'));
    assert.ok(fs.existsSync(path.join(remoteDir, 'cache', sha256)));
    const sent = r.transfers.length;
    const again = await r.run({ recipe: recipe('a.onnx', { quantize: { bits: 8 } }), quick: true }, { storeDir: ws });
    assert.equal(again.status, 'ok', JSON.stringify(again.error));
    assert.equal(r.transfers.length, sent, 'nothing sent again');
  } finally {
    await r.close();
  }
});

test('a partial upload resumes where it stopped, and is verified', { skip }, async () => {
  const r = runner();
  try {
    const file = path.join(ws, 'b.onnx');
    const { sha256, bytes } = await contentHash(file);
    fs.mkdirSync(path.join(remoteDir, 'cache'), { recursive: true });
    const half = Math.floor(bytes / 2);
    fs.writeFileSync(path.join(remoteDir, 'cache', `${sha256}.part`), fs.readFileSync(file).subarray(0, half));
    const rec = await r.run({ recipe: recipe('b.onnx'), quick: true }, { storeDir: ws, noStore: true });
    assert.equal(rec.status, 'ok', JSON.stringify(rec.error));
    const t = r.transfers.find((x) => x.sha256 === sha256);
    assert.ok(t, 'b.onnx was sent');
    assert.equal(t.resumedFrom, half);
    assert.equal(t.sent, bytes - half);
    assert.equal(
      execFileSync('sha256sum', [path.join(remoteDir, 'cache', sha256)])
        .toString()
        .split(' ')[0],
      sha256,
    );
  } finally {
    await r.close();
  }
});

test('cancelling kills the remote process group: no orphans', { skip, timeout: 60_000 }, async () => {
  const r = runner();
  const ac = new AbortController();
  try {
    const rec = await r.run(
      { recipe: recipe('a.onnx'), quick: true, debug: { hangAt: 'latency' } },
      {
        storeDir: ws,
        noStore: true,
        signal: ac.signal,
        onProgress: (p) => {
          if (p.stage === 'latency') setTimeout(() => ac.abort(), 200);
        },
      },
    );
    assert.equal(rec.status, 'cancelled', JSON.stringify(rec.error));
    const alive = () =>
      execFileSync('ps', ['-eo', 'args'])
        .toString()
        .split('\n')
        .filter((l) => l.includes(path.join(remoteDir, 'haqa')));
    const until = Date.now() + 5000;
    while (alive().length && Date.now() < until) await new Promise((res) => setTimeout(res, 100));
    assert.deepEqual(alive(), [], 'no remote CLI or worker left running');
  } finally {
    await r.close();
  }
});

test('an unknown or changed host key is refused; a missing onnxruntime is said plainly', { skip }, async () => {
  const other = path.join(tmp, 'other_known_hosts');
  const key = path.join(tmp, 'otherkey');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
  fs.writeFileSync(
    other,
    `[127.0.0.1]:${sshd.port} ${fs.readFileSync(`${key}.pub`, 'utf8').split(' ').slice(0, 2).join(' ')}\n`,
  );
  const bad = runnerFor(sshd.url, { knownHosts: other, identityFile: sshd.identity, remoteDir });
  const rec = await bad.run({ recipe: recipe('a.onnx'), quick: true }, { storeDir: ws, noStore: true });
  await bad.close();
  assert.equal(rec.status, 'error');
  assert.match(rec.error!.message, /host key not accepted: .*does not match/);

  const noOrt = runner(path.join(tmp, 'bare-remote'));
  const rec2 = await noOrt.run({ recipe: recipe('a.onnx'), quick: true }, { storeDir: ws, noStore: true });
  await noOrt.close();
  assert.equal(rec2.status, 'error');
  assert.match(rec2.error!.message, /onnxruntime-node is not installed .*npm install onnxruntime-node@/);
});

test('known_hosts: hashed entries and ports', () => {
  const dir = tempDir('haqa-kh-');
  const blob = Buffer.from('fake-key-blob');
  const salt = Buffer.from('0123456789abcdef0123');
  const mac = require('node:crypto').createHmac('sha1', salt).update('[h.example]:2222').digest('base64');
  const file = path.join(dir, 'known_hosts');
  fs.writeFileSync(
    file,
    `# c\nh.example ssh-ed25519 ${Buffer.from('other').toString('base64')}\n` +
      `|1|${salt.toString('base64')}|${mac} ssh-ed25519 ${blob.toString('base64')}\n`,
  );
  assert.equal(verifyHostKey(file, 'h.example', 2222, blob).ok, true);
  assert.match(verifyHostKey(file, 'h.example', 22, blob).reason!, /does not match/);
  assert.match(verifyHostKey(file, 'x.example', 22, blob).reason!, /not in .*ssh-keyscan/);
  assert.throws(() => runnerFor('ssh://u:secret@h'), /password does not belong/);
});

test('target.host routes a run; bad host → record naming it; files the path policy refuses are not sent', async () => {
  const dir = tempDir('haqa-route-');
  const inner = path.join(dir, 'ws');
  fs.mkdirSync(inner);
  await writeTinyModel(dir, undefined, 'outside.onnx');
  const r = resolveRecipe({ model: '../outside.onnx', target: { host: 'nosuch://x' } }, path.join(inner, 'haqa.yaml'));
  const rec = await runOnTarget(r, { noStore: true });
  assert.equal(rec.status, 'error');
  assert.deepEqual(rec.error?.recipe_path, ['target', 'host']);
  assert.match(rec.error!.message, /no runner for 'nosuch:'/);
  await assert.rejects(recipeBundle(r), /outside/);
});
