// compressModel: a recipe applied to a model, layer by layer, written atomically.
//
// Per layer (config/planner.ts decides what): sparsity → low rank → quantization, in that order, because
// pruning picks weights on the original values, factorizing a pruned matrix keeps its dominant
// directions, and quantization must see the final values it rounds. Everything that is not a planned
// layer passes through untouched, and the graph's inputs and outputs stay exactly as they were.
//
// Quantization paths (the rule for `quantize.activations`):
//   bits 2/4/8, activations none          → MatMulNBits (weight-only).
//   bits < 8, activations dynamic|static  → MatMulNBits; activations stay float (use accuracy_level 4
//                                           for int8 compute inside the kernel).
//   bits 8 with dynamic|static, or a layer kept in float (bits 32 override) while the recipe asks for
//   dynamic|static                        → W8A8: per-channel int8 weights + 8-bit activations.
//   skipped layers (quantize.skip, override skip: true) → untouched by quantization of either kind.
//
// Memory: a layer with only RTN quantization streams its weight in slices of whole blocks (a 1 GB
// embedding-sized matrix never sits in memory; the packed result is 1/8 of it); other transforms load
// one layer at a time. Models with external data are written through ExternalDataWriter.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Recipe, QuantSettings, W8WeightType } from '../config/recipe';
import { type PlannedLayer as LayerPlan, isSkipped, planRecipe } from '../config/planner';
import { inspectLoaded, Layer } from '../model/graph';
import {
  DataType, EXTERNAL_DATA_THRESHOLD, ExternalDataWriter, LoadedModel, OnnxError, attrInt, dataTypeName, elementSize,
  externalRef, makeTensor, num, onnx, readModel, readTensorBytes, readTensorFloat32, resolveExternal, tensorDims, writeModel, writeFailure,
} from '../model/onnx';
import { node as mkNode } from '../model/build';
import { CalibrationData, InputNeeds, calibrate } from './calibrate';
import { ActivationCache, Names, TensorSink, emitDynamicW8A8, emitMatMulNBits, emitStaticW8A8, int8Weight } from './emit';
import { GridResult, dequantizeGrid, gptq, int8ChannelGrid, nbitsGrid, rtnOnGrid } from './gptq';
import { lowRank } from './lowrank';
import { BlockQuantSpec, NBits, PackedWeight, checkSpec, dequantize, newPacked, packCodes, quantizeKNRows, quantizeNKRows } from './quant';
import { prune } from './sparsity';
import { LayerCache, sourceIdentity, statsDigest } from './layerCache';
import { QuantPool, defaultThreads, sharedPacked } from './parallel';
import { FloatType, floatType } from '../model/floatTypes';
import { RecipeReads, recipeReadRefusal, recipeRoots } from '../util/paths';

export interface LayerReport {
  name: string;
  actions: string[];
  /** ‖W − Ŵ‖_F / ‖W‖_F of the weight the compressed graph computes with. */
  relError?: number;
}

export interface CompressResult {
  out: string;
  layers: LayerReport[];
  /** Model file + external data on disk. */
  bytes: number;
  /** The same for the input model. */
  bytesBefore: number;
  /** √(Σ‖ΔW‖² / Σ‖W‖²) over the compressed layers. */
  relError?: number;
  seconds: number;
  calibration?: { samples: number; source: string };
}

export interface CompressOptions {
  out: string;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number, layer: string) => void;
  /** Reuse statistics from an earlier run (the tuner calibrates once per model). */
  calibration?: CalibrationData;
  /** Slice size for streamed weights (default 32 MiB; tests use tiny slices to exercise the seams). */
  chunkBytes?: number;
  /** Folders the recipe may name files in (default: the recipe's folder); see util/paths.ts. */
  roots?: string[];
  /** Compressed layers reused across trials (compress/layerCache.ts); the output is byte-identical either way. */
  layerCache?: LayerCache;
  /** Threads quantizing streamed layers (compress/parallel.ts); default min(cores, 4); 1: this thread only. */
  threads?: number;
}

/** The path policy's gate: the model and calibration text are read only where `haqa check` says they may be. */
function refuseUnreadable(recipe: Recipe, roots: string[] | undefined, reads: RecipeReads): void {
  const refused = recipeReadRefusal(recipe, roots ?? recipeRoots(recipe.file), reads);
  if (refused) throw refused;
}

export class CompressError extends OnnxError {}

export { ORT_DEFAULT_4BIT } from './quant';
export type { CalibrationData } from './calibrate';

/**
 * Calibration statistics for every layer input of the recipe's model (XᵀX, norms and ranges), to be
 * passed as `calibration` to many compressModel calls: the tuner calibrates once per model, not once
 * per trial. Costs O(K²) memory per distinct layer input.
 */
export async function calibrateModel(recipe: Recipe, signal?: AbortSignal, roots?: string[]): Promise<CalibrationData> {
  refuseUnreadable(recipe, roots, { model: true, calibration: true });
  const model = await readModel(recipe.model);
  const graph = inspectLoaded(model);
  const needs = new Map<string, InputNeeds>();
  for (const l of graph.layers) {
    if (l.op === 'MatMulNBits') continue;
    needs.set(model.proto.graph!.node![l.nodeIndex].input![0], { K: l.K, hessian: true, norms: true, range: true });
  }
  return calibrate(model, needs, { ...recipe.calibration, seed: recipe.search.seed }, signal);
}

/** Slices of a streamed weight are about this big. */
const STREAM_CHUNK_BYTES = 32 * 1024 * 1024;

export async function compressModel(recipe: Recipe, opts: CompressOptions): Promise<CompressResult> {
  const t0 = process.hrtime.bigint();
  const out = path.resolve(opts.out);
  if (out === path.resolve(recipe.model)) throw new CompressError(`refusing to overwrite the input model ${out}`, out);
  refuseUnreadable(recipe, opts.roots, { model: true });
  const model = await readModel(recipe.model);
  const graph = inspectLoaded(model);
  const plans = planRecipe(recipe, graph.layers);
  const g = model.proto.graph!;
  const irVersion = num(model.proto.irVersion as never);

  // --- what each layer will do, and what calibration must collect for it
  const work = plans.map((p) => decide(recipe, p, g));
  const needs = new Map<string, InputNeeds>();
  for (const w of work) {
    if (!w.active) continue;
    const nd = g.node![w.plan.layer.nodeIndex];
    const x = nd.input![0];
    const want = { hessian: w.needsHessian, norms: w.needsNorms, range: w.needsRange };
    if (!want.hessian && !want.norms && !want.range) continue;
    const prev = needs.get(x) ?? { K: w.plan.layer.K, hessian: false, norms: false, range: false };
    needs.set(x, { K: prev.K, hessian: prev.hessian || want.hessian, norms: prev.norms || want.norms, range: prev.range || want.range });
  }
  let calib = opts.calibration;
  if (needs.size > 0 && !calib) {
    refuseUnreadable(recipe, opts.roots, { calibration: true });
    calib = await calibrate(model, needs, { ...recipe.calibration, seed: recipe.search.seed }, opts.signal);
  }

  // --- consumers of every tensor, to know which initializers / Constant nodes disappear
  const consumers = new Map<string, number>();
  for (const n of g.node ?? []) for (const i of n.input ?? []) consumers.set(i, (consumers.get(i) ?? 0) + 1);
  const constNodes = new Map<string, number>();
  (g.node ?? []).forEach((n, i) => {
    if (n.opType === 'Constant' && n.output?.length === 1) constNodes.set(n.output[0], i);
  });
  const initByName = new Map((g.initializer ?? []).map((t) => [t.name ?? '', t] as const));
  const graphInputNames = new Set((g.input ?? []).map((i) => i.name ?? ''));

  const srcWeightBytes = (g.initializer ?? []).reduce((s, t) => {
    try {
      return s + tensorDims(t).reduce((a, b) => a * b, 1) * elementSize(t.dataType ?? 0);
    } catch {
      return s;
    }
  }, 0);
  const external = graph.usesExternalData || srcWeightBytes > EXTERNAL_DATA_THRESHOLD;
  const writer = new ExternalDataWriter(out);
  const newInits: onnx.ITensorProto[] = [];
  const sink: TensorSink = {
    async add(name, dataType, dims, data) {
      if (external && data.byteLength >= 1024) newInits.push(await writer.append(name, dataType, dims, data));
      else newInits.push(makeTensor(name, dataType, dims, data));
    },
  };
  const names = new Names([
    ...(g.node ?? []).flatMap((n) => [n.name ?? '', ...(n.output ?? []), ...(n.input ?? [])]),
    ...(g.initializer ?? []).map((t) => t.name ?? ''),
  ]);
  const actCache = new ActivationCache();
  const streamBuffers: Buffer[] = [];

  const replaced = new Map<number, onnx.INodeProto[]>();
  const dropped = new Set<string>(); // weights no longer referenced
  const droppedNodes = new Set<number>();
  const reports: LayerReport[] = [];
  let sqErrAll = 0;
  let sqNormAll = 0;
  let usesMs = false;
  const active = work.filter((w) => w.active).length;
  let done = 0;
  const threads = opts.threads ?? defaultThreads();
  // Only streamed layers (external data) are split over threads; in-memory models are small.
  const pool = threads > 1 && graph.usesExternalData && work.some((w) => w.active) ? new QuantPool(threads) : undefined;
  try {
    for (const w of work) {
      const layer = w.plan.layer;
      if (!w.active) {
        if (w.note) reports.push({ name: layer.name, actions: [w.note] });
        continue;
      }
      if (opts.signal?.aborted) throw abortError();
      const nd = g.node![layer.nodeIndex];
      const where = `layer ${layer.name} (node ${layer.node})`;
      let wt = initByName.get(layer.weight);
      if (!wt && constNodes.has(layer.weight)) {
        const c = g.node![constNodes.get(layer.weight)!];
        const v = (c.attribute ?? []).find((a) => a.name === 'value')?.t;
        if (v) wt = { ...v, name: layer.weight };
      }
      if (!wt) throw new CompressError(`${where}: weight ${layer.weight} is not a constant`, model.path, layer.node);
      if (irVersion >= 4 && graphInputNames.has(layer.weight)) {
        throw new CompressError(`${where}: weight ${layer.weight} is also a graph input, so it can be replaced at run time and is not a constant`, model.path, layer.node);
      }
      const dt = wt.dataType ?? 0;
      const ft = floatType(dt);
      if (!ft) {
        const why = `only FLOAT, FLOAT16 and BFLOAT16 weights can be compressed`;
        throw new CompressError(`${where}: weight ${layer.weight} is ${dataTypeName(dt)}; ${why}`, model.path, layer.weight);
      }
      const half = dt !== DataType.FLOAT;
      const ctx: LayerCtx = {
        w, nd, wt, model, sink, names, actCache, calib, half, ft, where, signal: opts.signal, weightType: recipe.quantize?.weight_type ?? 'int8',
        lowRankMethod: recipe.low_rank?.method ?? 'randomized_svd', seed: recipe.search.seed + 1, chunkBytes: opts.chunkBytes ?? STREAM_CHUNK_BYTES, streamBuffers, pool,
      };
      // Reuse across trials (layerCache.ts): W8A8 layers share activation quantizers, so they are always recomputed.
      const res = opts.layerCache && w.path !== 'dynamic' && w.path !== 'static'
        ? await opts.layerCache.layer(await layerCacheKey(opts.layerCache, ctx), names, sink, (n, s) => transformLayer({ ...ctx, names: n, sink: s }))
        : await transformLayer(ctx);
      replaced.set(layer.nodeIndex, res.nodes);
      if (res.usesMs) usesMs = true;
      reports.push({ name: layer.name, actions: res.actions, relError: res.sqNorm > 0 ? Math.sqrt(res.sqErr / res.sqNorm) : 0 });
      sqErrAll += res.sqErr;
      sqNormAll += res.sqNorm;
      const left = (consumers.get(layer.weight) ?? 1) - 1;
      consumers.set(layer.weight, left);
      if (left === 0) {
        dropped.add(layer.weight);
        if (constNodes.has(layer.weight)) droppedNodes.add(constNodes.get(layer.weight)!);
      }
      if (res.dropBias && (consumers.get(res.dropBias) ?? 1) - 1 === 0) dropped.add(res.dropBias);
      opts.onProgress?.(++done, active, layer.name);
    }
    if (opts.signal?.aborted) throw abortError();

    // --- untouched initializers, copied through (streamed when both sides use external data)
    const kept: onnx.ITensorProto[] = [];
    for (const t of g.initializer ?? []) {
      if (dropped.has(t.name ?? '')) continue;
      const ext = externalRef(t);
      if (external && (ext || (t.rawData?.length ?? 0) >= 1024)) {
        if (ext) {
          const file = resolveExternal(model.baseDir, ext.location, t.name ?? undefined);
          kept.push(await writer.appendChunks(t.name ?? '', t.dataType ?? 0, tensorDims(t), fileChunks(file, ext.offset, ext.length, t.name ?? '')));
        } else {
          kept.push(await writer.append(t.name ?? '', t.dataType ?? 0, tensorDims(t), await readTensorBytes(t, model.baseDir)));
        }
      } else if (ext) {
        kept.push(makeTensor(t.name ?? '', t.dataType ?? 0, tensorDims(t), await readTensorBytes(t, model.baseDir)));
      } else {
        kept.push(t);
      }
      if (opts.signal?.aborted) throw abortError();
    }

    const nodes: onnx.INodeProto[] = [];
    (g.node ?? []).forEach((n, i) => {
      if (droppedNodes.has(i)) return;
      const r = replaced.get(i);
      if (r) nodes.push(...r);
      else nodes.push(n);
    });
    const opsetImport = [...(model.proto.opsetImport ?? [])];
    if (usesMs && !opsetImport.some((o) => o.domain === 'com.microsoft')) opsetImport.push({ domain: 'com.microsoft', version: 1 });
    const outModel: onnx.IModelProto = {
      ...model.proto,
      opsetImport,
      graph: {
        ...g,
        node: nodes,
        initializer: [...kept, ...newInits],
        // IR < 4 lists initializers among the inputs; drop the ones that are gone.
        input: (g.input ?? []).filter((i) => !dropped.has(i.name ?? '')),
      },
    };
    if (external) {
      await writer.commit(outModel);
    } else {
      await writeModel(outModel, out, { externalData: false });
    }
  } catch (err) {
    await writer.abort();
    throw writeFailure(err, out); // a full disk is the user's to fix, not an internal error
  } finally {
    await pool?.close();
  }

  const bytes = await diskBytes(out);
  const bytesBefore = await diskBytes(model.path, model);
  return {
    out,
    layers: reports,
    bytes,
    bytesBefore,
    relError: sqNormAll > 0 ? Math.sqrt(sqErrAll / sqNormAll) : undefined,
    seconds: Number(process.hrtime.bigint() - t0) / 1e9,
    calibration: calib ? { samples: calib.samples, source: calib.source } : undefined,
  };
}

// ---------------------------------------------------------------- deciding

interface Work {
  plan: LayerPlan;
  active: boolean;
  /** Why a planned layer is left alone. */
  note?: string;
  quant?: QuantSettings;
  /** 'nbits' weight-only, or W8A8 with 8-bit activations. */
  path?: 'nbits' | 'dynamic' | 'static';
  needsHessian: boolean;
  needsNorms: boolean;
  needsRange: boolean;
}

function decide(recipe: Recipe, plan: LayerPlan, g: onnx.IGraphProto): Work {
  const layer = plan.layer;
  const w: Work = { plan, active: false, needsHessian: false, needsNorms: false, needsRange: false };
  const acts = recipe.quantize?.activations ?? 'none';
  if (layer.op === 'MatMulNBits') {
    if (plan.quant || plan.sparsity || plan.lowRank) w.note = 'kept: already MatMulNBits';
    return w;
  }
  const nd = g.node![layer.nodeIndex];
  if (layer.op === 'Gemm' && attrInt(nd, 'transA', 0) === 1) {
    w.note = 'kept: Gemm with transA=1 is not rewritten';
    return w;
  }
  if (plan.quant) {
    w.quant = plan.quant;
    w.path = plan.quant.bits === 8 && acts !== 'none' ? acts : 'nbits';
  } else if (acts !== 'none' && recipe.quantize && !isSkipped(plan)) {
    // Kept in float by an override (bits: 32): weights go to int8 with the activations.
    w.quant = { method: recipe.quantize.method, bits: 8, block_size: recipe.quantize.block_size, symmetric: true, accuracy_level: 0 };
    w.path = acts;
  }
  w.active = !!(w.quant || plan.sparsity || plan.lowRank);
  const sparsityWanda = !!plan.sparsity && recipe.sparsity?.method === 'wanda';
  w.needsNorms = sparsityWanda;
  // GPTQ needs H of the matrix it quantizes; with low rank the factors' inputs differ, so GPTQ applies
  // to the full-matrix case only and low-rank factors fall back to RTN (reported in the actions).
  w.needsHessian = w.quant?.method === 'gptq' && !plan.lowRank;
  w.needsRange = w.path === 'static';
  return w;
}

// ---------------------------------------------------------------- transforming

interface LayerCtx {
  w: Work;
  nd: onnx.INodeProto;
  wt: onnx.ITensorProto;
  model: LoadedModel;
  sink: TensorSink;
  names: Names;
  actCache: ActivationCache;
  calib?: CalibrationData;
  /** The weight is stored in a 16-bit float type (`ft`); the graph computes in that type. */
  half: boolean;
  ft: FloatType;
  /** Storage of the 8-bit-activation paths' weights (recipe quantize.weight_type). */
  weightType: W8WeightType;
  where: string;
  lowRankMethod: 'svd' | 'randomized_svd';
  seed: number;
  chunkBytes: number;
  /** Slice buffers shared by all streamed layers of one run. */
  streamBuffers: Buffer[];
  /** Worker threads for streamed RTN layers (parallel.ts); absent: this thread quantizes. */
  pool?: QuantPool;
  signal?: AbortSignal;
}

interface LayerOut { nodes: onnx.INodeProto[]; actions: string[]; sqErr: number; sqNorm: number; usesMs: boolean; dropBias?: string }

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
  return `int${q.bits} b${q.block_size} ${q.symmetric ? 'sym' : 'asym'}${q.accuracy_level ? ` acc${q.accuracy_level}` : ''} ${method}`;
}

async function transformLayer(c: LayerCtx): Promise<LayerOut> {
  const { w, nd, wt } = c;
  const layer = w.plan.layer;
  const { K, N } = layer;
  const x = nd.input![0];
  const y = nd.output![0];
  const stem = layer.weight;
  const scope = (nd.name || `${layer.op}_${layer.nodeIndex}`).replace(/\/[^/]*$/, '');
  const baseName = nd.name || `${layer.op}_${layer.nodeIndex}`;

  // Gemm extras: alpha folds into the weight, beta·C becomes an Add after the product.
  let alpha = 1;
  let bias: { nodes: onnx.INodeProto[]; input: string } | undefined;
  let dropBias: string | undefined;
  let product = y;
  if (layer.op === 'Gemm') {
    alpha = attrFloat(nd, 'alpha', 1);
    const beta = attrFloat(nd, 'beta', 1);
    const cName = nd.input![2];
    if (cName && beta !== 0) {
      product = c.names.take(`${y}_product`);
      let cIn = cName;
      const pre: onnx.INodeProto[] = [];
      if (beta !== 1) {
        const bName = c.names.take(`${baseName}_beta`);
        await c.sink.add(bName, DataType.FLOAT, [], Float32Array.of(beta));
        cIn = c.names.take(`${cName}_scaled`);
        pre.push(mkNode('Mul', [cName, bName], [cIn], { name: c.names.take(`${baseName}_beta_Mul`) }));
      }
      bias = { nodes: [...pre, mkNode('Add', [product, cIn], [y], { name: c.names.take(`${baseName}_bias_Add`) })], input: cIn };
    }
    if (cName && beta === 0) dropBias = cName;
  }
  const finish = (nodes: onnx.INodeProto[]) => (bias ? [...nodes, ...bias.nodes] : nodes);

  // Fast path: RTN weight-only quantization streams the weight in slices.
  const q = w.quant;
  const plain = !w.plan.sparsity && !w.plan.lowRank && q && w.path === 'nbits' && (q.method === 'rtn' || !w.needsHessian);
  if (plain && q && alpha === 1) {
    const spec = nbitsSpec(q, c.where);
    const pw = c.pool && externalRef(wt) ? sharedPacked(K, N, spec, newPacked(K, N, spec)) : newPacked(K, N, spec);
    await streamQuantize(c, pw, layer.transB);
    const node = await emitMatMulNBits(c.sink, c.names, {
      input: x, output: product, nodeName: `${baseName}_Q${spec.bits}`, weightStem: stem, pw, accuracyLevel: q.accuracy_level, scaleType: c.ft,
    });
    return { nodes: finish([node]), actions: [quantLabel(q, 'rtn')], sqErr: pw.sqErr, sqNorm: pw.sqNorm, usesMs: true, dropBias };
  }

  // General path: the whole weight as [K, N] float32.
  let W = await readTensorFloat32(wt, c.model.baseDir);
  if (layer.transB) W = transpose32(W, N, K);
  if (alpha !== 1) for (let i = 0; i < W.length; i++) W[i] *= alpha;
  const original = Float32Array.from(W);
  const actions: string[] = [];
  const stats = c.calib?.inputs.get(x);

  if (w.plan.sparsity) {
    const sp = w.plan.sparsity;
    let norms: Float64Array | undefined;
    if (w.needsNorms) {
      if (!stats?.sqSum) throw new CompressError(`${c.where}: Wanda needs calibration activation norms for ${x}`);
      norms = stats.sqSum.map(Math.sqrt);
    }
    prune(W, K, N, sp, norms);
    actions.push(`sparsity ${'m' in sp ? `${sp.n}:${sp.m}` : `${Math.round(sp.ratio * 100)}%`} ${norms ? 'wanda' : 'magnitude'}`);
  }

  // Each "matrix" to emit: the full weight, or two low-rank factors.
  const mats: { W: Float32Array; K: number; N: number; input: string; output: string; name: string; stem: string }[] = [];
  if (w.plan.lowRank) {
    const lr = lowRank(W, K, N, w.plan.lowRank.rank, { method: c.lowRankMethod, seed: c.seed });
    const mid = c.names.take(`${scope}/lowrank/MatMul_output_0`);
    mats.push({ W: lr.a, K, N: lr.rank, input: x, output: mid, name: `${scope}/lowrank_a/MatMul`, stem: `${stem}.lowrank_a` });
    mats.push({ W: lr.b, K: lr.rank, N, input: mid, output: product, name: `${scope}/lowrank_b/MatMul`, stem: `${stem}.lowrank_b` });
    actions.push(`lowrank r=${lr.rank} ${lr.method}`);
  } else {
    mats.push({ W, K, N, input: x, output: product, name: baseName, stem });
  }

  const nodes: onnx.INodeProto[] = [];
  let usesMs = false;
  const effective: { W: Float64Array | Float32Array; K: number; N: number }[] = [];
  const qActions = new Set<string>();
  for (const m of mats) {
    if (c.signal?.aborted) throw abortError();
    if (q && w.path === 'nbits' && (mats.length === 1 || m.K % q.block_size === 0)) {
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
      nodes.push(await emitMatMulNBits(c.sink, c.names, {
        input: m.input, output: m.output, nodeName: `${m.name}_Q${spec.bits}`, weightStem: m.stem, pw, accuracyLevel: q.accuracy_level, scaleType: c.ft,
      }));
      usesMs = true;
      effective.push({ W: dequantize(pw), K: m.K, N: m.N });
      qActions.add(quantLabel(q, method));
    } else if (q && (w.path === 'dynamic' || w.path === 'static')) {
      if (c.half) throw new CompressError(`${c.where}: 8-bit activations need a float32 model (this weight is ${dataTypeName(c.ft.dataType)})`);
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
      const common = { input: m.input, output: m.output, nodeName: m.name, weightStem: m.stem, K: m.K, N: m.N, wq, wScales: r.scales, weightType: c.weightType };
      if (w.path === 'dynamic') {
        nodes.push(...await emitDynamicW8A8(c.sink, c.names, c.actCache, common));
      } else {
        const st = c.calib?.inputs.get(m.input) ?? stats;
        if (!st || !Number.isFinite(st.min) || m.input !== x) {
          throw new CompressError(`${c.where}: static activation quantization needs calibrated ranges for ${m.input}${m.input !== x ? ' (a low-rank factor\'s input is not calibrated; use dynamic activations with low rank)' : ''}`);
        }
        nodes.push(...await emitStaticW8A8(c.sink, c.names, c.actCache, { ...common, range: { min: st.min, max: st.max } }));
      }
      effective.push({ W: dequantizeGrid(r, m.K, m.N, grid.groupSize), K: m.K, N: m.N });
      qActions.add(`w8a8 ${w.path} ${c.weightType} per-channel ${method}`);
    } else {
      if (q && mats.length > 1) qActions.add(`factor K=${m.K} kept in float (not a multiple of block ${q.block_size})`);
      const wn = c.names.take(m.stem);
      await c.sink.add(wn, c.ft.dataType, [m.K, m.N], c.half ? c.ft.encode(m.W) : m.W);
      nodes.push(mkNode('MatMul', [m.input, wn], [m.output], { name: c.names.take(m.name) }));
      effective.push({ W: m.W, K: m.K, N: m.N });
    }
  }
  if (q && w.plan.lowRank && q.method === 'gptq') qActions.add('gptq → rtn on low-rank factors');
  actions.push(...qActions);

  // Reconstruction error of the weight the new graph actually uses.
  const eff = effective.length === 1 ? effective[0].W : product2(effective[0].W, effective[1].W, K, effective[0].N, N);
  let sqErr = 0;
  let sqNorm = 0;
  for (let i = 0; i < K * N; i++) {
    const d = original[i] - eff[i];
    sqErr += d * d;
    sqNorm += original[i] * original[i];
  }
  return { nodes: finish(nodes), actions, sqErr, sqNorm, usesMs, dropBias };
}

/** What a layer's output depends on (layerCache.ts header): its source, node, settings and, where used, calibration. */
async function layerCacheKey(cache: LayerCache, c: LayerCtx): Promise<string> {
  const { w } = c;
  const { layer, ...settings } = w.plan;
  const x = c.nd.input![0];
  const usesCalib = w.needsHessian || w.needsNorms || w.needsRange;
  return cache.key({
    source: await sourceIdentity(c.wt, c.model),
    node: Buffer.from(onnx.NodeProto.encode(c.nd as onnx.NodeProto).finish()).toString('base64'),
    layer: { name: layer.name, op: layer.op, K: layer.K, N: layer.N, transB: layer.transB, weight: layer.weight, nodeIndex: layer.nodeIndex },
    settings, quant: w.quant ?? null, path: w.path ?? null, needs: [w.needsHessian, w.needsNorms, w.needsRange],
    weightType: c.weightType, lowRankMethod: c.lowRankMethod, seed: c.seed,
    calibration: usesCalib ? statsDigest(c.calib?.inputs.get(x)) : null,
  });
}

function gptqOrFail(w: Float32Array, K: number, N: number, h: Float64Array, grid: Parameters<typeof gptq>[4], where: string): GridResult {
  try {
    return gptq(w, K, N, h, grid);
  } catch (err) {
    throw new CompressError(`${where}: ${(err as Error).message}`);
  }
}

function product2(a: ArrayLike<number>, b: ArrayLike<number>, K: number, r: number, N: number): Float64Array {
  const out = new Float64Array(K * N);
  for (let i = 0; i < K; i++) {
    for (let p = 0; p < r; p++) {
      const v = a[i * r + p];
      if (v === 0) continue;
      for (let j = 0; j < N; j++) out[i * N + j] += v * b[p * N + j];
    }
  }
  return out;
}

function transpose32(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j];
  return t;
}

function attrFloat(n: onnx.INodeProto, name: string, dflt: number): number {
  const a = (n.attribute ?? []).find((x) => x.name === name);
  return a ? (a.f ?? dflt) : dflt;
}

/**
 * Feed a weight to the RTN quantizer in slices. Weights in external data (float32, float16 or
 * bfloat16) are read slice by slice straight from the file (the next slice is read while this one is
 * converted to float32 and quantized), so a 16-bit source never has a float32 copy of the whole
 * tensor; inline weights are read whole (they are in memory already).
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
  if (ext.length !== K * N * es) throw new CompressError(`${c.where}: external data of ${c.wt.name} has ${ext.length} bytes, its shape needs ${K * N * es}`);
  let rowsPer = Math.max(1, Math.floor(c.chunkBytes / (rowLen * 4)));
  // [K, N] slices are whole groups of 4 blocks: threads never share a byte of a packed zero-point row.
  if (!transB) rowsPer = Math.max(pw.blockSize * 4, rowsPer - (rowsPer % (pw.blockSize * 4)));
  rowsPer = Math.min(rowsPer, totalRows); // no bigger buffers than the weight: they cost GC and page faults
  const fh = await fs.promises.open(file, 'r').catch(() => {
    throw new CompressError(`${c.where}: external data file not found: ${file}`, file, c.wt.name ?? undefined);
  });
  // Two buffers: one being filled from disk while the other is quantized, and for 16-bit sources a third
  // that holds the slice converted to float32. Reused across layers: fresh 30 MB allocations per layer
  // cost more in GC and page faults than the reads themselves.
  const need = rowsPer * rowLen * 4;
  if (c.streamBuffers.length < 3 || c.streamBuffers[0].length < need) {
    c.streamBuffers.splice(0, 3, Buffer.allocUnsafe(need), Buffer.allocUnsafe(need), Buffer.allocUnsafe(need));
  }
  const bufs = c.streamBuffers;
  const read = async (row0: number, i: number) => {
    const rows = Math.min(rowsPer, totalRows - row0);
    const want = rows * rowLen * es;
    let got = 0;
    while (got < want) {
      const { bytesRead } = await fh.read(bufs[i], got, want - got, ext.offset + row0 * rowLen * es + got);
      if (bytesRead === 0) throw new CompressError(`${c.where}: external data of ${c.wt.name} is truncated (${file})`, file, c.wt.name ?? undefined);
      got += bytesRead;
    }
    return rows;
  };
  const conv = new Float32Array(bufs[2].buffer, bufs[2].byteOffset, rowsPer * rowLen);
  // Parallel: slices converted into `threads + 1` shared slots, each quantized on a free thread.
  const pool = c.pool;
  const slots = pool ? Array.from({ length: pool.threads + 1 }, () => new Float32Array(new SharedArrayBuffer(rowsPer * rowLen * 4))) : [];
  const busy: Promise<unknown>[] = [];
  try {
    let pending: Promise<number> | undefined = read(0, 0);
    for (let row0 = 0, i = 0, s = 0; row0 < totalRows; row0 += rowsPer, i ^= 1, s++) {
      const rows = await pending!;
      const n = rows * rowLen;
      const b = bufs[i];
      if (pool) {
        const slot = s % slots.length;
        await busy[slot]?.catch(() => undefined);
        c.ft.decode(b.subarray(0, n * es), n, slots[slot]);
      }
      const next = row0 + rowsPer;
      pending = next < totalRows ? read(next, i ^ 1) : undefined;
      if (pool) {
        const slot = s % slots.length;
        const job = pool.run({ pw, rows: slots[slot].subarray(0, n), row0, count: rows, transB });
        parts.push(job);
        busy[slot] = job;
      } else if (es === 4) {
        feed(new Float32Array(b.buffer, b.byteOffset, n), row0, rows);
      } else {
        c.ft.decode(b.subarray(0, n * es), n, conv);
        feed(conv.subarray(0, n), row0, rows);
      }
      if (c.signal?.aborted) {
        await pending?.catch(() => undefined);
        await Promise.allSettled(parts);
        throw abortError();
      }
    }
    await total();
  } finally {
    await Promise.allSettled(parts);
    await fh.close();
  }
}

async function* fileChunks(file: string, offset: number, length: number, name: string, chunk = 16 * 1024 * 1024): AsyncGenerator<Uint8Array> {
  const fh = await fs.promises.open(file, 'r').catch(() => {
    throw new CompressError(`tensor ${name}: external data file not found: ${file}`, file, name);
  });
  try {
    const buf = Buffer.allocUnsafe(Math.min(chunk, Math.max(length, 1)));
    for (let done = 0; done < length;) {
      const want = Math.min(buf.length, length - done);
      const { bytesRead } = await fh.read(buf, 0, want, offset + done);
      if (bytesRead === 0) throw new CompressError(`tensor ${name}: external data truncated in ${file}`, file, name);
      done += bytesRead;
      yield buf.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}

async function diskBytes(file: string, model?: LoadedModel): Promise<number> {
  let total = (await fs.promises.stat(file)).size;
  const m = model ?? (await readModel(file));
  const files = new Set<string>();
  for (const t of m.proto.graph?.initializer ?? []) {
    const ext = externalRef(t);
    if (ext) files.add(resolveExternal(m.baseDir, ext.location));
  }
  for (const f of files) total += (await fs.promises.stat(f).catch(() => ({ size: 0 }))).size;
  return total;
}

function abortError(): Error {
  const e = new Error('compression cancelled');
  e.name = 'AbortError';
  return e;
}
