// The kernel probe: every variant is timed, fp32 is the unit, the facts quote the measurement (never a
// fixed figure), and the cache is per hardware fingerprint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kernelFacts, readKernelProbe, runKernelProbe, writeKernelProbe } from '../../server/src/bench/kernelProbe';
import { hardwareFingerprint } from '../../server/src/bench/hardware';
import { RunStore } from '../../server/src/bench/store';
import { tempDir } from '../helpers/tinyModel';

test('a small probe measures fp32 and MatMulNBits 4/8-bit at levels 0 and 4; cached per fingerprint', async () => {
  const r = await runKernelProbe({ kind: 'kernel-probe', K: 256, N: 256, threads: 1, reps: 3 }, () => undefined);
  assert.deepEqual(
    r.figures.map((f) => `${f.bits}/${f.accuracy_level ?? '-'}`),
    ['32/-', '4/0', '4/4', '8/0', '8/4'],
  );
  assert.equal(r.figures[0].vs_fp32, 1);
  for (const f of r.figures) assert.ok(f.median_us > 0 && Number.isFinite(f.vs_fp32));
  const facts = kernelFacts(r);
  assert.equal(facts.length, 4);
  for (const l of facts) assert.match(l, /measured on this machine .*\[1, 256\] × \[256, 256\]/);
  const store = new RunStore(tempDir('haqa-kprobe-'));
  const hw = hardwareFingerprint();
  assert.equal(readKernelProbe(store, hw), undefined);
  await writeKernelProbe(store, hw, r);
  assert.deepEqual(readKernelProbe(store, hw)?.figures, JSON.parse(JSON.stringify(r.figures)));
  assert.equal(
    readKernelProbe(store, { ...hw, cpu: 'another CPU' }),
    undefined,
    'another machine does not read this one',
  );
});
