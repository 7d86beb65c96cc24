// Kernel facts measured on this machine, not quoted: a short probe of one decode-shaped product
// ([1, K] × [K, N]) as fp32 MatMul and as MatMulNBits at 4 and 8 bits with accuracy_level 0 and 4,
// timed interleaved in one worker (a 'kernel-probe' job), so the ratios saw the same load. Cached per
// hardware fingerprint (CPU, ISA, cores, onnxruntime) in `.haqa/kernels/<fingerprint>.json`; the
// advisor's kernel facts quote it (agent/advise.ts) instead of a fixed figure.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { DataType, encodeModel, makeTensor } from '../model/onnx';
import { model, node, valueInfo } from '../model/build';
import { quantizeRTN, type NBits } from '../compress/quant';
import { sha256, type HardwareFingerprint } from './record';
import type { Progress } from './protocol';
import { summarize } from './stats';
import { writeFileAtomic } from '../util/atomicWrite';
import type { RunStore } from './store';

export interface KernelProbeJob {
  kind: 'kernel-probe';
  K?: number;
  N?: number;
  threads: number;
  reps?: number;
}

export interface KernelFigure {
  kernel: string;
  bits: number;
  accuracy_level?: number;
  median_us: number;
  vs_fp32: number;
}
export interface KernelProbeResult {
  K: number;
  N: number;
  threads: number;
  reps: number;
  figures: KernelFigure[];
  measured_at: string;
  hardware?: HardwareFingerprint;
}

function randomWeight(n: number): Float32Array {
  let s = 12345;
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    w[i] = ((s >>> 8) / 2 ** 24 - 0.5) * 0.1;
  }
  return w;
}

function probeModel(K: number, N: number, w: Float32Array, q?: { bits: NBits; level: number }): Uint8Array {
  const init = [];
  let n;
  if (!q) {
    init.push(makeTensor('W', DataType.FLOAT, [K, N], w));
    n = node('MatMul', ['x', 'W'], ['y'], { name: 'mm' });
  } else {
    const pw = quantizeRTN(w, K, N, { bits: q.bits, blockSize: 32, symmetric: true });
    init.push(makeTensor('Wq', DataType.UINT8, [N, pw.nBlocks, pw.blobSize], pw.packed));
    init.push(makeTensor('S', DataType.FLOAT, [N, pw.nBlocks], pw.scales));
    const attrs: Record<string, number> = { K, N, bits: q.bits, block_size: 32 };
    if (q.level) attrs.accuracy_level = q.level;
    n = node('MatMulNBits', ['x', 'Wq', 'S'], ['y'], { name: 'mm', domain: 'com.microsoft', attrs });
  }
  return encodeModel(
    model({
      name: 'probe',
      node: [n],
      initializer: init,
      input: [valueInfo('x', DataType.FLOAT, [1, K])],
      output: [valueInfo('y', DataType.FLOAT, [1, N])],
    }),
  );
}

const VARIANTS: { kernel: string; q?: { bits: NBits; level: number } }[] = [
  { kernel: 'MatMul fp32' },
  { kernel: 'MatMulNBits', q: { bits: 4, level: 0 } },
  { kernel: 'MatMulNBits', q: { bits: 4, level: 4 } },
  { kernel: 'MatMulNBits', q: { bits: 8, level: 0 } },
  { kernel: 'MatMulNBits', q: { bits: 8, level: 4 } },
];

/** In the worker: the variants timed round-robin, `reps` rounds of a few runs each. */
export async function runKernelProbe(job: KernelProbeJob, progress: Progress): Promise<KernelProbeResult> {
  const K = job.K ?? 2048;
  const N = job.N ?? 2048;
  const reps = job.reps ?? 30;
  const w = randomWeight(K * N);
  const x = new ort.Tensor('float32', randomWeight(K), [1, K]);
  const sessions: ort.InferenceSession[] = [];
  try {
    for (const v of VARIANTS) {
      sessions.push(
        await ort.InferenceSession.create(probeModel(K, N, w, v.q), {
          intraOpNumThreads: job.threads,
          logSeverityLevel: 3,
        }),
      );
    }
    for (const s of sessions) for (let i = 0; i < 3; i++) await s.run({ x });
    const times: number[][] = VARIANTS.map(() => []);
    for (let r = 0; r < reps; r++) {
      progress('latency', `kernel probe round ${r + 1}/${reps}`, (r + 1) / reps);
      for (const [i, s] of sessions.entries()) {
        const t0 = process.hrtime.bigint();
        for (let k = 0; k < 4; k++) await s.run({ x });
        times[i].push(Number(process.hrtime.bigint() - t0) / 4e3);
      }
    }
    // Ratios per round (the rounds saw the same load), then their median.
    const figures = VARIANTS.map((v, i) => ({
      kernel: v.kernel,
      bits: v.q?.bits ?? 32,
      accuracy_level: v.q?.level,
      median_us: summarize(times[i]).median,
      vs_fp32: summarize(times[0].map((t, r) => t / times[i][r])).median,
    }));
    return { K, N, threads: job.threads, reps, figures, measured_at: new Date().toISOString() };
  } finally {
    for (const s of sessions) await s.release();
  }
}

export function kernelCachePath(store: RunStore, hw: HardwareFingerprint): string {
  const key = sha256(JSON.stringify([hw.cpu, hw.arch, hw.isa, hw.cores, hw.onnxruntime])).slice(0, 16);
  return store.inside(path.join(store.root, 'kernels', `${key}.json`));
}

export function readKernelProbe(store: RunStore, hw: HardwareFingerprint): KernelProbeResult | undefined {
  try {
    const file = kernelCachePath(store, hw);
    if (!fs.existsSync(file)) return undefined;
    return JSON.parse(store.readText(file, 'kernel probe')) as KernelProbeResult;
  } catch {
    return undefined;
  }
}

export async function writeKernelProbe(store: RunStore, hw: HardwareFingerprint, r: KernelProbeResult): Promise<void> {
  const file = kernelCachePath(store, hw);
  await store.ensureRoot();
  await fs.promises.mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomic(file, JSON.stringify({ ...r, hardware: hw }));
}

/** The facts as sentences for users and the advisor: measured figures only. */
export function kernelFacts(r: KernelProbeResult): string[] {
  const at =
    `measured on this machine ${r.measured_at.slice(0, 16)}Z, [1, ${r.K}] × ` +
    `[${r.K}, ${r.N}], ${r.threads} thread(s), median of ${r.reps} interleaved rounds`;
  return r.figures
    .filter((f) => f.bits !== 32)
    .map(
      (f) =>
        `${f.kernel} ${f.bits}-bit accuracy_level ${f.accuracy_level ?? 0}: ` +
        `${f.vs_fp32.toFixed(2)}× the speed of fp32 MatMul (${f.median_us.toFixed(0)} µs vs ` +
        `${r.figures[0].median_us.toFixed(0)} µs; ${at})`,
    );
}
