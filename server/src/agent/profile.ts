// What the tuner knows about the machine: enough to derive a default search space and priors, and to
// tell the agent what it is tuning for. Built from the run records' fingerprint (setting.ts
// machineProfile); the bench module adds a measured memory bandwidth when it has one.
import * as os from 'node:os';

export interface HardwareProfile {
  cpu: string;
  arch: string;
  cores: number;
  /**
   * ISA features that decide which MatMulNBits kernels are fast: avx2,
   * avx512f, avx512_vnni, avx_vnni, amx, neon, dotprod, i8mm.
   */
  isa: string[];
  memory_bytes: number;
  /** Measured read bandwidth, GB/s (absent when not measured). */
  bandwidth_gbs?: number;
  providers: string[];
  /**
   * Cores other work kept busy when the profile was taken (the 1-minute load average, rounded, at most
   * cores − 1). On a shared machine the best intra-op thread count is the idle cores, not all of them.
   */
  busy_cores?: number;
}

/** Cores the 1-minute load average says are taken by other processes. */
export function busyCores(cores: number): number {
  const load = os.loadavg()[0] ?? 0;
  return Math.max(0, Math.min(cores - 1, Math.round(load)));
}

/** int8 dot-product instructions: where accuracy_level 4 (int8 compute) gains the most. */
export function hasInt8Dot(p: HardwareProfile): boolean {
  return p.isa.some((f) => /vnni|amx|asimddp|dotprod|i8mm/.test(f));
}
