// The machine a benchmark's JSON was measured on, in a few words: the report names it beside each part.

/* eslint-disable @typescript-eslint/no-explicit-any */
type Json = any;

/**
 * The machine a part's JSON was measured on, in a few words (its CPU and widest vector ISA), or that it
 * did not record one: sessions run on machines of one class whose ISAs differ (AVX2 only, AVX-512 VNNI),
 * so a part kept from an earlier run may not come from the machine named in the report's header.
 */
export function machineOf(j: Json): string {
  const hw = (j.hardware ?? (j.models ?? j.runs)?.[0]?.hardware) as
    { cpu?: string; isa?: string[]; cores?: number } | undefined;
  if (!hw?.isa) return 'not recorded';
  const isa = hw.isa;
  const widest = isa.includes('avx512_vnni')
    ? 'AVX-512 VNNI'
    : isa.some((x) => x.startsWith('avx512'))
      ? 'AVX-512'
      : isa.includes('avx2')
        ? 'AVX2'
        : (isa.at(-1) ?? 'no vector flags');
  return `${hw.cpu ?? 'unknown CPU'}, ${hw.cores ?? '?'} cores, ${widest}`;
}
