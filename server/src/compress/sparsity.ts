// Pruning a weight W [K, N] (K inputs, N outputs) in place.
//   N:M      in every run of M consecutive inputs of one output column, keep the N highest scores.
//   ratio    in every output column, zero the `ratio`·K lowest scores (unstructured).
// Scores: magnitude |W[k,n]|, or Wanda (Sun et al., 2023) |W[k,n]|·‖X[:,k]‖₂ with X the calibration
// inputs of the layer — a weight on an input that is usually large matters more than its size says.
// Both methods compare weights within one output column, Wanda's comparison group, so at equal
// sparsity they differ only in the score.

export interface SparsityStats {
  zeroed: number;
  total: number;
}

/** `inputNorms` (length K): ‖X[:,k]‖₂ for Wanda; omit for magnitude pruning. */
export function prune(
  w: Float32Array,
  K: number,
  N: number,
  rule: { n: number; m: number } | { ratio: number },
  inputNorms?: ArrayLike<number>,
): SparsityStats {
  const score = (k: number, n: number) => Math.abs(w[k * N + n]) * (inputNorms ? inputNorms[k] : 1);
  let zeroed = 0;
  if ('m' in rule) {
    const { n: keep, m } = rule;
    const idx = new Int32Array(m);
    const sc = new Float64Array(m);
    for (let col = 0; col < N; col++) {
      for (let k0 = 0; k0 < K; k0 += m) {
        const len = Math.min(m, K - k0);
        // A short tail group keeps at most `keep` too: the pattern holds for every group that exists.
        if (len <= keep) continue;
        for (let j = 0; j < len; j++) {
          idx[j] = j;
          sc[j] = score(k0 + j, col);
        }
        // Partial selection sort: the `len − keep` lowest scores go (ties: the later input goes first).
        for (let r = 0; r < len - keep; r++) {
          let lo = r;
          for (let j = r + 1; j < len; j++) if (sc[j] < sc[lo] || (sc[j] === sc[lo] && idx[j] > idx[lo])) lo = j;
          [sc[r], sc[lo]] = [sc[lo], sc[r]];
          [idx[r], idx[lo]] = [idx[lo], idx[r]];
          const k = k0 + idx[r];
          if (w[k * N + col] !== 0) zeroed++;
          w[k * N + col] = 0;
        }
      }
    }
    return { zeroed, total: K * N };
  }
  const drop = Math.round(rule.ratio * K);
  if (drop <= 0) return { zeroed: 0, total: K * N };
  const order = new Uint32Array(K);
  const sc = new Float64Array(K);
  for (let col = 0; col < N; col++) {
    for (let k = 0; k < K; k++) {
      order[k] = k;
      sc[k] = score(k, col);
    }
    order.sort((a, b) => sc[a] - sc[b] || a - b);
    for (let r = 0; r < drop; r++) {
      const k = order[r];
      if (w[k * N + col] !== 0) zeroed++;
      w[k * N + col] = 0;
    }
  }
  return { zeroed, total: K * N };
}
