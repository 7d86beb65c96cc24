// Compression on several threads: the RTN quantizer of a streamed layer (pipeline.ts streamQuantize)
// hands its slices to worker_threads (layerWorker.ts), each writing its own blocks of the packed
// weight in shared memory. The output is byte-identical to one thread's:
//   - slices are whole groups of 4 blocks along K ([K, N] weights), so no two threads touch the same
//     byte of a packed zero-point row (2-bit zero points pack 4 blocks a byte), or whole rows of N
//     ([N, K] weights, transB), which own their bytes outright;
//   - the error sums (Σ(w − ŵ)², Σw²) are added per slice in slice order, serial and parallel alike.
// Memory stays bounded: the pool owns `threads + 1` shared slots the reader fills with stored bytes
// (reused for every layer: a fresh SharedArrayBuffer per slice is freed only when both threads' GCs
// let go of it, and a 4 GB model's run once held 7 GB that way), each thread one float32 conversion
// buffer; layers are still written one after the other, in order, to the external data file. The
// reader thread only reads and hands out slices: conversion to float32 happens on the workers, so a
// 16-bit source does not serialize on the reader.
//
// Threads: recipe/option `threads` (CompressOptions.threads), default min(cores, 4) (util/cpu.ts).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { PackedWeight } from './quant';

/** The most threads a pool starts by default. */
export const MAX_DEFAULT_THREADS = 4;

/** Default thread count: the cores this process may use, at most MAX_DEFAULT_THREADS. */
export function defaultThreads(): number {
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.max(1, Math.min(cores, MAX_DEFAULT_THREADS));
}

export interface SliceTask {
  pw: PackedWeight;
  /** The slice as stored (float32, float16 or bfloat16 bytes), in one of the pool's shared slots. */
  raw: Uint8Array;
  /** Its ONNX element type: the thread converts it to float32 (model/floatTypes.ts), not the reader. */
  dataType: number;
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
  private slotBufs: Uint8Array[] = [];
  private outBufs: { packed?: Uint8Array; scales?: Float32Array; zeroPoints?: Uint8Array } = {};

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

  /**
   * `threads + 1` shared buffers of at least `bytes` each, the same ones for every layer (grown when a
   * layer needs more). The caller reuses a slot only once the slice in it has been quantized.
   */
  slots(bytes: number): Uint8Array[] {
    if (this.slotBufs.length === 0 || this.slotBufs[0].byteLength < bytes)
      this.slotBufs = Array.from({ length: this.threads + 1 }, () => new Uint8Array(new SharedArrayBuffer(bytes)));
    return this.slotBufs;
  }

  /**
   * `init` with its arrays copied into the pool's shared output buffers (the same for every layer, grown
   * when a layer needs more), for the threads to fill; `unshare` copies the result out before the next
   * layer uses them. (A layer's output is a quarter of its input or less: the copy is cheap.)
   */
  share(init: PackedWeight): PackedWeight {
    const put = <T extends Uint8Array | Float32Array>(key: keyof QuantPool['outBufs'], a: T): T => {
      const Ctor = a.constructor as { new (b: ArrayBufferLike, offset: number, length: number): T };
      let have = this.outBufs[key] as T | undefined;
      if (!have || have.length < a.length) {
        have = new Ctor(new SharedArrayBuffer(a.byteLength), 0, a.length);
        (this.outBufs as Record<string, T>)[key] = have;
      }
      const view = new Ctor(have.buffer, 0, a.length);
      view.set(a as never);
      return view;
    };
    return {
      ...init,
      packed: put('packed', init.packed),
      scales: put('scales', init.scales),
      zeroPoints: init.zeroPoints ? put('zeroPoints', init.zeroPoints) : undefined,
    };
  }

  /** Copy a shared result (from `share`) into `into`, the layer's own arrays. */
  static unshare(shared: PackedWeight, into: PackedWeight): void {
    into.packed.set(shared.packed);
    into.scales.set(shared.scales);
    if (into.zeroPoints && shared.zeroPoints) into.zeroPoints.set(shared.zeroPoints);
    into.sqErr = shared.sqErr;
    into.sqNorm = shared.sqNorm;
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
        raw: t.raw,
        dataType: t.dataType,
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
