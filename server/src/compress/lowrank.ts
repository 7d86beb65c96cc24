// Low-rank factorization: W [K, N] ≈ A [K, r] · B [r, N] by truncated SVD, split as A = U√Σ and
// B = √Σ Vᵀ so both factors have the same scale (kinder to quantizing them afterwards).
// By Eckart–Young the error is the SVD tail: ‖W − AB‖²_F = Σ_{i>r} σᵢ².
//   exact       eigen-decomposition of the Gram matrix of the narrow side (min(K,N)², Jacobi);
//   randomized  Halko, Martinsson & Tropp (2011): Gaussian sketch of width r + oversampling,
//               power iterations with re-orthonormalization, then an exact SVD of the small
//               projected matrix. O(K·N·r) instead of O(min(K,N)³).
import { gaussian, matmul, matmulTN, orthonormalizeColumns, symmetricEigen } from './linalg';

export interface LowRankResult {
  rank: number;
  /** [K, r] and [r, N], float32 as they will be stored. */
  a: Float32Array;
  b: Float32Array;
  /** Leading singular values found (length ≥ rank for the exact method). */
  sigma: Float64Array;
  /** ‖W − AB‖_F² (float64, from the factors as stored). */
  sqErr: number;
  sqNorm: number;
  method: 'svd' | 'randomized_svd';
}

/** Above this narrow-side size the exact method would take too long and the randomized one is used. */
export const EXACT_SVD_MAX = 768;

export function lowRank(
  wIn: ArrayLike<number>,
  K: number,
  N: number,
  rank: number,
  opts: { method?: 'svd' | 'randomized_svd'; oversample?: number; powerIters?: number; seed?: number } = {},
): LowRankResult {
  // Everything below sees Float64Array only: mixing element kinds in the shared kernels makes their
  // element access polymorphic and about 3x slower.
  const w = wIn instanceof Float64Array ? wIn : Float64Array.from(wIn);
  const r = Math.max(1, Math.min(rank, K, N));
  const small = Math.min(K, N);
  const method =
    opts.method === 'svd' && small <= EXACT_SVD_MAX
      ? 'svd'
      : opts.method === 'svd' && small > EXACT_SVD_MAX
        ? 'randomized_svd'
        : (opts.method ?? 'randomized_svd');
  let u: Float64Array; // [K, r] left singular vectors
  let sigma: Float64Array;
  let vt: Float64Array; // [r, N]
  if (method === 'svd') ({ u, sigma, vt } = exactSvd(w, K, N, r));
  else ({ u, sigma, vt } = randomizedSvd(w, K, N, r, opts.oversample ?? 8, opts.powerIters ?? 2, opts.seed ?? 1));
  const a = new Float32Array(K * r);
  const b = new Float32Array(r * N);
  for (let i = 0; i < r; i++) {
    const s = Math.sqrt(Math.max(sigma[i], 0));
    for (let k = 0; k < K; k++) a[k * r + i] = u[k * r + i] * s;
    for (let n = 0; n < N; n++) b[i * N + n] = vt[i * N + n] * s;
  }
  const ab = matmul(Float64Array.from(a), Float64Array.from(b), K, r, N);
  let sqErr = 0;
  let sqNorm = 0;
  for (let i = 0; i < K * N; i++) {
    const d = w[i] - ab[i];
    sqErr += d * d;
    sqNorm += w[i] * w[i];
  }
  return { rank: r, a, b, sigma, sqErr, sqNorm, method };
}

/** All singular values of W (descending) from the Gram matrix of its narrow side. */
export function singularValues(w: ArrayLike<number>, K: number, N: number): Float64Array {
  const { values } = gramEigen(w instanceof Float64Array ? w : Float64Array.from(w), K, N);
  return values.map((v) => Math.sqrt(Math.max(v, 0)));
}

function gramEigen(w: ArrayLike<number>, K: number, N: number) {
  // N ≤ K: G = WᵀW (N×N); otherwise G = WWᵀ (K×K).
  if (N <= K) return symmetricEigen(matmulTN(w, w, K, N, N), N);
  const wt = transpose(w, K, N);
  return symmetricEigen(matmulTN(wt, wt, N, K, K), K);
}

function exactSvd(w: ArrayLike<number>, K: number, N: number, r: number) {
  const { values, vectors } = gramEigen(w, K, N);
  const sigma = values.map((v) => Math.sqrt(Math.max(v, 0)));
  const u = new Float64Array(K * r);
  const vt = new Float64Array(r * N);
  if (N <= K) {
    // V from the eigenvectors; U = W V / σ.
    for (let i = 0; i < r; i++) for (let n = 0; n < N; n++) vt[i * N + n] = vectors[n * N + i];
    const wv = matmul(w, transpose(vt, r, N), K, N, r);
    for (let k = 0; k < K; k++) for (let i = 0; i < r; i++) u[k * r + i] = sigma[i] > 0 ? wv[k * r + i] / sigma[i] : 0;
  } else {
    for (let k = 0; k < K; k++) for (let i = 0; i < r; i++) u[k * r + i] = vectors[k * K + i];
    const utw = matmulTN(u, w, K, r, N);
    for (let i = 0; i < r; i++)
      for (let n = 0; n < N; n++) vt[i * N + n] = sigma[i] > 0 ? utw[i * N + n] / sigma[i] : 0;
  }
  return { u, sigma, vt };
}

function randomizedSvd(
  w: ArrayLike<number>,
  K: number,
  N: number,
  r: number,
  oversample: number,
  powerIters: number,
  seed: number,
) {
  const l = Math.min(r + oversample, K, N);
  const omega = gaussian(N * l, seed);
  let y = matmul(w, omega, K, N, l); // K×l
  orthonormalizeColumns(y, K, l);
  for (let it = 0; it < powerIters; it++) {
    const z = matmulTN(w, y, K, N, l); // N×l = Wᵀ Y
    orthonormalizeColumns(z, N, l);
    y = matmul(w, z, K, N, l);
    orthonormalizeColumns(y, K, l);
  }
  // B = Qᵀ W (l×N); its SVD through the l×l Gram matrix B Bᵀ = Ub Σ² Ubᵀ.
  const bsmall = matmulTN(y, w, K, l, N);
  const bt = transpose(bsmall, l, N);
  const { values, vectors } = symmetricEigen(matmulTN(bt, bt, N, l, l), l);
  const sigma = values.map((v) => Math.sqrt(Math.max(v, 0)));
  const ub = new Float64Array(l * r);
  for (let i = 0; i < l; i++) for (let j = 0; j < r; j++) ub[i * r + j] = vectors[i * l + j];
  const u = matmul(y, ub, K, l, r);
  const ubtB = matmulTN(ub, bsmall, l, r, N);
  const vt = new Float64Array(r * N);
  for (let i = 0; i < r; i++) for (let n = 0; n < N; n++) vt[i * N + n] = sigma[i] > 0 ? ubtB[i * N + n] / sigma[i] : 0;
  return { u, sigma, vt };
}

function transpose(a: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const t = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j];
  return t;
}
