// The quantize section's step (registered in compress/methods.ts): weight-only MatMulNBits (RTN or
// GPTQ), or W8A8 with 8-bit activations, dynamic or static. The rule for which path a layer takes is
// compress/pipeline.ts's header. A layer with only RTN weight quantization streams its weight in slices
// of whole blocks (`stream`): a 1 GB embedding-sized matrix never sits in memory.
import * as fs from 'node:fs';
import type { QuantSettings, W8WeightType } from '../config/recipe';
import { isSkipped } from '../config/planner';
import { dataTypeName, externalRef, readTensorFloat32, resolveExternal } from '../model/onnx';
import { ActivationCache, emitDynamicW8A8, emitMatMulNBits, emitStaticW8A8, int8Weight } from './emit';
import { GridResult, dequantizeGrid, gptq, int8ChannelGrid, nbitsGrid, rtnOnGrid } from './gptq';
import {
  BlockQuantSpec,
  NBits,
  PackedWeight,
  checkSpec,
  dequantize,
  newPacked,
  packCodes,
  quantizeKNRows,
  quantizeNKRows,
} from './quant';
import { MAX_DEFAULT_THREADS, QuantPool } from './parallel';
import { CompressError, Decision, EmitStep, Emitted, LayerCtx, abortError, emitFloat } from './step';

const MS = 'com.microsoft';
/** A streamed layer is cut into at least this many slices: as many as a default pool has threads. */
const SLICES_PER_LAYER = MAX_DEFAULT_THREADS;

export interface QuantDecision extends Decision {
  quant: QuantSettings;
  /** 'nbits' weight-only, or W8A8 with 8-bit activations. */
  path: 'nbits' | 'dynamic' | 'static';
  weightType: W8WeightType;
}

export const quantizeStep: EmitStep<QuantDecision> = {
  section: 'quantize',
  kind: 'emit',
  runState: () => new ActivationCache(),
  decide(recipe, plan, decided) {
    const acts = recipe.quantize?.activations ?? 'none';
    let quant: QuantSettings | undefined;
    let path: QuantDecision['path'] = 'nbits';
    if (plan.quant) {
      quant = plan.quant;
      path = plan.quant.bits === 8 && acts !== 'none' ? acts : 'nbits';
    } else if (acts !== 'none' && recipe.quantize && !isSkipped(plan) && plan.float?.kind !== 'already-quantized') {
      // Kept in float by an override (bits: 32): weights go to int8 with the activations.
      quant = {
        method: recipe.quantize.method,
        bits: 8,
        block_size: recipe.quantize.block_size,
        symmetric: true,
        accuracy_level: 0,
      };
      path = acts;
    }
    if (!quant) return undefined;
    // GPTQ needs H of the matrix it quantizes; after a factorization the factors' inputs differ, so GPTQ
    // applies to the full-matrix case only and low-rank factors fall back to RTN (reported in the actions).
    const factorized = [...decided.values()].some((d) => d.factorizes);
    const weightType = recipe.quantize?.weight_type ?? 'int8';
    return {
      quant,
      path,
      weightType,
      needs: { hessian: quant.method === 'gptq' && !factorized, range: path === 'static' },
      // W8A8 layers share activation quantizers (the run state), so they are always recomputed.
      cacheKey: path === 'nbits' ? { quant, path, weightType } : undefined,
    };
  },

  async stream(c, d) {
    const q = d.quant;
    if (d.path !== 'nbits' || !(q.method === 'rtn' || !d.needs?.hessian)) return undefined;
    const layer = c.plan.layer;
    const { K, N } = layer;
    const spec = nbitsSpec(q, c.where);
    const pw = newPacked(K, N, spec);
    if (c.pool && externalRef(c.wt)) {
      // Threads fill the pool's shared output buffers; the layer keeps its own copy.
      const shared = c.pool.share(pw);
      await streamQuantize(c, shared, layer.transB);
      QuantPool.unshare(shared, pw);
    } else {
      await streamQuantize(c, pw, layer.transB);
    }
    const node = await emitMatMulNBits(c.sink, c.names, {
      input: c.nd.input![0],
      output: c.product,
      nodeName: `${c.baseName}_Q${spec.bits}`,
      weightStem: layer.weight,
      pw,
      accuracyLevel: q.accuracy_level,
      scaleType: c.ft,
    });
    return { nodes: [node], actions: [quantLabel(q, 'rtn')], sqErr: pw.sqErr, sqNorm: pw.sqNorm, domains: [MS] };
  },

  async emit(c, d, s) {
    const q = d.quant;
    const { mats, x } = s;
    const stats = c.calib?.inputs.get(x);
    const actCache = c.state.get('quantize') as ActivationCache;
    const out: Emitted = { nodes: [], effective: [], actions: [], domains: [] };
    const qActions = new Set<string>();
    for (const m of mats) {
      if (c.signal?.aborted) throw abortError();
      if (d.path === 'nbits' && (mats.length === 1 || m.K % q.block_size === 0)) {
        const spec = nbitsSpec(q, c.where);
        let pw: PackedWeight;
        let method = 'rtn';
        if (q.method === 'gptq' && mats.length === 1) {
          if (!stats?.xtx) throw new CompressError(`${c.where}: GPTQ needs calibration statistics for ${x}`);
          const r = gptqOrFail(m.W, m.K, m.N, stats.xtx, nbitsGrid(spec.bits, spec.blockSize, spec.symmetric), c.where);
          pw = packCodes(r.codes, r.scales, r.zeros, m.K, m.N, spec, m.W);
          method = 'gptq';
        } else {
          pw = newPacked(m.K, m.N, spec);
          quantizeKNRows(m.W, 0, m.K, pw);
        }
        out.nodes.push(
          await emitMatMulNBits(c.sink, c.names, {
            input: m.input,
            output: m.output,
            nodeName: `${m.name}_Q${spec.bits}`,
            weightStem: m.stem,
            pw,
            accuracyLevel: q.accuracy_level,
            scaleType: c.ft,
          }),
        );
        if (!out.domains.includes(MS)) out.domains.push(MS);
        out.effective.push({ W: dequantize(pw), K: m.K, N: m.N });
        qActions.add(quantLabel(q, method));
      } else if (d.path === 'dynamic' || d.path === 'static') {
        if (c.half)
          throw new CompressError(
            `${c.where}: 8-bit activations need a float32 model (this weight is ${dataTypeName(c.ft.dataType)})`,
          );
        const grid = int8ChannelGrid(m.K);
        let r: GridResult;
        let method = 'rtn';
        if (q.method === 'gptq' && mats.length === 1) {
          if (!stats?.xtx) throw new CompressError(`${c.where}: GPTQ needs calibration statistics for ${x}`);
          r = gptqOrFail(m.W, m.K, m.N, stats.xtx, grid, c.where);
          method = 'gptq';
        } else {
          r = rtnOnGrid(m.W, m.K, m.N, grid);
        }
        const wq = int8Weight(r.codes, m.K, m.N);
        const common = {
          input: m.input,
          output: m.output,
          nodeName: m.name,
          weightStem: m.stem,
          K: m.K,
          N: m.N,
          wq,
          wScales: r.scales,
          weightType: d.weightType,
        };
        if (d.path === 'dynamic') {
          out.nodes.push(...(await emitDynamicW8A8(c.sink, c.names, actCache, common)));
        } else {
          const st = c.calib?.inputs.get(m.input) ?? stats;
          if (!st || !Number.isFinite(st.min) || m.input !== x) {
            const why =
              m.input !== x
                ? " (a low-rank factor's input is not calibrated; use dynamic activations with low rank)"
                : '';
            throw new CompressError(
              `${c.where}: static activation quantization needs calibrated ranges for ${m.input}${why}`,
            );
          }
          out.nodes.push(
            ...(await emitStaticW8A8(c.sink, c.names, actCache, { ...common, range: { min: st.min, max: st.max } })),
          );
        }
        out.effective.push({ W: dequantizeGrid(r, m.K, m.N, grid.groupSize), K: m.K, N: m.N });
        qActions.add(`w8a8 ${d.path} ${d.weightType} per-channel ${method}`);
      } else {
        if (mats.length > 1) qActions.add(`factor K=${m.K} kept in float (not a multiple of block ${q.block_size})`);
        const f = await emitFloat(c, m);
        out.nodes.push(f.node);
        out.effective.push(f.effective);
      }
    }
    if (mats.length > 1 && q.method === 'gptq') qActions.add('gptq → rtn on low-rank factors');
    out.actions.push(...qActions);
    return out;
  },
};

function nbitsSpec(q: QuantSettings, where: string): BlockQuantSpec {
  const spec = { bits: q.bits as NBits, blockSize: q.block_size, symmetric: q.symmetric };
  try {
    checkSpec(spec, where);
  } catch (err) {
    throw new CompressError((err as Error).message);
  }
  return spec;
}

function quantLabel(q: QuantSettings, method: string): string {
  return (
    `int${q.bits} b${q.block_size} ${q.symmetric ? 'sym' : 'asym'}` +
    `${q.accuracy_level ? ` acc${q.accuracy_level}` : ''} ${method}`
  );
}

function gptqOrFail(
  w: Float32Array,
  K: number,
  N: number,
  h: Float64Array,
  grid: Parameters<typeof gptq>[4],
  where: string,
): GridResult {
  try {
    return gptq(w, K, N, h, grid);
  } catch (err) {
    throw new CompressError(`${where}: ${(err as Error).message}`);
  }
}
/**
 * Feed a weight to the RTN quantizer in slices. Weights in external data (float32, float16 or
 * bfloat16) are read slice by slice straight from the file — on one thread, the next slice is read
 * while this one is converted to float32 and quantized; with a pool, each slice goes as stored to a
 * worker thread that converts and quantizes it — so a 16-bit source never has a float32 copy of the
 * whole tensor; inline weights are read whole (they are in memory already).
 */
async function streamQuantize(c: LayerCtx, pw: PackedWeight, transB: boolean): Promise<void> {
  const { K, N } = pw;
  const rowLen = transB ? K : N;
  const totalRows = transB ? N : K;
  const ext = externalRef(c.wt);
  // Error sums per slice, added in slice order at the end: the same sums with one thread or several.
  const parts: (Promise<{ sqErr: number; sqNorm: number }> | { sqErr: number; sqNorm: number })[] = [];
  const feed = (chunk: Float32Array, row0: number, rows: number) => {
    const part = { ...pw, sqErr: 0, sqNorm: 0 };
    if (transB) quantizeNKRows(chunk, row0, rows, part);
    else quantizeKNRows(chunk, row0, rows, part);
    parts.push({ sqErr: part.sqErr, sqNorm: part.sqNorm });
  };
  const total = async () => {
    for (const p of await Promise.all(parts)) {
      pw.sqErr += p.sqErr;
      pw.sqNorm += p.sqNorm;
    }
  };
  if (!ext) {
    const all = await readTensorFloat32(c.wt, c.model.baseDir);
    feed(all, 0, totalRows);
    await total();
    return;
  }
  const es = c.ft.bytes;
  const file = resolveExternal(c.model.baseDir, ext.location, c.wt.name ?? undefined);
  if (ext.length !== K * N * es)
    throw new CompressError(
      `${c.where}: external data of ${c.wt.name} has ${ext.length} bytes, its shape needs ${K * N * es}`,
    );
  let rowsPer = Math.max(1, Math.floor(c.chunkBytes / (rowLen * 4)));
  // At least SLICES_PER_LAYER slices a layer, whatever the thread count: threads share every layer
  // (layers are written in order, so one slice a layer left all but one thread idle), and the slicing,
  // hence the order the error sums are added in, is the same with one thread or several.
  rowsPer = Math.min(rowsPer, Math.ceil(totalRows / SLICES_PER_LAYER));
  // [K, N] slices are whole groups of 4 blocks: threads never share a byte of a packed zero-point row.
  if (!transB) rowsPer = Math.max(pw.blockSize * 4, rowsPer - (rowsPer % (pw.blockSize * 4)));
  rowsPer = Math.min(rowsPer, totalRows); // no bigger buffers than the weight: they cost GC and page faults
  const fh = await fs.promises.open(file, 'r').catch(() => {
    throw new CompressError(`${c.where}: external data file not found: ${file}`, file, c.wt.name ?? undefined);
  });
  const sliceBytes = rowsPer * rowLen * es;
  /** Read the slice of rows from `row0` into `into`; the number of rows read. */
  const read = async (row0: number, into: Uint8Array) => {
    const rows = Math.min(rowsPer, totalRows - row0);
    const want = rows * rowLen * es;
    let got = 0;
    while (got < want) {
      const { bytesRead } = await fh.read(into, got, want - got, ext.offset + row0 * rowLen * es + got);
      if (bytesRead === 0)
        throw new CompressError(
          `${c.where}: external data of ${c.wt.name} is truncated (${file})`,
          file,
          c.wt.name ?? undefined,
        );
      got += bytesRead;
    }
    return rows;
  };
  const aborted = async (pending?: Promise<unknown>) => {
    if (!c.signal?.aborted) return;
    await pending?.catch(() => undefined);
    await Promise.allSettled(parts);
    throw abortError();
  };
  try {
    const pool = c.pool;
    if (pool) {
      // Parallel: slices read as stored into the pool's shared slots; a free thread converts and quantizes
      // each. A slot is refilled once the slice in it is done.
      const slots = pool.slots(sliceBytes);
      const busy: Promise<unknown>[] = [];
      for (let row0 = 0, s = 0; row0 < totalRows; row0 += rowsPer, s++) {
        const slot = s % slots.length;
        await busy[slot]?.catch(() => undefined);
        const rows = await read(row0, slots[slot]);
        const raw = slots[slot].subarray(0, rows * rowLen * es);
        const job = pool.run({ pw, raw, dataType: c.ft.dataType, row0, count: rows, transB });
        parts.push(job);
        busy[slot] = job;
        await aborted();
      }
    } else {
      // Two buffers: one being filled from disk while the other is quantized, and for 16-bit sources a
      // third that holds the slice converted to float32. Reused across layers: fresh 30 MB allocations per
      // layer cost more in GC and page faults than the reads themselves.
      const need = rowsPer * rowLen * 4;
      if (c.streamBuffers.length < 3 || c.streamBuffers[0].length < need) {
        c.streamBuffers.splice(0, 3, Buffer.allocUnsafe(need), Buffer.allocUnsafe(need), Buffer.allocUnsafe(need));
      }
      const bufs = c.streamBuffers;
      const conv = new Float32Array(bufs[2].buffer, bufs[2].byteOffset, rowsPer * rowLen);
      let pending: Promise<number> | undefined = read(0, bufs[0]);
      for (let row0 = 0, i = 0; row0 < totalRows; row0 += rowsPer, i ^= 1) {
        const rows = await pending!;
        const n = rows * rowLen;
        const b = bufs[i];
        const next = row0 + rowsPer;
        pending = next < totalRows ? read(next, bufs[i ^ 1]) : undefined;
        if (es === 4) {
          feed(new Float32Array(b.buffer, b.byteOffset, n), row0, rows);
        } else {
          c.ft.decode(b.subarray(0, n * es), n, conv);
          feed(conv.subarray(0, n), row0, rows);
        }
        await aborted(pending);
      }
    }
    await total();
  } finally {
    await Promise.allSettled(parts);
    await fh.close();
  }
}
