// Block-wise weight quantization into onnxruntime's `com.microsoft::MatMulNBits` layout.
//
// Layout (docs/ContribOperators.md, MatMulNBits; packing as in onnxruntime's MLAS BlockwiseQuantizer):
//   B           uint8 [N, nBlocks, blobSize]   nBlocks = ceil(K / blockSize), blobSize = blockSize·bits/8;
//                                              codes along K, the first code of a byte in its LOW bits.
//   scales      float [N · nBlocks]            one per (output column, block of K).
//   zero_points uint8 [N · ceil(nBlocks·bits/8)] packed like B, each row padded to whole bytes; unused
//                                              slots hold 2^(bits-1). Absent (symmetric): the kernel's
//                                              default zero point 2^(bits-1).
//   w ≈ (code − zero_point) · scale.
// Scales and zero points are computed exactly as onnxruntime's own quantizer (range2scale /
// range2scalezp, float32 arithmetic, roundf), so our RTN output should be byte-identical to
// `MatMulNBitsQuantizer`'s on every real element (checked against those formulas and against what
// onnxruntime computes from our bytes; the Python tool itself is not installed here to diff against).
// When K is not a multiple of blockSize the last block is padded; the padding gets the zero point's code
// (dequantizes to 0); min/max ignore it, as ORT does.
import { floatToHalf } from '../model/floatTypes'; // one float16 rounding, beside the other float types

export type NBits = 2 | 4 | 8;

export interface BlockQuantSpec {
  bits: NBits;
  blockSize: number;
  symmetric: boolean;
}

export interface PackedWeight extends BlockQuantSpec {
  K: number;
  N: number;
  nBlocks: number;
  blobSize: number;
  packed: Uint8Array;
  scales: Float32Array;
  /** Present when asymmetric. */
  zeroPoints?: Uint8Array;
  /** Σ (w − ŵ)² and Σ w² over the real elements, for the relative reconstruction error. */
  sqErr: number;
  sqNorm: number;
}

/** What onnxruntime's `MatMulNBitsQuantizer` does with default arguments (its DefaultWeightOnlyQuantConfig:
 * block_size=128, is_symmetric=False, accuracy_level=None → attribute omitted, bits=4, op types {MatMul}). */
export const ORT_DEFAULT_4BIT = {
  bits: 4,
  block_size: 128,
  symmetric: false,
  accuracy_level: 0,
  method: 'rtn',
} as const;

export function checkSpec(spec: BlockQuantSpec, where: string): void {
  if (spec.bits !== 2 && spec.bits !== 4 && spec.bits !== 8) {
    throw new Error(`${where}: ${spec.bits}-bit weights cannot be packed for MatMulNBits (2, 4 or 8 bits)`);
  }
  const b = spec.blockSize;
  if (!(b >= 16 && b <= 256 && (b & (b - 1)) === 0)) {
    throw new Error(`${where}: block size ${b} is not a power of two in 16..256`);
  }
}

export function layoutOf(K: number, N: number, spec: BlockQuantSpec) {
  const nBlocks = Math.ceil(K / spec.blockSize);
  const blobSize = (spec.blockSize * spec.bits) / 8;
  const zpRowBytes = Math.ceil((nBlocks * spec.bits) / 8);
  return { nBlocks, blobSize, zpRowBytes, qmax: (1 << spec.bits) - 1, mid: 1 << (spec.bits - 1) };
}

export function newPacked(K: number, N: number, spec: BlockQuantSpec): PackedWeight {
  const { nBlocks, blobSize, zpRowBytes, mid } = layoutOf(K, N, spec);
  let zeroPoints: Uint8Array | undefined;
  if (!spec.symmetric) {
    // Every slot starts at the default zero point, so the unused tail slot of a row reads as ORT writes it.
    let fill = 0;
    for (let s = 0; s < 8; s += spec.bits) fill |= mid << s;
    zeroPoints = new Uint8Array(N * zpRowBytes).fill(fill);
  }
  return {
    ...spec,
    K,
    N,
    nBlocks,
    blobSize,
    packed: new Uint8Array(N * nBlocks * blobSize),
    scales: new Float32Array(N * nBlocks),
    zeroPoints,
    sqErr: 0,
    sqNorm: 0,
  };
}

const f32 = Math.fround;

/**
 * Scale and zero point of one block from its min and max, in float32 as onnxruntime computes them.
 * Symmetric: scale = (the extreme with the larger magnitude) / −2^(bits−1), zero point 2^(bits−1).
 * Asymmetric: range widened to include 0, scale = (max − min)/(2^bits − 1), zp = round(−min/scale).
 */
export function blockParams(min: number, max: number, bits: number, symmetric: boolean): { scale: number; zp: number } {
  const qmax = (1 << bits) - 1;
  const mid = 1 << (bits - 1);
  if (symmetric) {
    const m = Math.abs(max) > Math.abs(min) ? max : min;
    return { scale: f32(m / -mid), zp: mid };
  }
  const lo = Math.min(min, 0);
  const hi = Math.max(max, 0);
  const scale = f32(f32(hi - lo) / qmax);
  const zpf = scale !== 0 ? -f32(lo / scale) : lo;
  const zp = zpf < 0 ? 0 : zpf > qmax ? qmax : Math.round(zpf) + 0; // + 0: no −0
  return { scale, zp };
}

/**
 * Round-to-nearest code of v, exactly as MLAS: clamp(roundf(v · (1/scale) + zp), 0, qmax) in float32.
 * `(x + 0.5) | 0` equals roundf(x) for x ≥ −0.5 (halves away from zero) and gives ≤ 0 below, where the
 * clamp makes both 0 — and unlike Math.round it compiles without a data-dependent branch, which on
 * random-looking weights was the quantizer's largest cost (200 → 330 MB/s per core).
 */
export function quantizeValue(v: number, reciprocal: number, zp: number, qmax: number): number {
  const q = (f32(f32(v * reciprocal) + zp) + 0.5) | 0;
  return q < 0 ? 0 : q > qmax ? qmax : q;
}

function setZeroPoint(pw: PackedWeight, n: number, block: number, zp: number, zpRowBytes: number): void {
  const bitPos = block * pw.bits;
  const idx = n * zpRowBytes + (bitPos >> 3);
  const shift = bitPos & 7;
  const mask = ((1 << pw.bits) - 1) << shift;
  pw.zeroPoints![idx] = (pw.zeroPoints![idx] & ~mask) | (zp << shift);
}

/**
 * RTN-quantize rows k0 .. k0+rows−1 of a MatMul weight stored [K, N] (row-major, as MatMul's B is)
 * into `pw`. k0 must be a multiple of the block size; the chunk is any number of whole blocks (the
 * last block of the matrix may be short), so a huge weight can be fed in slices.
 *
 * Loop order matters for speed: per block, column by column. One column's block is `bs` floats at a
 * stride of N, whose cache lines are shared by the next 15 columns, and its packed blob is a short
 * contiguous run written once — no read-modify-write scattered over N output rows.
 */
export function quantizeKNRows(w: Float32Array, k0: number, rows: number, pw: PackedWeight): void {
  const { N, K, bits, blockSize: bs, symmetric } = pw;
  const { nBlocks, blobSize, zpRowBytes, qmax, mid } = layoutOf(K, N, pw);
  const rowStride = nBlocks * blobSize;
  const packed = pw.packed;
  const scales = pw.scales;
  const perByte = 8 / bits;
  let sqErr = 0;
  let sqNorm = 0;
  for (let kb = 0; kb < rows; kb += bs) {
    const block = (k0 + kb) / bs;
    const len = Math.min(bs, rows - kb);
    const blockOut = block * blobSize;
    for (let n = 0; n < N; n++) {
      const first = kb * N + n;
      const last = first + (len - 1) * N;
      let mn = Infinity;
      let mx = -Infinity;
      for (let i = first; i <= last; i += N) {
        const v = w[i];
        if (v < mn) mn = v;
        if (v > mx) mx = v;
      }
      // blockParams, inlined (this runs once per block and column).
      let scale: number;
      let zp: number;
      if (symmetric) {
        scale = f32((Math.abs(mx) > Math.abs(mn) ? mx : mn) / -mid);
        zp = mid;
      } else {
        const lo = mn < 0 ? mn : 0;
        const hi = mx > 0 ? mx : 0;
        scale = f32(f32(hi - lo) / qmax);
        const zpf = scale !== 0 ? -f32(lo / scale) : lo;
        zp = zpf < 0 ? 0 : zpf > qmax ? qmax : Math.round(zpf) + 0;
        setZeroPoint(pw, n, block, zp, zpRowBytes);
      }
      scales[n * nBlocks + block] = scale;
      const rcp = scale !== 0 ? f32(1 / scale) : 0;
      let out = n * rowStride + blockOut;
      let i = first;
      if (bits === 4 && len === bs) {
        // The common case, unrolled: two codes per byte, no padding.
        for (let j = 0; j < bs; j += 2, i += 2 * N) {
          const v0 = w[i];
          const v1 = w[i + N];
          let q0 = (f32(f32(v0 * rcp) + zp) + 0.5) | 0;
          let q1 = (f32(f32(v1 * rcp) + zp) + 0.5) | 0;
          q0 = q0 < 0 ? 0 : q0 > 15 ? 15 : q0;
          q1 = q1 < 0 ? 0 : q1 > 15 ? 15 : q1;
          packed[out++] = q0 | (q1 << 4);
          const d0 = v0 - (q0 - zp) * scale;
          const d1 = v1 - (q1 - zp) * scale;
          sqErr += d0 * d0 + d1 * d1;
          sqNorm += v0 * v0 + v1 * v1;
        }
        continue;
      }
      for (let j = 0; j < bs; j += perByte) {
        let byte = 0;
        for (let p = 0; p < perByte; p++) {
          let q = zp; // padding past K: the zero point's code, which dequantizes to exactly 0
          if (j + p < len) {
            const v = w[i];
            i += N;
            q = (f32(f32(v * rcp) + zp) + 0.5) | 0;
            q = q < 0 ? 0 : q > qmax ? qmax : q;
            const d = v - (q - zp) * scale;
            sqErr += d * d;
            sqNorm += v * v;
          }
          byte |= q << (p * bits);
        }
        packed[out++] = byte;
      }
    }
  }
  pw.sqErr += sqErr;
  pw.sqNorm += sqNorm;
}

/**
 * RTN-quantize rows n0 .. n0+rows−1 of a weight stored [N, K] (Gemm with transB=1): each row is one
 * output column, contiguous along K, so each block is a contiguous run.
 */
export function quantizeNKRows(w: Float32Array, n0: number, rows: number, pw: PackedWeight): void {
  const { N, K, bits, blockSize: bs, symmetric } = pw;
  const { nBlocks, blobSize, zpRowBytes, qmax } = layoutOf(K, N, pw);
  const rowStride = nBlocks * blobSize;
  let sqErr = 0;
  let sqNorm = 0;
  for (let r = 0; r < rows; r++) {
    const n = n0 + r;
    const src = r * K;
    for (let block = 0; block < nBlocks; block++) {
      const k0 = block * bs;
      const k1 = Math.min(k0 + bs, K);
      let mn = Infinity;
      let mx = -Infinity;
      for (let k = k0; k < k1; k++) {
        const v = w[src + k];
        if (v < mn) mn = v;
        if (v > mx) mx = v;
      }
      const { scale, zp } = blockParams(mn, mx, bits, symmetric);
      const rcp = scale !== 0 ? f32(1 / scale) : 0;
      pw.scales[n * nBlocks + block] = scale;
      if (!symmetric) setZeroPoint(pw, n, block, zp, zpRowBytes);
      const out = n * rowStride + block * blobSize;
      for (let k = k0; k < k0 + bs; k++) {
        const pos = (k - k0) * bits;
        let q = zp;
        if (k < k1) {
          const v = w[src + k];
          q = (f32(f32(v * rcp) + zp) + 0.5) | 0;
          q = q < 0 ? 0 : q > qmax ? qmax : q;
          const d = v - (q - zp) * scale;
          sqErr += d * d;
          sqNorm += v * v;
        }
        pw.packed[out + (pos >> 3)] |= q << (pos & 7);
      }
    }
  }
  pw.sqErr += sqErr;
  pw.sqNorm += sqNorm;
}

/** RTN-quantize a whole [K, N] weight. */
export function quantizeRTN(w: Float32Array, K: number, N: number, spec: BlockQuantSpec): PackedWeight {
  const pw = newPacked(K, N, spec);
  quantizeKNRows(w, 0, K, pw);
  return pw;
}

/**
 * Pack codes chosen elsewhere (GPTQ). `codes` is [N, K] (one output column per row), `scales` and
 * `zeros` are [N, nBlocks] unpacked. `w` ([K, N]) is the original weight, for the error figures.
 */
export function packCodes(
  codes: ArrayLike<number>,
  scales: Float32Array,
  zeros: ArrayLike<number>,
  K: number,
  N: number,
  spec: BlockQuantSpec,
  w?: ArrayLike<number>,
): PackedWeight {
  const pw = newPacked(K, N, spec);
  const { nBlocks, blobSize, zpRowBytes } = layoutOf(K, N, spec);
  pw.scales.set(scales);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < nBlocks; b++) {
      const zp = zeros[n * nBlocks + b];
      if (!spec.symmetric) setZeroPoint(pw, n, b, zp, zpRowBytes);
      const out = (n * nBlocks + b) * blobSize;
      for (let j = 0; j < spec.blockSize; j++) {
        const k = b * spec.blockSize + j;
        const q = k < K ? codes[n * K + k] : zp;
        const pos = j * spec.bits;
        pw.packed[out + (pos >> 3)] |= q << (pos & 7);
        if (k < K && w) {
          const v = w[k * N + n];
          const d = v - (q - zp) * scales[n * nBlocks + b];
          pw.sqErr += d * d;
          pw.sqNorm += v * v;
        }
      }
    }
  }
  return pw;
}

/** The weight the kernel will use, as [K, N] float64 (for errors and references). */
export function dequantize(pw: PackedWeight): Float64Array {
  const { K, N, bits, blockSize: bs } = pw;
  const { nBlocks, blobSize, zpRowBytes, mid } = layoutOf(K, N, pw);
  const out = new Float64Array(K * N);
  const mask = (1 << bits) - 1;
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < nBlocks; b++) {
      const scale = pw.scales[n * nBlocks + b];
      let zp = mid;
      if (pw.zeroPoints) {
        const bitPos = b * bits;
        zp = (pw.zeroPoints[n * zpRowBytes + (bitPos >> 3)] >> (bitPos & 7)) & mask;
      }
      for (let j = 0; j < bs && b * bs + j < K; j++) {
        const pos = j * bits;
        const q = (pw.packed[(n * nBlocks + b) * blobSize + (pos >> 3)] >> (pos & 7)) & mask;
        out[(b * bs + j) * N + n] = (q - zp) * scale;
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------- float16

export { floatToHalf };

export function toHalfArray(a: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = floatToHalf(a[i]);
  return out;
}
