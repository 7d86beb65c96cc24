// Seeded normal random numbers, fast enough to fill a billion weights in seconds per gigabyte:
// xorshift128 for uniforms, Box–Muller for pairs of normals, written into a reused Float32Array.
//
// Every tensor gets its own stream, seeded from (model seed, tensor name), so a tensor's values do not
// depend on the order tensors are generated in, on the chunk size, or on how many layers are asked for.

/** FNV-1a over the seed and the name: a 32-bit stream id per tensor. */
export function streamSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  h = Math.imul(h, 0x01000193) >>> 0;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Marsaglia's xorshift128: period 2^128 − 1, four 32-bit words of state. */
export class Xorshift128 {
  private x: number;
  private y: number;
  private z: number;
  private w: number;

  constructor(seed: number) {
    // Spread the 32-bit seed over the state with splitmix32 so nearby seeds give unrelated streams.
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let t = s;
      t = Math.imul(t ^ (t >>> 16), 0x85ebca6b);
      t = Math.imul(t ^ (t >>> 13), 0xc2b2ae35);
      return (t ^ (t >>> 16)) >>> 0;
    };
    this.x = next();
    this.y = next();
    this.z = next();
    this.w = next() || 1; // the all-zero state is a fixed point
  }

  /**
   * Fill `out` with normal(0, std) values. Box–Muller: u1 in (0, 1] (so log never sees 0), u2 in
   * [0, 1); each pair of uniforms gives two independent normals.
   */
  fillNormal(out: Float32Array, std: number): void {
    let { x, y, z, w } = this;
    const n = out.length;
    const TWO_PI = 2 * Math.PI;
    const INV = 1 / 4294967296;
    for (let i = 0; i < n; i += 2) {
      let t = x ^ (x << 11);
      x = y;
      y = z;
      z = w;
      w = (w ^ (w >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
      const u1 = (w + 1) * INV;
      t = x ^ (x << 11);
      x = y;
      y = z;
      z = w;
      w = (w ^ (w >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
      const a = TWO_PI * w * INV;
      const r = std * Math.sqrt(-2 * Math.log(u1));
      out[i] = r * Math.cos(a);
      if (i + 1 < n) out[i + 1] = r * Math.sin(a);
    }
    this.x = x;
    this.y = y;
    this.z = z;
    this.w = w;
  }
}

/**
 * The values of one tensor as a sequence of chunks of at most `chunk` elements (even, so Box–Muller
 * pairs never straddle chunks and the values do not depend on the chunk size). The same buffer is
 * refilled for every chunk: consume each before asking for the next.
 */
export function* normalChunks(
  seed: number,
  name: string,
  count: number,
  std: number,
  chunk = 1 << 20,
): Generator<Float32Array> {
  const size = Math.max(2, chunk - (chunk % 2));
  const rng = new Xorshift128(streamSeed(seed, name));
  const buf = new Float32Array(Math.min(size, count));
  for (let done = 0; done < count; done += size) {
    const view = count - done >= buf.length ? buf : buf.subarray(0, count - done);
    rng.fillNormal(view, std);
    yield view;
  }
}

export function* constantChunks(value: number, count: number, chunk = 1 << 20): Generator<Float32Array> {
  const buf = new Float32Array(Math.min(chunk, count)).fill(value);
  for (let done = 0; done < count; done += buf.length) {
    yield count - done >= buf.length ? buf : buf.subarray(0, count - done);
  }
}
