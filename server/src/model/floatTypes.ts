// The float types a weight may be stored in, as one table: FLOAT, FLOAT16 and BFLOAT16 (what
// exporters write: fp32, `--dtype fp16`, and bf16 checkpoints). Everything that reads weights to
// float32, writes them back in the source's type, or needs the type's lowest finite value (the mask
// of a decoder graph) looks the type up here, so a new storage type is one entry, not a branch in
// every reader.
//
// Conversions work on slices (`decode` into a caller's buffer), so a streamed reader converts one
// block of rows at a time and never holds a float32 copy of a whole fp16 tensor.
import { onnx } from 'onnx-proto';

const DT = onnx.TensorProto.DataType;

export interface FloatType {
  dataType: number;
  name: 'float32' | 'float16' | 'bfloat16';
  bytes: number;
  /** Decode `n` little-endian elements from `src` (any alignment) into `out[0..n)`. */
  decode(src: Uint8Array, n: number, out: Float32Array): void;
  /** Encode float values in this type (rounded to nearest even), as the raw bytes' typed view. */
  encode(values: ArrayLike<number>): Float32Array | Uint16Array;
  /** The lowest finite value (a mask's "minus infinity" that stays finite in this type). */
  lowest: number;
}

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** IEEE float32 → float16 bits, round to nearest even (for fp16 models' scales and weights). */
export function floatToHalf(v: number): number {
  f32buf[0] = v;
  const x = u32buf[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  e = h; // carries into the exponent are correct by construction
  return sign | e;
}

export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** IEEE float32 → bfloat16 bits, round to nearest even (NaN stays a quiet NaN). */
export function floatToBfloat16(v: number): number {
  f32buf[0] = v;
  const x = u32buf[0];
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Half-float decode table: 64k entries, built on first use (256 KB), 10× faster than halfToFloat per element. */
let halfTable: Float32Array | undefined;
function halfLut(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) halfTable[i] = halfToFloat(i);
  }
  return halfTable;
}

function u16View(src: Uint8Array, n: number): Uint16Array {
  // A Uint16Array over an odd offset is not allowed; copy such a slice (rare: external data is aligned).
  const aligned = src.byteOffset % 2 === 0 ? src : new Uint8Array(src.subarray(0, n * 2));
  return new Uint16Array(aligned.buffer, aligned.byteOffset, n);
}

const FLOAT_TYPES: FloatType[] = [
  {
    dataType: DT.FLOAT,
    name: 'float32',
    bytes: 4,
    lowest: -3.4028234663852886e38,
    decode(src, n, out) {
      const aligned = src.byteOffset % 4 === 0 ? src : new Uint8Array(src.subarray(0, n * 4));
      out.set(new Float32Array(aligned.buffer, aligned.byteOffset, n));
    },
    encode: (values) => Float32Array.from(values),
  },
  {
    dataType: DT.FLOAT16,
    name: 'float16',
    bytes: 2,
    lowest: -65504,
    decode(src, n, out) {
      const h = u16View(src, n);
      const lut = halfLut();
      for (let i = 0; i < n; i++) out[i] = lut[h[i]];
    },
    encode(values) {
      const out = new Uint16Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = floatToHalf(values[i]);
      return out;
    },
  },
  {
    dataType: DT.BFLOAT16,
    name: 'bfloat16',
    bytes: 2,
    lowest: -3.3895313892515355e38,
    decode(src, n, out) {
      const h = u16View(src, n);
      const u = new Uint32Array(out.buffer, out.byteOffset, n);
      for (let i = 0; i < n; i++) u[i] = h[i] << 16;
    },
    encode(values) {
      const out = new Uint16Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = floatToBfloat16(values[i]);
      return out;
    },
  },
];

/** The float type of an ONNX data type, or undefined where it is not a float weight type. */
export function floatType(dataType: number): FloatType | undefined {
  return FLOAT_TYPES.find((t) => t.dataType === dataType);
}

/** `fp32|fp16|bf16` (CLI spelling) → the type. */
export const FLOAT_TYPE_FLAGS: Record<string, number> = { fp32: DT.FLOAT, fp16: DT.FLOAT16, bf16: DT.BFLOAT16 };
