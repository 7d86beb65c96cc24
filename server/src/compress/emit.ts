// The ONNX a compressed layer becomes. Each function returns the nodes for one layer and hands its
// tensors to a sink (inline, or appended to the external data file as they are made).
//
//   weight-only      MatMulNBits(x, B, scales[, zero_points])            com.microsoft, as ORT's quantizer
//   dynamic W8A8     DynamicQuantizeLinear(x) → MatMulInteger(xq, Wq, xzp, wzp) → Cast → Mul(xs·ws)
//                    (onnxruntime.quantization.quantize_dynamic's MatMul pattern, per-channel weights)
//   static W8A8      QuantizeLinear/DequantizeLinear(x) → MatMul ← DequantizeLinear(Wq, ws, axis=1)
//                    (QDQ, which onnxruntime fuses into integer kernels)
// W8A8 weights are symmetric int8 codes, stored as int8 (zero point 0) or as uint8 (zero point 128):
// the same values, but onnxruntime then runs u8×u8 kernels, which do not saturate on x86 without VNNI.
// Gemm biases become an Add after the product; alpha is folded into the weight, beta into the bias.
import { DataType, onnx } from '../model/onnx';
import { node } from '../model/build';
import type { PackedWeight } from './quant';
import type { FloatType } from '../model/floatTypes';
import type { W8WeightType } from '../config/recipe';

export interface TensorSink {
  add(name: string, dataType: DataType, dims: number[], data: ArrayBufferView): Promise<void>;
}

export interface Emitted {
  nodes: onnx.NodeProto[];
}

/** Unique names within one graph: weights and nodes keep their original stem. */
export class Names {
  private readonly used: Set<string>;
  constructor(existing: Iterable<string>) {
    this.used = new Set(existing);
  }
  /** Whether `name` is unused (the layer cache replays names only where a fresh run would get them). */
  isFree(name: string): boolean {
    return !this.used.has(name);
  }
  take(want: string): string {
    let name = want;
    for (let i = 1; this.used.has(name); i++) name = `${want}_${i}`;
    this.used.add(name);
    return name;
  }
}

export async function emitMatMulNBits(
  sink: TensorSink,
  names: Names,
  opts: {
    input: string;
    output: string;
    nodeName: string;
    weightStem: string;
    pw: PackedWeight;
    accuracyLevel: number;
    /** The scales' type: the source weight's float type (MatMulNBits' T1 is the activations' type). */
    scaleType: FloatType;
  },
): Promise<onnx.NodeProto> {
  const { pw } = opts;
  const b = names.take(`${opts.weightStem}_Q${pw.bits}`);
  const s = names.take(`${opts.weightStem}_scales`);
  await sink.add(b, DataType.UINT8, [pw.N, pw.nBlocks, pw.blobSize], pw.packed);
  const st = opts.scaleType;
  await sink.add(s, st.dataType, [pw.N, pw.nBlocks], st.dataType === DataType.FLOAT ? pw.scales : st.encode(pw.scales));
  const inputs = [opts.input, b, s];
  if (pw.zeroPoints) {
    const z = names.take(`${opts.weightStem}_zero_points`);
    await sink.add(z, DataType.UINT8, [pw.zeroPoints.length], pw.zeroPoints);
    inputs.push(z);
  }
  const attrs: Record<string, number> = { K: pw.K, N: pw.N, bits: pw.bits, block_size: pw.blockSize };
  // Like ORT's quantizer: accuracy_level 0 is the default and is left out (not every EP knows it).
  if (opts.accuracyLevel) attrs.accuracy_level = opts.accuracyLevel;
  return node('MatMulNBits', inputs, [opts.output], {
    name: names.take(opts.nodeName),
    domain: 'com.microsoft',
    attrs,
  });
}

/** Per-channel int8 weight [K, N] (codes from a grid result, [N, K]) and its scales [N]. */
export function int8Weight(codes: Int16Array, K: number, N: number): Int8Array {
  const out = new Int8Array(K * N);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) out[k * N + n] = codes[n * K + k];
  return out;
}

/**
 * Adds a W8A8 weight [K, N] and its per-channel zero point in the given
 * type: int8 codes as they are, or shifted by 128 into uint8.
 */
async function addW8Weight(
  sink: TensorSink,
  w: string,
  zp: string,
  wq: Int8Array,
  K: number,
  N: number,
  type: W8WeightType,
): Promise<void> {
  if (type === 'uint8') {
    await sink.add(
      w,
      DataType.UINT8,
      [K, N],
      Uint8Array.from(wq, (v) => v + 128),
    );
    await sink.add(zp, DataType.UINT8, [N], new Uint8Array(N).fill(128));
  } else {
    await sink.add(w, DataType.INT8, [K, N], wq);
    await sink.add(zp, DataType.INT8, [N], new Int8Array(N));
  }
}

/** Activation quantizers shared by every layer reading the same tensor (q/k/v, gate/up). */
export class ActivationCache {
  readonly dynamic = new Map<string, { q: string; scale: string; zp: string }>();
  readonly static = new Map<string, string>();
}

export async function emitDynamicW8A8(
  sink: TensorSink,
  names: Names,
  cache: ActivationCache,
  opts: {
    input: string;
    output: string;
    nodeName: string;
    weightStem: string;
    K: number;
    N: number;
    wq: Int8Array;
    wScales: Float32Array;
    weightType: W8WeightType;
  },
): Promise<onnx.NodeProto[]> {
  const nodes: onnx.NodeProto[] = [];
  let xq = cache.dynamic.get(opts.input);
  if (!xq) {
    const stem = opts.input.replace(/[^\w./]/g, '_');
    xq = {
      q: names.take(`${stem}_quantized`),
      scale: names.take(`${stem}_scale`),
      zp: names.take(`${stem}_zero_point`),
    };
    nodes.push(
      node('DynamicQuantizeLinear', [opts.input], [xq.q, xq.scale, xq.zp], {
        name: names.take(`${stem}_QuantizeLinear`),
      }),
    );
    cache.dynamic.set(opts.input, xq);
  }
  const w = names.take(`${opts.weightStem}_quantized`);
  const wzp = names.take(`${opts.weightStem}_zero_point`);
  const ws = names.take(`${opts.weightStem}_scale`);
  await addW8Weight(sink, w, wzp, opts.wq, opts.K, opts.N, opts.weightType);
  await sink.add(ws, DataType.FLOAT, [opts.N], opts.wScales);
  const base = opts.nodeName;
  const i32 = names.take(`${base}_output_quantized`);
  const f = names.take(`${base}_output_quantized_cast`);
  const sc = names.take(`${base}_scales_mul`);
  nodes.push(node('MatMulInteger', [xq.q, w, xq.zp, wzp], [i32], { name: names.take(`${base}_quant`) }));
  nodes.push(
    node('Cast', [i32], [f], { name: names.take(`${base}_output_quantized_cast`), attrs: { to: DataType.FLOAT } }),
  );
  nodes.push(node('Mul', [xq.scale, ws], [sc], { name: names.take(`${base}_scales_mul`) }));
  nodes.push(node('Mul', [f, sc], [opts.output], { name: names.take(`${base}_output_scale_mul`) }));
  return nodes;
}

export async function emitStaticW8A8(
  sink: TensorSink,
  names: Names,
  cache: ActivationCache,
  opts: {
    input: string;
    output: string;
    nodeName: string;
    weightStem: string;
    K: number;
    N: number;
    wq: Int8Array;
    wScales: Float32Array;
    weightType: W8WeightType;
    range: { min: number; max: number };
  },
): Promise<onnx.NodeProto[]> {
  const nodes: onnx.NodeProto[] = [];
  let xdq = cache.static.get(opts.input);
  if (!xdq) {
    const stem = opts.input.replace(/[^\w./]/g, '_');
    // Asymmetric uint8 over the calibrated range, widened to include 0 so that 0 is exact.
    const lo = Math.min(opts.range.min, 0);
    const hi = Math.max(opts.range.max, 0);
    const scale = hi > lo ? (hi - lo) / 255 : 1;
    const zp = Math.max(0, Math.min(255, Math.round(-lo / scale)));
    const s = names.take(`${stem}_scale`);
    const z = names.take(`${stem}_zero_point`);
    await sink.add(s, DataType.FLOAT, [], Float32Array.of(scale));
    await sink.add(z, DataType.UINT8, [], Uint8Array.of(zp));
    const q = names.take(`${stem}_QuantizeLinear_Output`);
    xdq = names.take(`${stem}_DequantizeLinear_Output`);
    nodes.push(node('QuantizeLinear', [opts.input, s, z], [q], { name: names.take(`${stem}_QuantizeLinear`) }));
    nodes.push(node('DequantizeLinear', [q, s, z], [xdq], { name: names.take(`${stem}_DequantizeLinear`) }));
    cache.static.set(opts.input, xdq);
  }
  const w = names.take(`${opts.weightStem}_quantized`);
  const ws = names.take(`${opts.weightStem}_scale`);
  const wz = names.take(`${opts.weightStem}_zero_point`);
  await addW8Weight(sink, w, wz, opts.wq, opts.K, opts.N, opts.weightType);
  await sink.add(ws, DataType.FLOAT, [opts.N], opts.wScales);
  const wdq = names.take(`${opts.weightStem}_DequantizeLinear_Output`);
  nodes.push(
    node('DequantizeLinear', [w, ws, wz], [wdq], {
      name: names.take(`${opts.weightStem}_DequantizeLinear`),
      attrs: { axis: 1 },
    }),
  );
  nodes.push(node('MatMul', [xdq, wdq], [opts.output], { name: names.take(opts.nodeName) }));
  return nodes;
}
