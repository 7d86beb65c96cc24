// Small dense float64 linear algebra for the transforms: Cholesky (GPTQ), a symmetric eigensolver
// (exact SVD through a Gram matrix), Gram–Schmidt QR (randomized SVD). Matrices are row-major
// Float64Arrays; sizes are the layer's K or N, or a sketch width, so O(n³) is acceptable here.

/** In-place lower Cholesky of an n×n SPD matrix (upper triangle zeroed). Returns false if not SPD. */
export function choleskyLower(a: Float64Array, n: number): boolean {
  for (let j = 0; j < n; j++) {
    const rj = j * n;
    let d = a[rj + j];
    for (let k = 0; k < j; k++) d -= a[rj + k] * a[rj + k];
    if (!(d > 0)) return false;
    d = Math.sqrt(d);
    a[rj + j] = d;
    for (let i = j + 1; i < n; i++) {
      const ri = i * n;
      let s = a[ri + j];
      for (let k = 0; k < j; k++) s -= a[ri + k] * a[rj + k];
      a[ri + j] = s / d;
    }
    for (let k = j + 1; k < n; k++) a[rj + k] = 0;
  }
  return true;
}

/** Inverse of an SPD matrix from its lower Cholesky factor L (A = L Lᵀ): A⁻¹ = L⁻ᵀ L⁻¹. */
export function inverseFromCholesky(l: Float64Array, n: number): Float64Array {
  // T = (L⁻¹)ᵀ, built row by row (row j of T is column j of L⁻¹) so every inner loop is contiguous.
  const t = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const tj = j * n;
    t[tj + j] = 1 / l[j * n + j];
    for (let i = j + 1; i < n; i++) {
      const li = i * n;
      let s = 0;
      for (let k = j; k < i; k++) s -= l[li + k] * t[tj + k];
      t[tj + i] = s / l[li + i];
    }
  }
  // A⁻¹[i][j] = Σ_k L⁻¹[k][i] L⁻¹[k][j] = Σ_k T[i][k] T[j][k], k ≥ max(i, j).
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const ti = i * n;
    for (let j = 0; j <= i; j++) {
      const tj = j * n;
      let s = 0;
      for (let k = i; k < n; k++) s += t[ti + k] * t[tj + k];
      inv[i * n + j] = s;
      inv[j * n + i] = s;
    }
  }
  return inv;
}

/**
 * Symmetric eigen-decomposition by cyclic Jacobi rotations: accurate to machine precision and short.
 * Returns eigenvalues in descending order and the matching unit eigenvectors as columns of `vectors`
 * (n×n row-major). Cost ~ 10 sweeps × 3n³; callers keep n small (a Gram matrix of the narrow side).
 */
export function symmetricEigen(aIn: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(aIn);
  // Vᵀ, row-major: row i is eigenvector i, so a rotation touches two contiguous rows.
  const vt = new Float64Array(n * n);
  for (let i = 0; i < n; i++) vt[i * n + i] = 1;
  let scale = 0;
  for (let i = 0; i < n * n; i++) scale += a[i] * a[i];
  const tol = 1e-30 * Math.max(scale, 1e-300);
  for (let sweep = 0; sweep < 60; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q] * a[p * n + q];
    if (off <= tol) break;
    for (let p = 0; p < n - 1; p++) {
      const rp = p * n;
      for (let q = p + 1; q < n; q++) {
        const rq = q * n;
        const apq = a[rp + q];
        if (Math.abs(apq) < 1e-300) continue;
        const app = a[rp + p];
        const aqq = a[rq + q];
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        // A' = JᵀAJ. Off the 2×2 block, rows p and q of A' are rows p and q of JᵀA (contiguous), and
        // A' is symmetric, so columns p and q are those rows mirrored.
        for (let k = 0; k < n; k++) {
          const x = a[rp + k];
          const y = a[rq + k];
          const nx = c * x - s * y;
          const ny = s * x + c * y;
          a[rp + k] = nx;
          a[rq + k] = ny;
          a[k * n + p] = nx;
          a[k * n + q] = ny;
        }
        a[rp + p] = app - t * apq;
        a[rq + q] = aqq + t * apq;
        a[rp + q] = 0;
        a[rq + p] = 0;
        for (let k = 0; k < n; k++) {
          const x = vt[rp + k];
          const y = vt[rq + k];
          vt[rp + k] = c * x - s * y;
          vt[rq + k] = s * x + c * y;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => a[y * n + y] - a[x * n + x]);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    values[dst] = a[src * n + src];
    for (let k = 0; k < n; k++) vectors[k * n + dst] = vt[src * n + k];
  });
  return { values, vectors };
}

/** Orthonormalize the columns of Y (m×k, row-major) in place by Gram–Schmidt, twice for stability. */
export function orthonormalizeColumns(y: Float64Array, m: number, k: number): void {
  for (let j = 0; j < k; j++) {
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < j; i++) {
        let dot = 0;
        for (let r = 0; r < m; r++) dot += y[r * k + i] * y[r * k + j];
        for (let r = 0; r < m; r++) y[r * k + j] -= dot * y[r * k + i];
      }
    }
    let norm = 0;
    for (let r = 0; r < m; r++) norm += y[r * k + j] * y[r * k + j];
    norm = Math.sqrt(norm);
    if (norm < 1e-300) {
      for (let r = 0; r < m; r++) y[r * k + j] = 0; // rank-deficient: a zero column contributes nothing
    } else {
      for (let r = 0; r < m; r++) y[r * k + j] /= norm;
    }
  }
}

/** C (m×n) = A (m×k) · B (k×n), row-major, any mix of Float32Array/Float64Array inputs. */
export function matmul(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const ci = i * n;
    for (let p = 0; p < k; p++) {
      const aip = a[i * k + p];
      if (aip === 0) continue;
      const bp = p * n;
      for (let j = 0; j < n; j++) c[ci + j] += aip * b[bp + j];
    }
  }
  return c;
}

/** C (k×n) = Aᵀ · B for A (m×k) and B (m×n): transpose A once, then the row-at-a-time product
 * (accumulating over m directly would stream all of C through the cache once per row of A). */
export function matmulTN(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number): Float64Array {
  const at = new Float64Array(k * m);
  for (let r = 0; r < m; r++) for (let i = 0; i < k; i++) at[i * m + r] = a[r * k + i];
  return matmul(at, b, k, m, n);
}

/** Seeded standard normal numbers (xorshift32 + Box–Muller): reproducible sketches and inputs. */
export function gaussian(n: number, seed: number): Float64Array {
  let s = seed >>> 0 || 0x9e3779b9;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 0x100000000;
  };
  const out = new Float64Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(next()));
    const t = 2 * Math.PI * next();
    out[i] = r * Math.cos(t);
    if (i + 1 < n) out[i + 1] = r * Math.sin(t);
  }
  return out;
}
