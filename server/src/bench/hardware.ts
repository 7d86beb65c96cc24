// What machine a measurement was taken on: enough to tell two records apart when they come from
// different CPUs, and the ISA flags that decide which onnxruntime kernels run (MatMulNBits with
// accuracy_level 4 wants AVX2/AVX-512 VNNI; on ARM, dotprod).
import * as os from 'node:os';
import { cpuFlagSet } from '../util/cpu';
import * as ort from 'onnxruntime-node';
import { DataType, encodeModel } from '../model/onnx';
import { model, node, valueInfo } from '../model/build';
import type { HardwareFingerprint } from './record';

/** Flags worth recording; everything else in /proc/cpuinfo is noise for kernel selection. */
const X86_FLAGS = /^(sse4_1|sse4_2|avx|avx2|avx512\w*|avx_vnni\w*|avx_ifma|amx\w*|f16c|fma|bmi2)$/;
const ARM_FLAGS = /^(neon|asimd|asimddp|dotprod|i8mm|sve\w*|fphp|asimdhp|bf16)$/;

function cpuFlags(): string[] {
  return isaFlags(os.arch(), cpuFlagSet());
}

/** The flags worth recording out of a CPU's flag list, for `arch` as Node names it (also for a remote's). */
export function isaFlags(arch: string, flags: Iterable<string>): string[] {
  const re = arch === 'arm64' || arch === 'arm' ? ARM_FLAGS : X86_FLAGS;
  return [...new Set(flags)].filter((f) => re.test(f)).sort();
}

let cached: HardwareFingerprint | undefined;

export function onnxruntimeVersion(): string {
  return ort.env.versions?.node ?? ort.env.versions?.common ?? 'unknown';
}

export function hardwareFingerprint(): HardwareFingerprint {
  if (cached) return { ...cached };
  const cpus = os.cpus();
  cached = {
    cpu: (cpus[0]?.model ?? 'unknown').trim().replace(/\s+/g, ' '),
    arch: os.arch(),
    isa: cpuFlags(),
    cores: os.availableParallelism?.() ?? cpus.length,
    memory_bytes: os.totalmem(),
    os: `${os.platform()} ${os.release()}`,
    node: process.version,
    onnxruntime: onnxruntimeVersion(),
  };
  return { ...cached };
}

export interface BandwidthResult {
  /** Best observed read bandwidth, GB/s (1e9 bytes). */
  gbps: number;
  bytes: number;
  threads: number;
  /** Every repetition's GB/s, for the curious. */
  samples: number[];
}

/**
 * Memory read bandwidth as onnxruntime sees it: a ReduceSum over a large float tensor, fed without a
 * copy, run with `threads` intra-op threads, best of `reps`. A single JS thread cannot saturate
 * memory, and the runtime's own threads are what a decoder's weight reads will get. This is the floor
 * for weight-bound decoding: a token cannot take less than (weight bytes read) / bandwidth.
 * Allocates `bytes` (default 512 MiB); callers that must stay light run it in the worker process.
 */
export async function measureBandwidth(
  opts: { bytes?: number; threads?: number; reps?: number } = {},
): Promise<BandwidthResult> {
  const n = Math.floor((opts.bytes ?? 512 * 1024 ** 2) / 4);
  const threads = opts.threads ?? hardwareFingerprint().cores;
  const reps = opts.reps ?? 5;
  const proto = model({
    name: 'bandwidth',
    node: [node('ReduceSum', ['x'], ['y'], { name: 'sum', attrs: { keepdims: 0 } })],
    input: [valueInfo('x', DataType.FLOAT, [n])],
    output: [valueInfo('y', DataType.FLOAT, [])],
    initializer: [],
  });
  const session = await ort.InferenceSession.create(encodeModel(proto), {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  });
  try {
    const data = new Float32Array(n).fill(1); // touch every page so the first rep doesn't measure page faults
    const x = new ort.Tensor('float32', data, [n]);
    await session.run({ x }); // warm-up
    const samples: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t0 = process.hrtime.bigint();
      await session.run({ x });
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      samples.push((n * 4) / s / 1e9);
    }
    return { gbps: Math.max(...samples), bytes: n * 4, threads, samples };
  } finally {
    await session.release();
  }
}
