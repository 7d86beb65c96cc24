// Compression on several threads: the RTN quantizer of a streamed layer (pipeline.ts streamQuantize)
// hands its slices to worker_threads (layerWorker.ts), each writing its own blocks of the packed
// weight in shared memory. The output is byte-identical to one thread's:
//   - slices are whole groups of 4 blocks along K ([K, N] weights), so no two threads touch the same
//     byte of a packed zero-point row (2-bit zero points pack 4 blocks a byte), or whole rows of N
//     ([N, K] weights, transB), which own their bytes outright;
//   - the error sums (Σ(w − ŵ)², Σw²) are added per slice in slice order, serial and parallel alike.
// Memory stays bounded: at most `threads + 1` slices (each `chunkBytes` of float32) exist at a time,
// and layers are still written one after the other, in order, to the external data file.
//
// Threads: recipe/option `threads` (CompressOptions.threads), default min(cores, 4) (util/cpu.ts).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { BlockQuantSpec, PackedWeight } from './quant';
import { layoutOf } from './quant';

/** Default thread count: the cores this process may use, at most 4. */
export function defaultThreads(): number {
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.max(1, Math.min(cores, 4));
}

/** A PackedWeight whose arrays live in shared memory, so worker threads fill it in place. */
export function sharedPacked(K: number, N: number, spec: BlockQuantSpec, init: PackedWeight): PackedWeight {
  const share = <T extends Uint8Array | Float32Array>(a: T): T => {
    const sab = new SharedArrayBuffer(a.byteLength);
    const out = new (a.constructor as { new (b: SharedArrayBuffer): T })(sab);
    out.set(a as never);
    return out;
  };
  const { nBlocks, blobSize } = layoutOf(K, N, spec);
  return {
    ...init,
    nBlocks,
    blobSize,
    packed: share(init.packed),
    scales: share(init.scales),
    zeroPoints: init.zeroPoints ? share(init.zeroPoints) : undefined,
  };
}

export interface SliceTask {
  pw: PackedWeight;
  /** float32 rows of the slice, in shared memory. */
  rows: Float32Array;
  row0: number;
  count: number;
  transB: boolean;
}

/** Slices quantized on worker threads in this process (tests check the threads are really used). */
export const parallelStats = { slices: 0 };

interface Pending {
  resolve: (v: { sqErr: number; sqNorm: number }) => void;
  reject: (e: Error) => void;
}

/**
 * A worker thread: the bundle's dist/layerWorker.js, or the TypeScript source through tsx (tests, `node --import tsx`).
 */
function startWorker(): Worker {
  const js = path.join(__dirname, 'layerWorker.js');
  if (fs.existsSync(js)) return new Worker(js);
  const ts = path.join(__dirname, 'layerWorker.ts');
  return new Worker(`require('tsx/cjs/api').register(); require(${JSON.stringify(ts)});`, { eval: true });
}

/** A fixed set of worker threads quantizing slices; `close` ends them. */
export class QuantPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly waiting: (() => void)[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private failed: Error | undefined;

  constructor(readonly threads: number) {
    for (let i = 0; i < threads; i++) {
      const w = startWorker();
      w.on('message', (m: { id: number; sqErr?: number; sqNorm?: number; error?: string }) => {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        this.release(w);
        if (!p) return;
        if (m.error !== undefined) p.reject(new Error(m.error));
        else p.resolve({ sqErr: m.sqErr!, sqNorm: m.sqNorm! });
      });
      w.on('error', (err) => {
        this.failed = err;
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
      });
      this.workers.push(w);
      this.idle.push(w);
    }
  }

  private release(w: Worker): void {
    this.idle.push(w);
    this.waiting.shift()?.();
  }

  /** Quantize one slice on a free thread; resolves with the slice's error sums. */
  async run(t: SliceTask): Promise<{ sqErr: number; sqNorm: number }> {
    if (this.failed) throw this.failed;
    while (this.idle.length === 0) await new Promise<void>((r) => this.waiting.push(r));
    const w = this.idle.pop()!;
    const id = this.nextId++;
    parallelStats.slices++;
    const { pw } = t;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      w.postMessage({
        id,
        row0: t.row0,
        count: t.count,
        transB: t.transB,
        rows: t.rows,
        pw: {
          K: pw.K,
          N: pw.N,
          bits: pw.bits,
          blockSize: pw.blockSize,
          symmetric: pw.symmetric,
          nBlocks: pw.nBlocks,
          blobSize: pw.blobSize,
          packed: pw.packed,
          scales: pw.scales,
          zeroPoints: pw.zeroPoints,
        },
      });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
