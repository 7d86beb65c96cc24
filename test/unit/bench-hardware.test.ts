// The hardware fingerprint, and the memory bandwidth measured once in a worker and cached per machine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { hardwareFingerprint } from '../../server/src/bench/hardware';
import { hardwareProfile } from '../../server/src/bench/run';
import { tempDir } from '../helpers/tinyModel';

test('fingerprint: cores, memory, runtime version, and only ISA flags the CPU reports', () => {
  const h = hardwareFingerprint();
  assert.equal(h.cores, os.availableParallelism());
  assert.equal(h.memory_bytes, os.totalmem());
  assert.equal(
    h.onnxruntime,
    JSON.parse(fs.readFileSync(require.resolve('onnxruntime-node/package.json'), 'utf8')).version,
  );
  assert.equal(h.node, process.version);
  if (fs.existsSync('/proc/cpuinfo')) {
    const flags = new Set(
      (/^(?:flags|Features)\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').split(/\s+/),
    );
    for (const f of h.isa) assert.ok(flags.has(f), f);
    if (os.arch() === 'x64') assert.ok(h.isa.includes('sse4_2') || !flags.has('sse4_2'));
  }
});

test('hardwareProfile measures bandwidth in a worker once, then reads it from .haqa/hardware.json', async () => {
  const dir = tempDir('haqa-hw-');
  const a = await hardwareProfile({ storeDir: dir, bytes: 64 * 1024 ** 2 });
  assert.ok(a.bandwidth_gbps! > 0.1 && a.bandwidth_gbps! < 10_000, `bandwidth ${a.bandwidth_gbps}`);
  const file = path.join(dir, '.haqa', 'hardware.json');
  const mtime = fs.statSync(file).mtimeMs;
  const b = await hardwareProfile({ storeDir: dir });
  assert.equal(b.bandwidth_gbps, a.bandwidth_gbps);
  assert.equal(fs.statSync(file).mtimeMs, mtime, 'not measured again');
});
