// compressModel: a recipe applied to a model, layer by layer, written atomically.
//
// Per layer (config/planner.ts decides what): the steps of compress/methods.ts LAYER_STEPS, in table
// order (sparsity → low rank → quantization), then its GRAPH_PASSES on the whole graph; this file names
// no method. Everything that is not a planned layer passes through untouched, and the graph's inputs and
// outputs stay exactly as they were.
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
import type { Recipe } from '../config/recipe';
import type { SectionName } from '../config/methods';
import { type PlannedLayer as LayerPlan, planRecipe } from '../config/planner';
import { inspectLoaded, Layer } from '../model/graph';
import {
  DataType,
  EXTERNAL_DATA_THRESHOLD,
  ExternalDataWriter,
  LoadedModel,
  OnnxError,
  attrInt,
  dataTypeName,
  elementSize,
  externalRef,
  makeTensor,
  num,
  onnx,
  readModel,
  readTensorBytes,
  readTensorFloat32,
  resolveExternal,
  tensorDims,
  writeModel,
  writeFailure,
} from '../model/onnx';
import { node as mkNode } from '../model/build';
import { CalibrationData, InputNeeds, calibrate } from './calibrate';
import { Names, TensorSink } from './emit';
import { LayerCache, sourceIdentity, statsDigest } from './layerCache';
import { QuantPool, defaultThreads } from './parallel';
import { floatType } from '../model/floatTypes';
import { GRAPH_PASSES, LAYER_STEPS } from './methods';
import { CompressError, Decision, EmitStep, LayerCtx, LayerStep, WeightState, abortError, emitFloat } from './step';
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

export { CompressError } from './step';

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
    needs.set(x, {
      K: prev.K,
      hessian: prev.hessian || want.hessian,
      norms: prev.norms || want.norms,
      range: prev.range || want.range,
    });
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
  const state = new Map<SectionName, unknown>(
    LAYER_STEPS.flatMap((s) => (s.runState ? [[s.section, s.runState()] as const] : [])),
  );
  const streamBuffers: Buffer[] = [];

  const replaced = new Map<number, onnx.INodeProto[]>();
  const dropped = new Set<string>(); // weights no longer referenced
  const droppedNodes = new Set<number>();
  const reports: LayerReport[] = [];
  let sqErrAll = 0;
  let sqNormAll = 0;
  const domains = new Set<string>();
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
        throw new CompressError(
          `${where}: weight ${layer.weight} is also a graph input, ` +
            'so it can be replaced at run time and is not a constant',
          model.path,
          layer.node,
        );
      }
      const dt = wt.dataType ?? 0;
      const ft = floatType(dt);
      if (!ft) {
        const why = `only FLOAT, FLOAT16 and BFLOAT16 weights can be compressed`;
        throw new CompressError(
          `${where}: weight ${layer.weight} is ${dataTypeName(dt)}; ${why}`,
          model.path,
          layer.weight,
        );
      }
      const half = dt !== DataType.FLOAT;
      const ctx: LayerCtx = {
        nd,
        wt,
        plan: w.plan,
        model,
        sink,
        names,
        calib,
        half,
        ft,
        where,
        signal: opts.signal,
        baseName: '',
        product: '',
        chunkBytes: opts.chunkBytes ?? STREAM_CHUNK_BYTES,
        streamBuffers,
        pool,
        state,
      };
      // Reuse across trials (layerCache.ts), unless a step's decision says the layer is not cached (W8A8
      // layers share activation quantizers, so they are always recomputed).
      const res =
        opts.layerCache && w.steps.every((s) => s.d.cacheKey !== undefined)
          ? await opts.layerCache.layer(await layerCacheKey(opts.layerCache, ctx, w), names, sink, (n, s) =>
              transformLayer({ ...ctx, names: n, sink: s }, w),
            )
          : await transformLayer(ctx, w);
      replaced.set(layer.nodeIndex, res.nodes);
      for (const d of res.domains) domains.add(d);
      reports.push({
        name: layer.name,
        actions: res.actions,
        relError: res.sqNorm > 0 ? Math.sqrt(res.sqErr / res.sqNorm) : 0,
      });
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
          kept.push(
            await writer.appendChunks(
              t.name ?? '',
              t.dataType ?? 0,
              tensorDims(t),
              fileChunks(file, ext.offset, ext.length, t.name ?? ''),
            ),
          );
        } else {
          kept.push(
            await writer.append(t.name ?? '', t.dataType ?? 0, tensorDims(t), await readTensorBytes(t, model.baseDir)),
          );
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
    for (const pass of GRAPH_PASSES) if (pass.applies(recipe)) await pass.run({ recipe, nodes, opsetImport, domains });
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
  /** The steps that act on the layer, in table order, with their decisions. */
  steps: { step: LayerStep; d: Decision }[];
  needsHessian: boolean;
  needsNorms: boolean;
  needsRange: boolean;
}

function decide(recipe: Recipe, plan: LayerPlan, g: onnx.IGraphProto): Work {
  const layer = plan.layer;
  const w: Work = { plan, active: false, steps: [], needsHessian: false, needsNorms: false, needsRange: false };
  const decided = new Map<SectionName, Decision>();
  for (const step of LAYER_STEPS) {
    const d = step.decide(recipe, plan, decided);
    if (!d) continue;
    decided.set(step.section, d);
    w.steps.push({ step, d });
  }
  if (layer.op === 'MatMulNBits') {
    if (w.steps.length) w.note = 'kept: already MatMulNBits';
    w.steps = [];
    return w;
  }
  const nd = g.node![layer.nodeIndex];
  if (layer.op === 'Gemm' && attrInt(nd, 'transA', 0) === 1) {
    w.note = 'kept: Gemm with transA=1 is not rewritten';
    w.steps = [];
    return w;
  }
  w.active = w.steps.length > 0;
  for (const { d } of w.steps) {
    w.needsHessian ||= !!d.needs?.hessian;
    w.needsNorms ||= !!d.needs?.norms;
    w.needsRange ||= !!d.needs?.range;
  }
  return w;
}

// ---------------------------------------------------------------- transforming

interface LayerOut {
  nodes: onnx.INodeProto[];
  actions: string[];
  sqErr: number;
  sqNorm: number;
  domains: string[];
  dropBias?: string;
}

async function transformLayer(c0: LayerCtx, w: Work): Promise<LayerOut> {
  const { nd, wt } = c0;
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
      product = c0.names.take(`${y}_product`);
      let cIn = cName;
      const pre: onnx.INodeProto[] = [];
      if (beta !== 1) {
        const bName = c0.names.take(`${baseName}_beta`);
        await c0.sink.add(bName, DataType.FLOAT, [], Float32Array.of(beta));
        cIn = c0.names.take(`${cName}_scaled`);
        pre.push(mkNode('Mul', [cName, bName], [cIn], { name: c0.names.take(`${baseName}_beta_Mul`) }));
      }
      bias = {
        nodes: [...pre, mkNode('Add', [product, cIn], [y], { name: c0.names.take(`${baseName}_bias_Add`) })],
        input: cIn,
      };
    }
    if (cName && beta === 0) dropBias = cName;
  }
  const finish = (nodes: onnx.INodeProto[]) => (bias ? [...nodes, ...bias.nodes] : nodes);

  const c: LayerCtx = { ...c0, baseName, product };
  const emitter = w.steps.find((s): s is { step: EmitStep; d: Decision } => s.step.kind === 'emit');

  // A step that streams the weight (RTN weight-only) when it is the layer's only one.
  if (emitter?.step.stream && w.steps.length === 1 && alpha === 1) {
    const r = await emitter.step.stream(c, emitter.d);
    if (r)
      return {
        nodes: finish(r.nodes),
        actions: r.actions,
        sqErr: r.sqErr,
        sqNorm: r.sqNorm,
        domains: r.domains,
        dropBias,
      };
  }

  // General path: the whole weight as [K, N] float32, through the weights steps, then the emit step.
  let W = await readTensorFloat32(wt, c.model.baseDir);
  if (layer.transB) W = transpose32(W, N, K);
  if (alpha !== 1) for (let i = 0; i < W.length; i++) W[i] *= alpha;
  const original = Float32Array.from(W);
  const s: WeightState = {
    mats: [{ W, K, N, input: x, output: product, name: baseName, stem }],
    actions: [],
    x,
    scope,
  };
  for (const { step, d } of w.steps) if (step.kind === 'weights') await step.apply(c, d, s);
  const actions = s.actions;

  const nodes: onnx.INodeProto[] = [];
  const domains: string[] = [];
  const effective: { W: Float64Array | Float32Array; K: number; N: number }[] = [];
  if (emitter) {
    const r = await emitter.step.emit(c, emitter.d, s);
    nodes.push(...r.nodes);
    effective.push(...r.effective);
    actions.push(...r.actions);
    domains.push(...r.domains);
  } else {
    for (const m of s.mats) {
      if (c.signal?.aborted) throw abortError();
      const f = await emitFloat(c, m);
      nodes.push(f.node);
      effective.push(f.effective);
    }
  }

  // Reconstruction error of the weight the new graph actually uses.
  const eff = effective.length === 1 ? effective[0].W : product2(effective[0].W, effective[1].W, K, effective[0].N, N);
  let sqErr = 0;
  let sqNorm = 0;
  for (let i = 0; i < K * N; i++) {
    const d = original[i] - eff[i];
    sqErr += d * d;
    sqNorm += original[i] * original[i];
  }
  return { nodes: finish(nodes), actions, sqErr, sqNorm, domains, dropBias };
}

/**
 * What a layer's output depends on (layerCache.ts header): its source, node,
 * plan, each step's decision and, where used, calibration.
 */
async function layerCacheKey(cache: LayerCache, c: LayerCtx, w: Work): Promise<string> {
  const { layer, ...settings } = w.plan;
  const x = c.nd.input![0];
  const usesCalib = w.needsHessian || w.needsNorms || w.needsRange;
  return cache.key({
    source: await sourceIdentity(c.wt, c.model),
    node: Buffer.from(onnx.NodeProto.encode(c.nd as onnx.NodeProto).finish()).toString('base64'),
    layer: {
      name: layer.name,
      op: layer.op,
      K: layer.K,
      N: layer.N,
      transB: layer.transB,
      weight: layer.weight,
      nodeIndex: layer.nodeIndex,
    },
    settings,
    steps: Object.fromEntries(w.steps.map((s) => [s.step.section, s.d.cacheKey])),
    needs: [w.needsHessian, w.needsNorms, w.needsRange],
    calibration: usesCalib ? statsDigest(c.calib?.inputs.get(x)) : null,
  });
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

async function* fileChunks(
  file: string,
  offset: number,
  length: number,
  name: string,
  chunk = 16 * 1024 * 1024,
): AsyncGenerator<Uint8Array> {
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
