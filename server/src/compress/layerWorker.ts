// A compression thread (parallel.ts): quantizes one slice of a layer's weight into the shared packed
// arrays and answers with the slice's error sums. Bundled as dist/layerWorker.js (esbuild.mjs).
import { parentPort } from 'node:worker_threads';
import { PackedWeight, quantizeKNRows, quantizeNKRows } from './quant';

interface Msg {
  id: number;
  row0: number;
  count: number;
  transB: boolean;
  rows: Float32Array;
  pw: Omit<PackedWeight, 'sqErr' | 'sqNorm'>;
}

parentPort?.on('message', (m: Msg) => {
  try {
    const pw: PackedWeight = { ...m.pw, sqErr: 0, sqNorm: 0 };
    if (m.transB) quantizeNKRows(m.rows, m.row0, m.count, pw);
    else quantizeKNRows(m.rows, m.row0, m.count, pw);
    parentPort!.postMessage({ id: m.id, sqErr: pw.sqErr, sqNorm: pw.sqNorm });
  } catch (err) {
    parentPort!.postMessage({ id: m.id, error: (err as Error).message });
  }
});
