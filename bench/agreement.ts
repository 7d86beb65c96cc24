// Agreement of two ground-truth tables (issue 13): the same configurations measured twice, at different
// hours, as paired ratios against one reference. A table that does not reproduce is not ground truth, so
// bench/search.ts reports the Spearman rank correlation of the two tables' ratios and the configuration on
// which they disagree most (the largest |log(ratio a / ratio b)|). Pure; test/unit/bench-search-agreement.

/** Ranks (1-based) with ties given their average rank, as Spearman's coefficient requires. */
export function ranks(values: readonly number[]): number[] {
  const order = values.map((v, i) => [v, i] as const).sort((x, y) => x[0] - y[0]);
  const out = new Array<number>(values.length);
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && order[j + 1][0] === order[i][0]) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) out[order[k][1]] = rank;
    i = j + 1;
  }
  return out;
}

/** Spearman's rank correlation: Pearson's correlation of the ranks (exact with ties). NaN below 2 points
 *  or when either side is constant (no ranking to agree on). */
export function spearman(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length) throw new Error(`spearman: ${a.length} values against ${b.length}`);
  const n = a.length;
  if (n < 2) return NaN;
  const ra = ranks(a);
  const rb = ranks(b);
  const mean = (n + 1) / 2;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (ra[i] - mean) * (rb[i] - mean);
    saa += (ra[i] - mean) ** 2;
    sbb += (rb[i] - mean) ** 2;
  }
  return saa === 0 || sbb === 0 ? NaN : sab / Math.sqrt(saa * sbb);
}

export interface Agreement {
  /** Configurations present in both tables. */
  common: number;
  spearman: number;
  /** The configuration whose ratios differ most between the tables, by |log(a / b)|. */
  largest: { key: string; a: number; b: number; factor: number } | null;
}

/** Agreement of two tables keyed by configuration (plan key → paired ratio, > 0). Keys in only one table
 *  are left out (`common` says how many were compared). */
export function agreement(a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>): Agreement {
  const keys = [...a.keys()].filter((k) => b.has(k)).sort();
  for (const k of keys) {
    const x = a.get(k)!;
    const y = b.get(k)!;
    if (!(x > 0) || !(y > 0)) throw new Error(`agreement: ratio of ${k} is not positive (${x}, ${y})`);
  }
  let largest: Agreement['largest'] = null;
  for (const k of keys) {
    const x = a.get(k)!;
    const y = b.get(k)!;
    const factor = Math.exp(Math.abs(Math.log(x / y)));
    if (!largest || factor > largest.factor) largest = { key: k, a: x, b: y, factor };
  }
  return {
    common: keys.length,
    spearman: spearman(
      keys.map((k) => a.get(k)!),
      keys.map((k) => b.get(k)!),
    ),
    largest,
  };
}
