// A load generator for tests and the benchmark: a child process that loads the CPU and memory in
// bursts of random length (seeded, so a run is reproducible), to show that a decision holds under a
// known load as well as under the machine's own. Each burst picks busy or idle, a length (burstMs
// range), and when busy a number of spinning threads' worth of work (busy loops in worker threads)
// and a memory sweep over a buffer (touching pages, so memory bandwidth is contended too).
//
//   startLoad({ seed, threads, memoryBytes }) → { stop() }    (forks this file)
//   Not a CLI: bench/search.ts and tests start it through startLoad (under tsx, the fork inherits its loader).
import { fork, type ChildProcess } from 'node:child_process';
import { Worker, isMainThread, workerData } from 'node:worker_threads';

export interface LoadOptions {
  seed: number;
  /** Busy threads at most in a burst (default 1). */
  threads?: number;
  /** Buffer swept while busy, bytes (default 64 MiB). */
  memoryBytes?: number;
  /** Burst length range, ms (default [200, 3000]). */
  burstMs?: [number, number];
  /** Share of bursts that are busy (default 0.6). */
  busyShare?: number;
}

export interface LoadHandle {
  pid: number;
  stop(): Promise<void>;
}

/** mulberry32: the same sequence on every platform. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The schedule of bursts a seed gives: [busy threads (0 = idle), ms]. Pure, for tests. */
export function schedule(o: LoadOptions, n: number): [number, number][] {
  const r = rng(o.seed);
  const [lo, hi] = o.burstMs ?? [200, 3000];
  const out: [number, number][] = [];
  for (let i = 0; i < n; i++) {
    const busy = r() < (o.busyShare ?? 0.6);
    const threads = busy ? 1 + Math.floor(r() * (o.threads ?? 1)) : 0;
    out.push([threads, Math.round(lo + (hi - lo) * r())]);
  }
  return out;
}

/** Starts the load in a child process; stop() ends it (and it ends by itself when this process goes). */
export function startLoad(o: LoadOptions, script = __filename): LoadHandle {
  const child: ChildProcess = fork(script, [JSON.stringify(o)], {
    stdio: 'ignore',
    env: { ...process.env, HAQA_LOADGEN: '1' },
  });
  return {
    pid: child.pid!,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** One spinning thread: busy until told to idle, sweeping its share of the buffer. */
function spinner(): void {
  const { buf } = workerData as { buf: SharedArrayBuffer };
  const view = new Uint8Array(buf);
  let x = 0;
  for (;;) {
    for (let i = 0; i < view.length; i += 4096) x = (x + view[i]++) | 0; // touch every page
  }
}

async function child(o: LoadOptions): Promise<void> {
  process.on('disconnect', () => process.exit(0));
  const buf = new SharedArrayBuffer(o.memoryBytes ?? 64 * 2 ** 20);
  const workers: Worker[] = [];
  for (const [threads, ms] of schedule(o, 1_000_000)) {
    while (workers.length > threads) await workers.pop()!.terminate();
    while (workers.length < threads) workers.push(new Worker(__filename, { workerData: { buf } }));
    await new Promise((r) => setTimeout(r, ms));
  }
}

if (!isMainThread) spinner();
else if (process.env.HAQA_LOADGEN === '1' && process.send && process.argv[2])
  void child(JSON.parse(process.argv[2]) as LoadOptions);
