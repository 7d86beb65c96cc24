// What a record says about the device that ran it (bench/record.ts DeviceInfo), and the one way to
// store a record from any runner: appended once, keyed by its queue job when it has one.
import {
  canonicalJson,
  DeviceInfo,
  HardwareFingerprint,
  newRunId,
  recipeHash,
  RunRecord,
  runConfig,
  sha256,
} from '../bench/record';
import { RunStore } from '../bench/store';
import type { TrialJob } from './types';

/** Short hash of what identifies a machine (the same fields bench/run.ts keys its bandwidth cache by). */
export function hardwareKey(h: HardwareFingerprint): string {
  return sha256(
    canonicalJson({ cpu: h.cpu, arch: h.arch, isa: h.isa, cores: h.cores, memory: h.memory_bytes, os: h.os }),
  ).slice(0, 16);
}

export function deviceOf(
  runner: string,
  host: string,
  h: HardwareFingerprint,
  extra: Partial<DeviceInfo> = {},
): DeviceInfo {
  return { runner, host, fingerprint: hardwareKey(h), ...extra };
}

/**
 * Append a record made elsewhere (or by the local runner with noStore). With `device.job` set, a record
 * of the same job already in the store is not appended again: a queue job delivered twice, or collected
 * again after a restart, stays one record. The store's own append is whole-line and atomic.
 */
export async function storeRecord(storeDir: string, record: RunRecord): Promise<RunRecord> {
  const store = new RunStore(storeDir);
  try {
    const job = record.device?.job;
    if (job && store.read().records.some((r) => r.device?.job === job)) return record;
    await store.append(record);
  } catch (err) {
    if (record.status === 'ok') {
      record.status = 'error';
      record.error = {
        message: `measured, but the record could not be stored: ${(err as Error).message}`,
        stage: 'store',
        where: store.runsFile,
      };
    } else if (record.error) {
      record.error.message += ` (and the record could not be stored: ${(err as Error).message})`;
    }
  }
  return record;
}

/** The record of a run that never produced one on its device (connection refused, worker missing, cancelled). */
export function emptyRecord(job: TrialJob, hardware: HardwareFingerprint, started: Date): RunRecord {
  const r = job.recipe;
  return {
    id: newRunId(started),
    recipe_file: r.file,
    recipe_hash: recipeHash(r),
    source_model: r.model,
    config: runConfig(r),
    status: 'error',
    metrics: {},
    session_options: {
      provider: r.target.provider,
      intra_op_threads: r.runtime.intra_op_threads,
      inter_op_threads: r.runtime.inter_op_threads,
      graph_optimization: r.runtime.graph_optimization,
      execution_mode: r.runtime.execution_mode,
    },
    hardware,
    onnxruntime: hardware.onnxruntime,
    quick: job.quick ?? false,
    started: started.toISOString(),
    finished: new Date().toISOString(),
    trial: job.trial,
  };
}

/** A record made on another device, renamed to this side's recipe and model (it ran on copies of them). */
export function adoptRecord(rec: RunRecord, job: TrialJob, device: DeviceInfo, artifactPrefix: string): RunRecord {
  return {
    ...rec,
    recipe_file: job.recipe.file,
    recipe_hash: recipeHash(job.recipe),
    source_model: job.recipe.model,
    config: runConfig(job.recipe),
    artifact: rec.artifact && `${artifactPrefix}${rec.artifact}`,
    trial: job.trial,
    device,
  };
}
