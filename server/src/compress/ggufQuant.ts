// Block quantizers for GGUF tensors, bit-exact in layout with ggml's (ggml-quants.c): each takes rows
// of float32 (row length a multiple of the block) and returns the packed blocks, and each has its
// dequantizer, so tests can check the round trip without llama.cpp.
//   F32, F16          plain
//   Q8_0  (32/block)  d:f16, 32 × int8                     x = d·q
//   Q4_0  (32/block)  d:f16, 16 bytes of nibbles           x = d·(q − 8); nibble j low = x[j], high = x[j+16]
//   Q4_K  (256/block) d, dmin:f16, 12 bytes of 6-bit sub-block scales/mins, 128 bytes of nibbles
//                     x = d·sc_j·q − dmin·m_j over 8 sub-blocks of 32
//   Q6_K  (256/block) ql[128], qh[64], 16 int8 scales, d:f16   x = d·sc_j·(q − 32) over 16 sub-blocks of 16
// The K-quant scale search is a simple one (min/max, then one least-squares refit per sub-block), not
// llama.cpp's iterative search: the format is the same, the error is slightly higher.
import { halfToFloat } from '../model/onnx';
import { GGML_TYPES, GgmlTypeName, tensorBytes } from '../model/gguf';
import { floatToHalf } from './quant';

const f16 = (v: number) => floatToHalf(v);
const nearest = (v: number) => Math.round(v);

export function quantizeGguf(type: GgmlTypeName, x: Float32Array, rowLength: number): Uint8Array {
  const out = new Uint8Array(tensorBytes(type, [rowLength, x.length / rowLength]));
  const dv = new DataView(out.buffer);
  const nb = x.length / GGML_TYPES[type].block;
  switch (type) {
    case 'F32':
      out.set(new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
      return out;
    case 'F16':
      for (let i = 0; i < x.length; i++) dv.setUint16(2 * i, f16(x[i]), true);
      return out;
    case 'Q8_0':
      for (let b = 0; b < nb; b++) {
        const o = b * 34;
        let amax = 0;
        for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]));
        const d = amax / 127;
        const id = d ? 1 / d : 0;
        dv.setUint16(o, f16(d), true);
        for (let j = 0; j < 32; j++) dv.setInt8(o + 2 + j, nearest(x[b * 32 + j] * id));
      }
      return out;
    case 'Q4_0':
      for (let b = 0; b < nb; b++) {
        const o = b * 18;
        let amax = 0;
        let max = 0;
        for (let j = 0; j < 32; j++) {
          const v = x[b * 32 + j];
          if (Math.abs(v) > amax) {
            amax = Math.abs(v);
            max = v;
          }
        }
        const d = max / -8;
        const id = d ? 1 / d : 0;
        dv.setUint16(o, f16(d), true);
        for (let j = 0; j < 16; j++) {
          const q0 = Math.min(15, Math.trunc(x[b * 32 + j] * id + 8.5));
          const q1 = Math.min(15, Math.trunc(x[b * 32 + 16 + j] * id + 8.5));
          out[o + 2 + j] = q0 | (q1 << 4);
        }
      }
      return out;
    case 'Q4_K':
      for (let b = 0; b < nb; b++) q4kBlock(x, b * 256, out, b * 144);
      return out;
    case 'Q6_K':
      for (let b = 0; b < nb; b++) q6kBlock(x, b * 256, out, b * 210);
      return out;
  }
}

/** Scale and min (x ≈ scale·q − min, q in 0..15) of one sub-block: min/max, then a least-squares refit. */
function subScaleMin(x: Float32Array, off: number, n: number, qmax: number): { scale: number; min: number } {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < n; i++) {
    lo = Math.min(lo, x[off + i]);
    hi = Math.max(hi, x[off + i]);
  }
  lo = Math.min(lo, 0);
  if (hi === lo) return { scale: 0, min: -lo };
  let scale = (hi - lo) / qmax;
  let m = lo;
  // Refit: with the codes fixed, the best (scale, m) is a 2-variable least-squares problem.
  let sq = 0,
    sqq = 0,
    sx = 0,
    sxq = 0;
  for (let i = 0; i < n; i++) {
    const q = Math.max(0, Math.min(qmax, nearest((x[off + i] - m) / scale)));
    sq += q;
    sqq += q * q;
    sx += x[off + i];
    sxq += x[off + i] * q;
  }
  const det = n * sqq - sq * sq;
  if (det > 0) {
    const s2 = (n * sxq - sq * sx) / det;
    const m2 = (sx - s2 * sq) / n;
    if (s2 > 0 && m2 <= 0) {
      scale = s2;
      m = m2;
    }
  }
  return { scale, min: -m };
}

function q4kBlock(x: Float32Array, xo: number, out: Uint8Array, o: number): void {
  const scales = new Float64Array(8);
  const mins = new Float64Array(8);
  for (let j = 0; j < 8; j++) ({ scale: scales[j], min: mins[j] } = subScaleMin(x, xo + 32 * j, 32, 15));
  const maxScale = Math.max(...scales);
  const maxMin = Math.max(...mins);
  const invS = maxScale > 0 ? 63 / maxScale : 0;
  const invM = maxMin > 0 ? 63 / maxMin : 0;
  const ls = Array.from(scales, (s) => Math.min(63, nearest(invS * s)));
  const lm = Array.from(mins, (m) => Math.min(63, nearest(invM * m)));
  const sc = out.subarray(o + 4, o + 16);
  for (let j = 0; j < 8; j++) {
    if (j < 4) {
      sc[j] = ls[j];
      sc[j + 4] = lm[j];
    } else {
      sc[j + 4] = (ls[j] & 0xf) | ((lm[j] & 0xf) << 4);
      sc[j - 4] |= (ls[j] >> 4) << 6;
      sc[j] |= (lm[j] >> 4) << 6;
    }
  }
  const dv = new DataView(out.buffer, out.byteOffset);
  const dh = f16(maxScale / 63);
  const mh = f16(maxMin / 63);
  dv.setUint16(o, dh, true);
  dv.setUint16(o + 2, mh, true);
  const d = halfToFloat(dh);
  const dmin = halfToFloat(mh);
  const L = new Uint8Array(256);
  for (let j = 0; j < 8; j++) {
    const s = d * ls[j];
    if (!s) continue;
    const m = dmin * lm[j];
    for (let i = 0; i < 32; i++) L[32 * j + i] = Math.max(0, Math.min(15, nearest((x[xo + 32 * j + i] + m) / s)));
  }
  const qs = out.subarray(o + 16, o + 144);
  for (let j = 0, q = 0; j < 256; j += 64, q += 32) {
    for (let l = 0; l < 32; l++) qs[q + l] = L[j + l] | (L[j + l + 32] << 4);
  }
}

function q6kBlock(x: Float32Array, xo: number, out: Uint8Array, o: number): void {
  const scales = new Float64Array(16);
  let maxAbs = 0;
  let maxScale = 0;
  for (let j = 0; j < 16; j++) {
    let amax = 0;
    let max = 0;
    for (let i = 0; i < 16; i++) {
      const v = x[xo + 16 * j + i];
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        max = v;
      }
    }
    scales[j] = max / -32; // signed, as ggml: the largest magnitude lands on −32
    if (Math.abs(scales[j]) > maxAbs) {
      maxAbs = Math.abs(scales[j]);
      maxScale = scales[j];
    }
  }
  const ql = out.subarray(o, o + 128);
  const qh = out.subarray(o + 128, o + 192);
  const sc = new Int8Array(out.buffer, out.byteOffset + o + 192, 16);
  const dv = new DataView(out.buffer, out.byteOffset);
  const L = new Uint8Array(256);
  if (maxAbs === 0) {
    dv.setUint16(o + 208, 0, true);
    L.fill(32);
  } else {
    const iscale = -128 / maxScale;
    const dh = f16(1 / iscale);
    dv.setUint16(o + 208, dh, true);
    const d = halfToFloat(dh);
    for (let j = 0; j < 16; j++) {
      sc[j] = Math.min(127, nearest(iscale * scales[j]));
      const s = d * sc[j];
      for (let i = 0; i < 16; i++)
        L[16 * j + i] = s ? Math.max(-32, Math.min(31, nearest(x[xo + 16 * j + i] / s))) + 32 : 32;
    }
  }
  for (let j = 0, a = 0, h = 0; j < 256; j += 128, a += 64, h += 32) {
    for (let l = 0; l < 32; l++) {
      const q1 = L[j + l],
        q2 = L[j + l + 32],
        q3 = L[j + l + 64],
        q4 = L[j + l + 96];
      ql[a + l] = (q1 & 0xf) | ((q3 & 0xf) << 4);
      ql[a + l + 32] = (q2 & 0xf) | ((q4 & 0xf) << 4);
      qh[h + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
    }
  }
}

/** The inverse of quantizeGguf: the float32 values the packed blocks stand for. */
export function dequantizeGguf(type: GgmlTypeName, b: Uint8Array, elements: number): Float32Array {
  const y = new Float32Array(elements);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const nb = elements / GGML_TYPES[type].block;
  const h = (o: number) => halfToFloat(dv.getUint16(o, true));
  switch (type) {
    case 'F32':
      for (let i = 0; i < elements; i++) y[i] = dv.getFloat32(4 * i, true);
      break;
    case 'F16':
      for (let i = 0; i < elements; i++) y[i] = h(2 * i);
      break;
    case 'Q8_0':
      for (let k = 0; k < nb; k++) for (let j = 0; j < 32; j++) y[32 * k + j] = h(34 * k) * dv.getInt8(34 * k + 2 + j);
      break;
    case 'Q4_0':
      for (let k = 0; k < nb; k++) {
        const d = h(18 * k);
        for (let j = 0; j < 16; j++) {
          const q = b[18 * k + 2 + j];
          y[32 * k + j] = d * ((q & 0xf) - 8);
          y[32 * k + 16 + j] = d * ((q >> 4) - 8);
        }
      }
      break;
    case 'Q4_K':
      for (let k = 0; k < nb; k++) {
        const o = 144 * k;
        const d = h(o),
          dmin = h(o + 2);
        const sc = b.subarray(o + 4, o + 16);
        const get = (j: number) =>
          j < 4
            ? [sc[j] & 63, sc[j + 4] & 63]
            : [(sc[j + 4] & 0xf) | ((sc[j - 4] >> 6) << 4), (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4)];
        for (let j = 0, is = 0, q = o + 16; j < 256; j += 64, is += 2, q += 32) {
          const [s1, m1] = get(is);
          const [s2, m2] = get(is + 1);
          for (let l = 0; l < 32; l++) {
            y[256 * k + j + l] = d * s1 * (b[q + l] & 0xf) - dmin * m1;
            y[256 * k + j + 32 + l] = d * s2 * (b[q + l] >> 4) - dmin * m2;
          }
        }
      }
      break;
    case 'Q6_K':
      for (let k = 0; k < nb; k++) {
        const o = 210 * k;
        const d = h(o + 208);
        for (let n = 0; n < 2; n++) {
          const ql = o + 64 * n,
            qh = o + 128 + 32 * n,
            sc = o + 192 + 8 * n;
          for (let l = 0; l < 32; l++) {
            const is = l >> 4;
            const q1 = ((b[ql + l] & 0xf) | (((b[qh + l] >> 0) & 3) << 4)) - 32;
            const q2 = ((b[ql + l + 32] & 0xf) | (((b[qh + l] >> 2) & 3) << 4)) - 32;
            const q3 = ((b[ql + l] >> 4) | (((b[qh + l] >> 4) & 3) << 4)) - 32;
            const q4 = ((b[ql + l + 32] >> 4) | (((b[qh + l] >> 6) & 3) << 4)) - 32;
            const base = 256 * k + 128 * n;
            y[base + l] = d * dv.getInt8(sc + is) * q1;
            y[base + l + 32] = d * dv.getInt8(sc + is + 2) * q2;
            y[base + l + 64] = d * dv.getInt8(sc + is + 4) * q3;
            y[base + l + 96] = d * dv.getInt8(sc + is + 6) * q4;
          }
        }
      }
      break;
  }
  return y;
}
