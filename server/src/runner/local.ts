// The local runner: today's path, unchanged — bench/run.ts compresses and measures in a worker process
// (bench/spawn.ts forks dist/worker.js). It adds only the device to the record.
import * as path from 'node:path';
import { runRecipe } from '../bench/run';
import { hardwareFingerprint } from '../bench/hardware';
import type { HardwareFingerprint, RunRecord } from '../bench/record';
import { deviceOf, storeRecord } from './device';
import type { Runner, RunnerOptions, TrialJob } from './types';

export class LocalRunner implements Runner {
  readonly kind = 'local';
  readonly host = 'local';

  async profile(): Promise<HardwareFingerprint> {
    return hardwareFingerprint();
  }

  async run(job: TrialJob, opts: RunnerOptions = {}): Promise<RunRecord> {
    const record = await runRecipe(job.recipe, {
      quick: job.quick,
      baseline: job.baseline,
      measure: job.measure,
      trial: job.trial,
      timeoutMs: job.timeoutMs,
      debug: job.debug,
      reference: job.reference,
      race: job.race,
      raceAgainst: job.raceAgainst,
      signal: opts.signal,
      onProgress: opts.onProgress,
      storeDir: opts.storeDir,
      noStore: true,
    });
    record.device = deviceOf(this.kind, this.host, record.hardware);
    if (opts.noStore) return record;
    return storeRecord(opts.storeDir ?? path.dirname(job.recipe.file), record);
  }

  async close(): Promise<void> {}
}
