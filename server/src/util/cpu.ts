// The CPU's feature flags, read once from /proc/cpuinfo (Linux; an empty set elsewhere), and the one
// fact about them that changes what the compressor must emit. Plain Node: the config layer uses it too.
import * as fs from 'node:fs';
import * as os from 'node:os';

let flags: ReadonlySet<string> | undefined;

/** Every flag the kernel reports for the first CPU (`flags` on x86, `Features` on Arm). */
export function cpuFlagSet(): ReadonlySet<string> {
  if (flags) return flags;
  try {
    const line = /^(?:flags|Features)\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    flags = new Set(line ? line[1].split(/\s+/).filter(Boolean) : []);
  } catch {
    flags = new Set();
  }
  return flags;
}

/**
 * Whether onnxruntime's u8×s8 int8 kernels (MatMulInteger, QDQ MatMul) can saturate on this CPU: x86
 * without VNNI multiplies with vpmaddubsw, whose int16 sum of two u8·s8 products overflows for
 * full-range weights (255·127·2 > 32767). Unsigned weights (u8×u8, `quantize.weight_type: uint8`)
 * take a kernel that widens to 16 bits first and cannot overflow.
 */
export function int8Saturates(isa: ReadonlySet<string> = cpuFlagSet(), arch: string = os.arch()): boolean {
  if (arch !== 'x64' && arch !== 'ia32') return false;
  // No flags to read (not Linux): assume the worst. u8×u8 never saturates; it only gives up VNNI's speed.
  return ![...isa].some((f) => /vnni|amx_int8/.test(f));
}
