// Starting the benchmark worker and living with whatever it does: finish, fail, crash, hang, or get
// cancelled. `runWorker` never rejects; every ending becomes an outcome that ./run.ts turns into a record.
import { fork, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { BaselineFigures, Metrics, RunError, RunStage, RunStatus } from './record';
import type { LayerFindings, WorkerJob, WorkerMessage } from './protocol';
import type { BandwidthResult } from './hardware';

/**
 * How to start the worker. Bundled (dist/cli.js, dist/server.js): dist/worker.js beside this code.
 * From sources (tests, `tsx`): server/src/bench/worker.ts under `--import tsx`.
 */
export function workerEntry(): { file: string; execArgv: string[] } {
  const bundled = path.join(__dirname, 'worker.js');
  if (path.extname(__filename) === '.js' && fs.existsSync(bundled)) return { file: bundled, execArgv: [] };
  const source = path.join(__dirname, 'worker.ts');
  if (fs.existsSync(source)) {
    // Resolved from here, not from the working directory, which may be anywhere.
    const tsx = pathToFileURL(require.resolve('tsx', { paths: [__dirname] })).href;
    return { file: source, execArgv: ['--import', tsx] };
  }
  // Bundled code whose worker sits at the package root's dist/ (e.g. a test loading dist/cli.js).
  const dist = path.resolve(__dirname, '..', '..', '..', 'dist', 'worker.js');
  return { file: dist, execArgv: [] };
}

export interface WorkerOutcome {
  status: RunStatus;
  metrics?: Metrics;
  /** fp32 latency figures timed interleaved with the model's, when the job asked. */
  baseline?: BaselineFigures;
  bandwidth?: BandwidthResult;
  /** What a compress job reports for the artifact's meta.json. */
  artifact?: Record<string, unknown>;
  error?: RunError;
  /** Per-layer profile or sensitivity, from those jobs. */
  findings?: LayerFindings;
  /** Stage the worker last reported. */
  stage: RunStage;
}

export interface WorkerRunOptions {
  signal?: AbortSignal;
  /** Wall-clock limit of this worker, ms. */
  timeoutMs?: number;
  onProgress?: (p: { stage: RunStage; message: string; fraction?: number }) => void;
  /** Called with the worker's pid once it runs (tests kill it; UIs may show it). */
  onSpawn?: (pid: number) => void;
}

/** After SIGTERM, how long a worker gets before SIGKILL. */
const KILL_GRACE_MS = 1500;

export function runWorker(job: WorkerJob, opts: WorkerRunOptions = {}): Promise<WorkerOutcome> {
  return new Promise((resolve) => {
    let stage: RunStage = job.kind === 'compress' ? 'compress' : job.kind === 'bandwidth' ? 'setup' : 'load';
    let settled = false;
    let child: ChildProcess;
    let stderr = '';
    let ending: { status: 'cancelled' | 'timeout'; message: string } | undefined;
    let reply: WorkerMessage | undefined;
    let timer: NodeJS.Timeout | undefined;
    let killTimer: NodeJS.Timeout | undefined;

    const finish = (o: WorkerOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(killTimer);
      opts.signal?.removeEventListener('abort', onAbort);
      resolve(o);
    };

    const stop = (status: 'cancelled' | 'timeout', message: string) => {
      if (ending || settled) return;
      ending = { status, message };
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
      killTimer.unref();
    };
    const onAbort = () => stop('cancelled', 'cancelled by the caller');

    if (opts.signal?.aborted) {
      resolve({
        status: 'cancelled',
        stage: 'setup',
        error: { message: 'cancelled before the worker started', stage: 'setup' },
      });
      return;
    }
    const entry = workerEntry();
    try {
      child = fork(entry.file, [], {
        execArgv: entry.execArgv,
        stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
        // The worker needs no secrets: pass only what Node and the test hooks need.
        env: pickEnv(process.env),
        serialization: 'json',
      });
    } catch (err) {
      resolve({
        status: 'error',
        stage: 'setup',
        error: {
          message: `cannot start the benchmark worker ${entry.file}: ${(err as Error).message}`,
          stage: 'setup',
          where: entry.file,
        },
      });
      return;
    }
    child.stderr?.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString()).slice(-4000);
    });
    child.on('message', (m: WorkerMessage) => {
      if (m.type === 'ready') {
        if (!ending) child.send(job);
      } else if (m.type === 'progress') {
        stage = m.stage;
        opts.onProgress?.({ stage: m.stage, message: m.message, fraction: m.fraction });
      } else {
        reply = m;
      }
    });
    child.on('error', (err) => {
      if (!child.pid)
        finish({
          status: 'error',
          stage: 'setup',
          error: {
            message: `cannot start the benchmark worker ${entry.file}: ${err.message}`,
            stage: 'setup',
            where: entry.file,
          },
        });
    });
    child.on('exit', (code, sig) => {
      if (ending) {
        finish({
          status: ending.status,
          stage,
          error: { message: `${ending.message} (worker stopped during ${stage})`, stage },
        });
      } else if (reply?.type === 'result') {
        finish({
          status: 'ok',
          stage,
          metrics: reply.metrics,
          baseline: reply.baseline,
          bandwidth: reply.bandwidth,
          artifact: reply.artifact,
          findings: reply.findings,
        });
      } else if (reply?.type === 'error') {
        finish({
          status: 'error',
          stage: reply.stage,
          error: { message: reply.message, stage: reply.stage, where: reply.where },
        });
      } else {
        const how = sig
          ? `killed by ${sig}${sig === 'SIGKILL' ? ' (out of memory, or killed from outside)' : ''}`
          : `exited with code ${code}`;
        const tail = lastLines(stderr);
        finish({
          status: 'error',
          stage,
          error: { message: `benchmark worker ${how} during ${stage}${tail ? `: ${tail}` : ''}`, stage },
        });
      }
    });
    child.once('spawn', () => {
      if (child.pid) opts.onSpawn?.(child.pid);
    });
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.timeoutMs !== undefined) {
      timer = setTimeout(
        () => stop('timeout', `no result within ${Math.round(opts.timeoutMs! / 1000)} s`),
        opts.timeoutMs,
      );
    }
  });
}

function lastLines(s: string): string {
  return s.trim().split('\n').slice(-3).join(' | ').slice(0, 600);
}

/** The environment a worker gets: nothing that could hold a credential. */
function pickEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const keep = [
    'PATH',
    'HOME',
    'TMPDIR',
    'LANG',
    'LC_ALL',
    'NODE_OPTIONS',
    'NODE_PATH',
    'HAQA_BENCH_TEST_HOOKS',
    'TSX_TSCONFIG_PATH',
    'OMP_NUM_THREADS',
  ];
  const out: NodeJS.ProcessEnv = {};
  for (const k of keep) if (env[k] !== undefined) out[k] = env[k];
  return out;
}
