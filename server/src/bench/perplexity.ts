// Perplexity as HAQA defines it, the same everywhere (fixture script, benchmarks, tuner):
// the tokens are cut into consecutive non-overlapping windows of `window` tokens (a final partial window
// is dropped); each window is evaluated on its own from an empty cache; ppl = exp(mean NLL of predicting
// tokens 1..window-1 of every window from the ones before it). Log-softmax is taken in float64.
import { DecoderSession } from '../model/decoder';

export interface PerplexityResult {
  ppl: number;
  /** Mean negative log-likelihood per scored token (nats). */
  nll: number;
  /** Number of scored tokens: windows × (window − 1). */
  tokens: number;
}

/** Windows run together in one step; the result does not depend on it beyond float32 noise. */
const WINDOWS_PER_BATCH = 8;

export async function perplexity(session: DecoderSession, tokens: number[], window = 128): Promise<PerplexityResult> {
  if (!Number.isInteger(window) || window < 2)
    throw new RangeError(`perplexity: window must be an integer ≥ 2, got ${window}`);
  const n = Math.floor(tokens.length / window);
  if (n === 0) throw new RangeError(`perplexity: ${tokens.length} tokens do not fill one window of ${window}`);
  let sum = 0;
  let count = 0;
  for (let w0 = 0; w0 < n; w0 += WINDOWS_PER_BATCH) {
    const rows: number[][] = [];
    for (let w = w0; w < Math.min(n, w0 + WINDOWS_PER_BATCH); w++)
      rows.push(tokens.slice(w * window, (w + 1) * window));
    const { logits } = await session.step(rows);
    const vocab = logits.dims[2];
    for (let b = 0; b < rows.length; b++) {
      for (let t = 0; t + 1 < window; t++) {
        const off = (b * window + t) * vocab;
        sum -= logSoftmaxAt(logits.data, off, vocab, rows[b][t + 1]);
        count++;
      }
    }
  }
  const nll = sum / count;
  return { ppl: Math.exp(nll), nll, tokens: count };
}

/** log softmax(x[off .. off+n))[target], in float64. */
function logSoftmaxAt(x: Float32Array, off: number, n: number, target: number): number {
  if (target < 0 || target >= n) throw new RangeError(`perplexity: token ${target} is outside the vocabulary of ${n}`);
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (x[off + i] > max) max = x[off + i];
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.exp(x[off + i] - max);
  return x[off + target] - max - Math.log(s);
}
