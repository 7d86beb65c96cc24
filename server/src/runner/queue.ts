// The fleet: trials through Redis with BullMQ. One queue per hardware class (`haqa-trials-<class>`);
// `haqa worker --queue redis://…` on each device announces its class and pulls that queue's trials
// (./fleetWorker.ts). The submitting side (this QueueRunner, used by the tuner and `haqa bench --host`)
// puts the trial's files into Redis once, content-addressed (`haqa:blob:<sha256>`), adds the job and
// waits for its record.
//
// A worker killed mid-trial loses nothing: its job's lock expires, BullMQ's stalled-job check moves the
// job back to the queue and another worker of the class runs it. The record comes back as the job's
// return value and is appended here once, keyed by the job id (./device.ts storeRecord): a job delivered
// twice, or collected again, stays one record; the store's append is whole-line and atomic.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Job, Queue, QueueEvents } from 'bullmq';
import type { HardwareFingerprint, RunRecord, RunStatus } from '../bench/record';
import { recipeBundle } from './bundle';
import { adoptRecord, deviceOf, emptyRecord, storeRecord } from './device';
import { Runner, RunnerConfig, RunnerError, RunnerOptions, TrialJob } from './types';

/** Files larger than this are not carried through Redis (docs/fleet.md: a shared artifact store instead). */
export const MAX_BLOB_BYTES = 256 << 20;
export const BLOB_TTL_S = 7 * 24 * 3600;

export const queueName = (cls: string) => `haqa-trials-${cls}`;
export const blobKey = (sha: string) => `haqa:blob:${sha}`;
export const cancelKey = (job: string) => `haqa:cancel:${job}`;
export const workersKey = (cls: string) => `haqa:workers:${cls}`;

/** What travels in a job: the bundle's recipe document and file list, and the run options. */
export interface FleetJobData {
  doc: Record<string, unknown>;
  files: { name: string; sha256: string; bytes: number }[];
  key: string;
  job: Omit<TrialJob, 'recipe'>;
}

/** What a job returns: the record, and the worker that ran it. */
export interface FleetJobResult {
  record: RunRecord;
  worker: string;
}

/** `redis://host:port[/db]?class=NAME` → connection options and the class. */
export function parseQueueUrl(url: URL): {
  connection: { host: string; port: number; db: number; username?: string };
  cls: string;
} {
  const cls = url.searchParams.get('class');
  if (!cls || !/^[A-Za-z0-9._-]{1,64}$/.test(cls)) {
    throw new RunnerError(`${url.origin}: name the hardware class (?class=NAME, letters, digits, . _ -)`, url.href);
  }
  return {
    connection: {
      host: url.hostname || '127.0.0.1',
      port: url.port ? Number(url.port) : 6379,
      db: Number(url.pathname.replace(/^\//, '') || 0),
      username: url.username || undefined,
      // A password, when Redis wants one, comes from the environment, never from the URL or the recipe.
      ...(process.env.HAQA_REDIS_PASSWORD ? { password: process.env.HAQA_REDIS_PASSWORD } : {}),
    },
    cls,
  };
}

/** Loaded when used: the remote worker bundle and the editor never load BullMQ otherwise. */
export function bullmq(): typeof import('bullmq') {
  return require('bullmq') as typeof import('bullmq');
}

export type RedisClient = import('ioredis').Redis;

/** A plain client for the blobs, the cancel flags and the worker roster (BullMQ keeps its own). */
export function redisClient(connection: ReturnType<typeof parseQueueUrl>['connection']): RedisClient {
  const { Redis } = require('ioredis') as typeof import('ioredis');
  return new Redis({ ...connection, maxRetriesPerRequest: null, lazyConnect: false });
}

export class QueueRunner implements Runner {
  readonly kind = 'queue';
  readonly host: string;
  readonly cls: string;
  private readonly connection: ReturnType<typeof parseQueueUrl>['connection'];
  private queue?: Queue;
  private events?: QueueEvents;
  private redis?: RedisClient;
  private ready?: Promise<void>;

  constructor(
    url: URL,
    private readonly config: RunnerConfig = {},
  ) {
    const p = parseQueueUrl(url);
    this.cls = p.cls;
    this.connection = p.connection;
    this.host =
      `redis://${p.connection.host}:${p.connection.port}` +
      `${p.connection.db ? `/${p.connection.db}` : ''}?class=${p.cls}`;
  }

  private open(): Promise<void> {
    this.ready ??= (async () => {
      const { Queue, QueueEvents } = bullmq();
      this.queue = new Queue(queueName(this.cls), { connection: this.connection });
      this.events = new QueueEvents(queueName(this.cls), { connection: this.connection });
      this.redis = redisClient(this.connection);
      // One listener per trial in flight: a batch for many workers is many.
      this.queue.setMaxListeners(0);
      this.events.setMaxListeners(0);
      await Promise.all([this.queue.waitUntilReady(), this.events.waitUntilReady(), this.redis.ping()]);
    })().catch((err) => {
      this.ready = undefined;
      throw new RunnerError(`cannot reach the fleet queue at ${this.host}: ${(err as Error).message}`, this.host);
    });
    return this.ready;
  }

  /** The hardware a worker of this class announced (the class is one kind of machine). */
  async profile(): Promise<HardwareFingerprint> {
    await this.open();
    const all = await this.redis!.hgetall(workersKey(this.cls));
    const first = Object.values(all)[0];
    if (!first)
      throw new RunnerError(
        `no worker of class ${this.cls} has announced itself at ` +
          `${this.host} (start \`haqa worker --queue ${this.host}\`)`,
        this.host,
      );
    return (JSON.parse(first) as { hardware: HardwareFingerprint }).hardware;
  }

  async run(job: TrialJob, opts: RunnerOptions = {}): Promise<RunRecord> {
    const started = new Date();
    const jobId = `t-${started.getTime().toString(36)}-${randomBytes(6).toString('hex')}`;
    let record: RunRecord;
    try {
      record = await this.submit(job, jobId, opts);
    } catch (err) {
      record = emptyRecord(
        job,
        {
          cpu: 'unknown',
          arch: 'unknown',
          isa: [],
          cores: 0,
          memory_bytes: 0,
          os: 'unknown',
          node: '',
          onnxruntime: '',
        },
        started,
      );
      const status: RunStatus = opts.signal?.aborted ? 'cancelled' : 'error';
      record.status = status;
      record.error = { message: (err as Error).message, stage: 'setup', where: this.host };
      record.device = deviceOf(this.kind, this.host, record.hardware, { job: jobId });
    }
    if (opts.noStore) return record;
    return storeRecord(opts.storeDir ?? path.dirname(job.recipe.file), record);
  }

  private async submit(job: TrialJob, jobId: string, opts: RunnerOptions): Promise<RunRecord> {
    await this.open();
    const client = this.redis!;
    const bundle = await recipeBundle(job.recipe);
    for (const f of bundle.files) {
      if (await client.exists(blobKey(f.sha256))) continue;
      if (f.bytes > MAX_BLOB_BYTES) {
        throw new RunnerError(
          `${f.local} is ${f.bytes} bytes, over the ${MAX_BLOB_BYTES}-byte ` +
            'limit for files carried through Redis (see docs/fleet.md)',
          this.host,
        );
      }
      opts.onProgress?.({ stage: 'setup', message: `sending ${f.name} to the fleet` });
      await client.set(blobKey(f.sha256), await fs.promises.readFile(f.local), 'EX', BLOB_TTL_S, 'NX');
    }
    const { recipe: _r, ...rest } = job;
    const data: FleetJobData = {
      doc: bundle.doc,
      files: bundle.files.map(({ name, sha256, bytes }) => ({ name, sha256, bytes })),
      key: bundle.key,
      job: rest,
    };
    const added: Job = await this.queue!.add('trial', data, {
      jobId,
      attempts: 3,
      backoff: { type: 'fixed', delay: 500 },
      removeOnComplete: { age: 24 * 3600 },
      removeOnFail: { age: 7 * 24 * 3600 },
    });
    opts.onProgress?.({ stage: 'setup', message: `queued as ${jobId} on ${queueName(this.cls)}` });
    const onAbort = () => {
      // A waiting job is removed; a running one is told to stop (its worker polls this key).
      client.set(cancelKey(jobId), '1', 'EX', 3600).catch(() => undefined);
      added.remove().catch(() => undefined);
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const progress = ({ jobId: id, data: p }: { jobId: string; data: unknown }) => {
      const q = p as { stage?: unknown; message?: unknown };
      if (id === jobId && typeof q?.stage === 'string' && typeof q.message === 'string')
        opts.onProgress?.({ stage: q.stage, message: q.message });
    };
    this.events!.on('progress', progress);
    try {
      const ttl = this.config.waitMs ?? (job.timeoutMs ?? 3600_000) + 600_000;
      const aborted = new Promise<never>((_, rej) =>
        opts.signal?.addEventListener('abort', () => rej(new RunnerError('cancelled by the caller', this.host)), {
          once: true,
        }),
      );
      const res = (await Promise.race([added.waitUntilFinished(this.events!, ttl), aborted])) as FleetJobResult;
      const rec = res.record;
      return adoptRecord(
        rec,
        job,
        deviceOf(this.kind, this.host, rec.hardware, { job: jobId, worker: res.worker }),
        `fleet:${res.worker}:`,
      );
    } finally {
      this.events!.off('progress', progress);
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  async close(): Promise<void> {
    await this.ready?.catch(() => undefined);
    await Promise.all([this.events?.close(), this.queue?.close(), this.redis?.quit().catch(() => undefined)]);
  }
}
