// A compression thread (parallel.ts): converts one slice of a layer's weight from its stored type to
// float32, quantizes it into the shared packed arrays and answers with the slice's error sums. Bundled
// as dist/layerWorker.js (esbuild.mjs).
import { parentPort } from 'node:worker_threads';
import { PackedWeight, quantizeKNRows, quantizeNKRows } from './quant';
import { floatType } from '../model/floatTypes';

interface Msg {
  id: number;
  row0: number;
  count: number;
  transB: boolean;
  raw: Uint8Array;
  dataType: number;
  pw: Omit<PackedWeight, 'sqErr' | 'sqNorm'>;
}

/** This thread's float32 buffer for 16-bit slices, reused (grown when a slice needs more). */
let conv = new Float32Array(0);

function asFloat32(raw: Uint8Array, dataType: number): Float32Array {
  const ft = floatType(dataType);
  if (!ft) throw new Error(`slice of element type ${dataType}: not a float type`);
  const n = raw.byteLength / ft.bytes;
  // float32 in a slot (offset 0 of its buffer) is used in place; 16-bit types are converted.
  if (ft.name === 'float32' && raw.byteOffset % 4 === 0) return new Float32Array(raw.buffer, raw.byteOffset, n);
  if (conv.length < n) conv = new Float32Array(n);
  ft.decode(raw, n, conv);
  return conv.subarray(0, n);
}

parentPort?.on('message', (m: Msg) => {
  try {
    const pw: PackedWeight = { ...m.pw, sqErr: 0, sqNorm: 0 };
    const rows = asFloat32(m.raw, m.dataType);
    if (m.transB) quantizeNKRows(rows, m.row0, m.count, pw);
    else quantizeKNRows(rows, m.row0, m.count, pw);
    parentPort!.postMessage({ id: m.id, sqErr: pw.sqErr, sqNorm: pw.sqNorm });
  } catch (err) {
    parentPort!.postMessage({ id: m.id, error: (err as Error).message });
  }
});
