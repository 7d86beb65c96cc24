// The accuracy reference of a run: the model the compressed one is compared against (perplexity,
// KL divergence, top-1 agreement). Normally the source model itself; when that would not fit in
// memory (its weights, with onnxruntime's overhead, over the memory this machine has free), a model
// the user states (`haqa bench --reference <model>`, e.g. the fp16 export of the same checkpoint) is
// used instead, or the accuracy half of the run is refused with a message that says both numbers and
// what to do. The choice, and why, goes into the run record (`reference` in bench/record.ts), so a
// report says which model the figures are relative to.
//
// An fp16 or bf16 source is its own reference: it is the model the user has, and the compressed model
// is compared against it (the record says its type).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { dataTypeName, elementSize, readModel, tensorDims } from '../model/onnx';

/** What the reference is, as the run record keeps it. */
export interface ReferenceChoice {
  /** Path of the reference model. */
  model: string;
  /** `source` (the recipe's model) or `stated` (named by the user because the source does not fit). */
  kind: 'source' | 'stated';
  /** Element type of most of its weight bytes: FLOAT, FLOAT16, BFLOAT16, … */
  dtype: string;
  weight_bytes: number;
  /** Memory the estimate compared against (MemAvailable, or os.freemem()). */
  free_bytes: number;
  /** One sentence: why this model. */
  reason: string;
}

export class ReferenceError extends Error {
  constructor(
    message: string,
    readonly file: string,
  ) {
    super(message);
    this.name = 'ReferenceError';
  }
}

/** onnxruntime holds the weights once (plus pre-packing for some kernels) and activations beside them. */
const OVERHEAD_FACTOR = 1.25;
const OVERHEAD_BYTES = 512 * 1024 ** 2;

/** The memory a model needs to be evaluated, from its weight bytes. */
export function neededBytes(weightBytes: number): number {
  return Math.ceil(weightBytes * OVERHEAD_FACTOR + OVERHEAD_BYTES);
}

/**
 * Memory available to a new process now: /proc/meminfo's MemAvailable where there is one (Linux), else os.freemem().
 */
export function availableMemory(): number {
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return os.freemem();
}

/** A model's weight bytes and the element type that holds most of them (the protobuf only: no weight is read). */
export async function weightProfile(file: string): Promise<{ bytes: number; dtype: string }> {
  const m = await readModel(file);
  const byType = new Map<number, number>();
  for (const t of m.proto.graph?.initializer ?? []) {
    let size = 0;
    try {
      size = tensorDims(t).reduce((a, b) => a * b, 1) * elementSize(t.dataType ?? 0);
    } catch {
      continue;
    }
    byType.set(t.dataType ?? 0, (byType.get(t.dataType ?? 0) ?? 0) + size);
  }
  let top = 0;
  let topBytes = -1;
  for (const [dt, b] of byType) if (b > topBytes) [top, topBytes] = [dt, b];
  return { bytes: [...byType.values()].reduce((a, b) => a + b, 0), dtype: byType.size ? dataTypeName(top) : 'none' };
}

const GiB = (b: number) => `${(b / 1024 ** 3).toFixed(1)} GiB`;

/**
 * The reference for a run on `source`: the source when it fits in `freeBytes`, else `stated` when
 * given and it fits; otherwise a ReferenceError naming both sizes.
 */
export async function chooseReference(
  source: string,
  opts: { stated?: string; freeBytes?: number } = {},
): Promise<ReferenceChoice> {
  const free = opts.freeBytes ?? availableMemory();
  const src = await weightProfile(source);
  const srcNeed = neededBytes(src.bytes);
  if (srcNeed <= free) {
    const reason = `the source model (${src.dtype}, ${GiB(src.bytes)} of weights) fits in ${GiB(free)} of free memory`;
    return {
      model: path.resolve(source),
      kind: 'source',
      dtype: src.dtype,
      weight_bytes: src.bytes,
      free_bytes: free,
      reason,
    };
  }
  const tooBig =
    `the source model ${source} (${src.dtype}, ${GiB(src.bytes)} of weights, about ${GiB(srcNeed)} to evaluate)` +
    ` does not fit in ${GiB(free)} of free memory`;
  if (!opts.stated) {
    throw new ReferenceError(
      `${tooBig}; name a reference that does (haqa bench --reference <fp16 model>), or measure speed only`,
      source,
    );
  }
  const st = await weightProfile(opts.stated);
  const stNeed = neededBytes(st.bytes);
  if (stNeed > free) {
    const stated = `${opts.stated} (${st.dtype}, ${GiB(st.bytes)} of weights, about ${GiB(stNeed)})`;
    throw new ReferenceError(`${tooBig}, nor does the stated reference ${stated}`, opts.stated);
  }
  const reason = `${tooBig}; the stated reference (${st.dtype}, ${GiB(st.bytes)} of weights) does`;
  return {
    model: path.resolve(opts.stated),
    kind: 'stated',
    dtype: st.dtype,
    weight_bytes: st.bytes,
    free_bytes: free,
    reason,
  };
}
