// A full disk: a run-record append that cannot write its whole line leaves no torn line and reports
// "disk full: the run record was not saved"; `haqa quantize` onto a full disk exits 2 naming the
// output and "no space left", leaving nothing behind. Through a seam in the append's one write, and
// for real on a 64 KiB tmpfs where this process may mount one (root); skipped, saying why, elsewhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { RunStore, appendIo } from '../../server/src/bench/store';
import type { RunRecord } from '../../server/src/bench/record';
import { main } from '../../server/src/cli';
import type { CliIO } from '../../server/src/cli/command';
import { tempDir, writeTinyModel } from '../helpers/tinyModel';

const record = (id: string, pad = 0) =>
  ({ id, status: 'ok', recipe_file: '/w/haqa.yaml', metrics: {}, pad: 'x'.repeat(pad) }) as unknown as RunRecord;

test('a short write is cut back off the file and reported; the store reads as before', async () => {
  const store = new RunStore(tempDir());
  await store.append(record('a'));
  const before = fs.readFileSync(store.runsFile);
  const real = appendIo.write;
  for (const fail of ['short', 'enospc'] as const) {
    appendIo.write = async (fh, bytes) => {
      // Half the line reaches the disk, then the disk is full.
      const half = Math.floor(bytes.length / 2);
      await fh.write(bytes, 0, half);
      if (fail === 'enospc')
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      return { bytesWritten: half };
    };
    try {
      await assert.rejects(
        store.append(record('b', 20_000)),
        (e: Error) =>
          e.name === 'StoreWriteError' &&
          e.message.startsWith('disk full: the run record was not saved') &&
          e.message.includes(store.runsFile),
      );
    } finally {
      appendIo.write = real;
    }
    assert.deepEqual(fs.readFileSync(store.runsFile), before, fail);
  }
  await store.append(record('c'));
  const { records, skipped } = store.read();
  assert.deepEqual(
    records.map((r) => r.id),
    ['a', 'c'],
  );
  assert.deepEqual(skipped, []);
});

/** A fresh tmpfs of `size` at a new folder, or the reason there cannot be one. */
function tmpfs(size: string): { dir: string; done: () => void } | string {
  if (process.platform !== 'linux') return 'tmpfs needs Linux';
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root';
  const dir = tempDir('haqa-full-');
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) return `mount failed: ${(r.stderr || r.error?.message || '').trim()}`;
  return { dir, done: () => void spawnSync('umount', [dir]) };
}

test('on a real full disk (64 KiB tmpfs) the append fails cleanly and the next reader sees whole lines', async (t) => {
  const fsys = tmpfs('64k');
  if (typeof fsys === 'string') return t.skip(fsys);
  try {
    const store = new RunStore(fsys.dir);
    await store.append(record('a'));
    // Leave about 8 KB free, then try a ~20 KB record.
    const free = () => fs.statfsSync(fsys.dir).bavail * fs.statfsSync(fsys.dir).bsize;
    fs.writeFileSync(path.join(fsys.dir, 'filler'), Buffer.alloc(Math.max(0, free() - 8192)));
    const before = fs.readFileSync(store.runsFile);
    await assert.rejects(
      store.append(record('big', 20_000)),
      /^StoreWriteError: disk full: the run record was not saved \(.*runs\.jsonl: no space left on device\)$/m,
    );
    assert.deepEqual(fs.readFileSync(store.runsFile), before);
    assert.deepEqual(store.read().skipped, []);
    fs.rmSync(path.join(fsys.dir, 'filler'));
    await store.append(record('b'));
    assert.deepEqual(
      store.read().records.map((r) => r.id),
      ['a', 'b'],
    );
  } finally {
    fsys.done();
  }
});

test('quantize onto a full disk: exit 2, the output and "no space left" named, nothing left behind', async (t) => {
  const fsys = tmpfs('64k');
  if (typeof fsys === 'string') return t.skip(fsys);
  try {
    const dir = tempDir();
    await writeTinyModel(dir, { hidden: 64, intermediate: 256, layers: 2 }, 'model.onnx');
    const recipe = path.join(dir, 'haqa.yaml');
    fs.writeFileSync(recipe, 'version: 1\nmodel: ./model.onnx\nquantize:\n  bits: 8\n  block_size: 32\n');
    const out = path.join(fsys.dir, 'out.onnx');
    const err: string[] = [];
    const io: CliIO = { out: () => undefined, err: (l) => err.push(l), signal: new AbortController().signal };
    // Fill the tmpfs so that the quantized model (~70 KB) cannot fit.
    fs.writeFileSync(path.join(fsys.dir, 'filler'), Buffer.alloc(40_000));
    const before = fs.readdirSync(fsys.dir);
    const code = await main(['quantize', recipe, '-o', out], io);
    assert.equal(code, 2, err.join('\n'));
    assert.match(
      err.join('\n'),
      new RegExp(
        `haqa quantize: cannot write ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ` +
          'no space left on device; nothing was written',
      ),
    );
    assert.deepEqual(fs.readdirSync(fsys.dir), before);
  } finally {
    fsys.done();
  }
});
