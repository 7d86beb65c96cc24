// GPTQ (Frantar et al., 2022): quantize a weight one input feature at a time and push each step's
// rounding error onto the input features not yet quantized, weighted by the inverse Hessian of the
// layer's squared output error, H = XᵀX over calibration activations. Minimizes ‖X(W − Ŵ)‖² far
// better than round-to-nearest when the inputs are correlated. Float64 throughout.
//
// Scales are chosen per group of `groupSize` consecutive input features from the *updated* weights at
// the moment the group starts (GPTQ's non-static groups), with the same formula as RTN, so the groups
// are exactly MatMulNBits' blocks and the codes pack without change.
import { choleskyLower, inverseFromCholesky } from './linalg';
import { blockParams } from './quant';

const f32 = Math.fround;

/** A quantization grid: codes in [qmin, qmax], a scale and zero point per group of input features. */
export interface Grid {
  groupSize: number;
  qmin: number;
  qmax: number;
  params(min: number, max: number): { scale: number; zp: number };
}

/** MatMulNBits' grid (onnxruntime's scale/zero-point rules). */
export function nbitsGrid(bits: number, blockSize: number, symmetric: boolean): Grid {
  return {
    groupSize: blockSize,
    qmin: 0,
    qmax: (1 << bits) - 1,
    params: (mn, mx) => blockParams(mn, mx, bits, symmetric),
  };
}

/** Per-output-channel symmetric int8 in [−127, 127] (MatMulInteger and QDQ weights). */
export function int8ChannelGrid(K: number): Grid {
  return {
    groupSize: K,
    qmin: -127,
    qmax: 127,
    params: (mn, mx) => ({ scale: f32(Math.max(Math.abs(mn), Math.abs(mx)) / 127), zp: 0 }),
  };
}

export interface GridResult {
  /** [N, K]: one output column per row. */
  codes: Int16Array;
  /** [N, nGroups]. */
  scales: Float32Array;
  zeros: Int16Array;
  nGroups: number;
}

function quantize(v: number, scale: number, zp: number, g: Grid): number {
  const rcp = scale !== 0 ? f32(1 / scale) : 0;
  const q = Math.round(f32(f32(v * rcp) + zp));
  return q < g.qmin ? g.qmin : q > g.qmax ? g.qmax : q;
}

/** Plain round-to-nearest on a grid (the baseline GPTQ improves on; also the int8 weight path). */
export function rtnOnGrid(w: ArrayLike<number>, K: number, N: number, g: Grid): GridResult {
  const nGroups = Math.ceil(K / g.groupSize);
  const codes = new Int16Array(N * K);
  const scales = new Float32Array(N * nGroups);
  const zeros = new Int16Array(N * nGroups);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < nGroups; b++) {
      const k0 = b * g.groupSize;
      const k1 = Math.min(k0 + g.groupSize, K);
      let mn = Infinity;
      let mx = -Infinity;
      for (let k = k0; k < k1; k++) {
        const v = f32(w[k * N + n]);
        if (v < mn) mn = v;
        if (v > mx) mx = v;
      }
      const { scale, zp } = g.params(mn, mx);
      scales[n * nGroups + b] = scale;
      zeros[n * nGroups + b] = zp;
      for (let k = k0; k < k1; k++) codes[n * K + k] = quantize(f32(w[k * N + n]), scale, zp, g);
    }
  }
  return { codes, scales, zeros, nGroups };
}

export interface GptqOptions {
  /** Damping as a fraction of the mean Hessian diagonal (GPTQ's percdamp). */
  damp?: number;
}

/**
 * GPTQ on W [K, N] with H = XᵀX [K, K]. Returns codes on grid `g`.
 * Cost O(K²·N) time, O(K² + K·N) memory: meant for layers up to a few thousand features.
 */
export function gptq(
  w: ArrayLike<number>,
  K: number,
  N: number,
  hessian: Float64Array,
  g: Grid,
  opts: GptqOptions = {},
): GridResult {
  const W = new Float64Array(K * N);
  for (let i = 0; i < K * N; i++) W[i] = w[i];
  const H = Float64Array.from(hessian);
  // Inputs that never fire carry no information: fix their diagonal and drop their weights (GPTQ's rule).
  let meanDiag = 0;
  for (let k = 0; k < K; k++) {
    if (H[k * K + k] === 0) {
      H[k * K + k] = 1;
      W.fill(0, k * N, (k + 1) * N);
    }
    meanDiag += H[k * K + k];
  }
  meanDiag /= K;
  let damp = (opts.damp ?? 0.01) * meanDiag;
  // Cholesky of H⁻¹, upper: H⁻¹ = UᵀU. Retry with more damping if H is numerically singular.
  let U: Float64Array | undefined;
  for (let attempt = 0; attempt < 8 && !U; attempt++, damp *= 10) {
    const Hd = Float64Array.from(H);
    for (let k = 0; k < K; k++) Hd[k * K + k] += damp;
    if (!choleskyLower(Hd, K)) continue;
    const inv = inverseFromCholesky(Hd, K);
    if (!choleskyLower(inv, K)) continue;
    U = inv; // lower L with H⁻¹ = L Lᵀ; U = Lᵀ, so U[k][j] = L[j][k]
  }
  if (!U) throw new Error('GPTQ: the calibration Hessian is not positive definite even with damping');

  const nGroups = Math.ceil(K / g.groupSize);
  const codes = new Int16Array(N * K);
  const scales = new Float32Array(N * nGroups);
  const zeros = new Int16Array(N * nGroups);
  const err = new Float64Array(N);
  const sc = new Float64Array(N);
  const zp = new Float64Array(N);
  for (let k = 0; k < K; k++) {
    if (k % g.groupSize === 0) {
      const b = k / g.groupSize;
      const k1 = Math.min(k + g.groupSize, K);
      for (let n = 0; n < N; n++) {
        let mn = Infinity;
        let mx = -Infinity;
        for (let j = k; j < k1; j++) {
          const v = f32(W[j * N + n]);
          if (v < mn) mn = v;
          if (v > mx) mx = v;
        }
        const p = g.params(mn, mx);
        sc[n] = p.scale;
        zp[n] = p.zp;
        scales[n * nGroups + b] = p.scale;
        zeros[n * nGroups + b] = p.zp;
      }
    }
    const d = U[k * K + k];
    const row = k * N;
    for (let n = 0; n < N; n++) {
      const v = W[row + n];
      const q = quantize(f32(v), sc[n], zp[n], g);
      codes[n * K + k] = q;
      err[n] = (v - (q - zp[n]) * sc[n]) / d;
    }
    for (let j = k + 1; j < K; j++) {
      const c = U[j * K + k]; // = Uᵀ… i.e. U[k][j]
      if (c === 0) continue;
      const rj = j * N;
      for (let n = 0; n < N; n++) W[rj + n] -= c * err[n];
    }
  }
  return { codes, scales, zeros, nGroups };
}

/** Dequantized [K, N] float64 weight of a grid result. */
export function dequantizeGrid(r: GridResult, K: number, N: number, groupSize: number): Float64Array {
  const out = new Float64Array(K * N);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const b = Math.floor(k / groupSize);
      out[k * N + n] = (r.codes[n * K + k] - r.zeros[n * r.nGroups + b]) * r.scales[n * r.nGroups + b];
    }
  }
  return out;
}
