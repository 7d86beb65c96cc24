// What the tuner knows about the machine: enough to derive a default search space and priors, and to
// tell the agent what it is tuning for. Read from the OS here (cheap, no benchmarks); the bench module
// adds a measured memory bandwidth when it has one.
import * as fs from 'node:fs';
import * as os from 'node:os';

export interface HardwareProfile {
  cpu: string;
  arch: string;
  cores: number;
  /** ISA features that decide which MatMulNBits kernels are fast: avx2, avx512f, avx512_vnni, avx_vnni, amx, neon, dotprod, i8mm. */
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

const FLAGS = ['avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512_vnni', 'avx_vnni', 'amx_int8', 'amx_tile', 'asimd', 'asimddp', 'i8mm', 'sve'];

/** ISA flags from /proc/cpuinfo (Linux); an empty list elsewhere. */
function cpuFlags(): string[] {
  try {
    const text = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const line = /^(flags|Features)\s*:\s*(.*)$/m.exec(text);
    if (!line) return [];
    const have = new Set(line[2].split(/\s+/));
    return FLAGS.filter((f) => have.has(f));
  } catch {
    return [];
  }
}

export function localProfile(): HardwareProfile {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model?.trim() || 'unknown',
    arch: os.arch(),
    cores: Math.max(1, os.availableParallelism?.() ?? cpus.length),
    isa: cpuFlags(),
    memory_bytes: os.totalmem(),
    providers: ['cpu'],
    busy_cores: busyCores(Math.max(1, os.availableParallelism?.() ?? cpus.length)),
  };
}

/** int8 dot-product instructions: where accuracy_level 4 (int8 compute) gains the most. */
export function hasInt8Dot(p: HardwareProfile): boolean {
  return p.isa.some((f) => /vnni|amx|asimddp|dotprod|i8mm/.test(f));
}
