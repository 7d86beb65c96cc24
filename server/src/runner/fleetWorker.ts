// `haqa worker --queue redis://…`: one device of the fleet. It announces its hardware class (in
// `haqa:workers:<class>`), pulls that class's trials one at a time, fetches each file of a trial once
// from Redis into its cache (content-addressed), runs the trial with the local runner (a worker process,
// as on any machine) and returns the record as the job's result. Killed mid-trial, it loses nothing:
// the job's lock lapses and BullMQ's stalled-job check hands it to another worker of the class.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Job, Worker } from 'bullmq';
import { resolveRecipe } from '../config/recipe';
import { hardwareFingerprint } from '../bench/hardware';
import type { HardwareFingerprint } from '../bench/record';
import { writeFileAtomic } from '../util/atomicWrite';
import { sha256 } from '../bench/record';
import { LocalRunner } from './local';
import {
  blobKey,
  bullmq,
  cancelKey,
  FleetJobData,
  FleetJobResult,
  parseQueueUrl,
  queueName,
  RedisClient,
  redisClient,
  workersKey,
} from './queue';

/** The class a machine belongs to when it names none: arch, widest SIMD, cores (`x64-avx512-8c`). */
export function hardwareClass(h: HardwareFingerprint = hardwareFingerprint()): string {
  const simd = [
    'amx_tile',
    'avx512_vnni',
    'avx512f',
    'avx_vnni',
    'avx2',
    'avx',
    'i8mm',
    'asimddp',
    'dotprod',
    'asimd',
    'neon',
  ].find((f) => h.isa.includes(f));
  return `${h.arch}-${(simd ?? 'base').replace(/_/g, '')}-${h.cores}c`;
}

export interface FleetWorkerOptions {
  url: string;
  /** Default: hardwareClass() of this machine. */
  cls?: string;
  /** Where fetched files, trial folders and artifacts live (default ~/.cache/haqa/fleet). */
  cacheDir?: string;
  name?: string;
  /** Lock of a running job, ms: a killed worker's job is retried this long after (default 30 s). */
  lockMs?: number;
  log?: (line: string) => void;
}

export interface FleetWorker {
  cls: string;
  name: string;
  worker: Worker;
  close(): Promise<void>;
}

export async function startFleetWorker(o: FleetWorkerOptions): Promise<FleetWorker> {
  const hw = hardwareFingerprint();
  const url = new URL(
    o.url.includes('class=') ? o.url : `${o.url}${o.url.includes('?') ? '&' : '?'}class=${o.cls ?? hardwareClass(hw)}`,
  );
  const { connection, cls } = parseQueueUrl(url);
  const name = o.name ?? `${os.hostname()}-${process.pid}`;
  const cache = path.resolve(o.cacheDir ?? path.join(os.homedir(), '.cache', 'haqa', 'fleet'));
  const lockMs = o.lockMs ?? 30_000;
  const log = o.log ?? (() => undefined);
  const local = new LocalRunner();
  const { Worker } = bullmq();

  const client: RedisClient = redisClient(connection);
  const fetchBlob = async (sha: string, bytes: number): Promise<string> => {
    const file = path.join(cache, 'blobs', sha);
    if (fs.existsSync(file) && fs.statSync(file).size === bytes) return file;
    const buf = await client.getBuffer(blobKey(sha));
    if (!buf) throw new Error(`file ${sha} is not in the fleet's store (expired?): submit the trial again`);
    if (sha256(buf) !== sha) throw new Error(`file ${sha} arrived with another sha256`);
    await fs.promises.mkdir(path.dirname(file), { recursive: true });
    await writeFileAtomic(file, buf);
    return file;
  };

  const processor = async (job: Job<FleetJobData>): Promise<FleetJobResult> => {
    log(`started ${job.id} (attempt ${job.attemptsMade + 1})`);
    const dir = path.join(cache, 'trials', job.data.key);
    for (const f of job.data.files) {
      if (f.name.split('/').includes('..') || path.isAbsolute(f.name))
        throw new Error(`bad file name in job: ${f.name}`);
      const blob = await fetchBlob(f.sha256, f.bytes);
      const dst = path.join(dir, f.name);
      await fs.promises.mkdir(path.dirname(dst), { recursive: true });
      if (!fs.existsSync(dst))
        await fs.promises.link(blob, dst).catch((e: NodeJS.ErrnoException) => {
          if (e.code !== 'EEXIST') throw e;
        });
    }
    const recipe = resolveRecipe(job.data.doc, path.join(dir, 'haqa.yaml'));
    const ac = new AbortController();
    const poll = setInterval(() => {
      client.exists(cancelKey(job.id!)).then(
        (n) => n && ac.abort(),
        () => undefined,
      );
    }, 500);
    try {
      const record = await local.run(
        { ...job.data.job, recipe },
        {
          signal: ac.signal,
          noStore: true,
          storeDir: cache,
          onProgress: (p) => job.updateProgress({ stage: p.stage, message: p.message }).catch(() => undefined),
        },
      );
      log(`finished ${job.id} ${record.status}`);
      return { record, worker: name };
    } finally {
      clearInterval(poll);
    }
  };

  const worker: Worker = new Worker(queueName(cls), processor, {
    connection,
    concurrency: 1,
    lockDuration: lockMs,
    stalledInterval: Math.max(500, Math.floor(lockMs / 2)),
    maxStalledCount: 2,
  });
  await worker.waitUntilReady();
  const announce = () =>
    client.hset(workersKey(cls), name, JSON.stringify({ hardware: hw, seen: new Date().toISOString() }));
  await announce();
  const beat = setInterval(() => announce().catch(() => undefined), 30_000);
  beat.unref();
  log(`worker ${name}: class ${cls}, queue ${queueName(cls)} at ${connection.host}:${connection.port}`);
  return {
    cls,
    name,
    worker,
    close: async () => {
      clearInterval(beat);
      await client.hdel(workersKey(cls), name).catch(() => undefined);
      await worker.close();
      await client.quit().catch(() => undefined);
    },
  };
}
