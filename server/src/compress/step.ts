// What a compression method plugs into: the interfaces of the per-layer steps and whole-graph passes
// that compress/methods.ts registers, and the context compress/pipeline.ts hands them. Kept apart from
// the table so that a step's own file (quantizeStep.ts) and the pipeline import these without a cycle.
//
// A layer goes through the registered steps in table order. Each step first decides, from the recipe
// and the layer's plan, what it will do to the layer (or nothing); the pipeline gathers what those
// decisions need from calibration, then transforms the layer:
//   `weights` steps rewrite the float matrices the layer computes with (prune them, factor one into
//   two), in order, starting from the layer's [K, N] weight;
//   one `emit` step (the last that decided something) turns each matrix into nodes (quantized kernels);
//   without one, each matrix is written as a float MatMul (`emitFloat`).
// Whole-graph passes run once per model, on the assembled graph, after the layers.
import type { Recipe } from '../config/recipe';
import type { SectionName } from '../config/methods';
import type { PlannedLayer } from '../config/planner';
import type { LoadedModel } from '../model/onnx';
import { OnnxError, onnx } from '../model/onnx';
import { node as mkNode } from '../model/build';
import type { CalibrationData } from './calibrate';
import type { Names, TensorSink } from './emit';
import type { FloatType } from '../model/floatTypes';
import type { QuantPool } from './parallel';

export class CompressError extends OnnxError {}

export function abortError(): Error {
  const e = new Error('compression cancelled');
  e.name = 'AbortError';
  return e;
}

/** What a step's decision needs calibration to collect for the layer's input. */
export interface Needs {
  hessian?: boolean;
  norms?: boolean;
  range?: boolean;
}

/** A decision of one step for one layer: the step's own data, and what it needs. */
export interface Decision {
  needs?: Needs;
  /** The decision's part of the layer cache key (compress/layerCache.ts); undefined: the layer is not cached. */
  cacheKey: unknown;
  /** The step changes the number of matrices (a factorization): later steps see inputs other than the layer's. */
  factorizes?: boolean;
}

/** What the earlier steps decided for this layer, by section. */
export type Decided = ReadonlyMap<SectionName, Decision>;

/** One matrix the layer computes with: the whole weight, or a low-rank factor. */
export interface Mat {
  W: Float32Array;
  K: number;
  N: number;
  input: string;
  output: string;
  name: string;
  stem: string;
}

/** The layer as the `weights` steps see it (and the emit step after them). */
export interface WeightState {
  mats: Mat[];
  /** Report lines, in step order. */
  actions: string[];
  /** The layer's input tensor (the one calibration has statistics for). */
  x: string;
  /** Scope of the node's name (`/model/layers.0/mlp/up_proj`), for names of new nodes. */
  scope: string;
}

/** The matrices an emit step produced: nodes, the weights they compute with (for the error), custom-op domains. */
export interface Emitted {
  nodes: onnx.INodeProto[];
  effective: { W: Float64Array | Float32Array; K: number; N: number }[];
  actions: string[];
  domains: string[];
}

/** A whole layer's output from a step that streams its weight (no other step on the layer). */
export interface Streamed {
  nodes: onnx.INodeProto[];
  actions: string[];
  sqErr: number;
  sqNorm: number;
  domains: string[];
}

/** What every step of one layer gets. */
export interface LayerCtx {
  nd: onnx.INodeProto;
  wt: onnx.ITensorProto;
  plan: PlannedLayer;
  model: LoadedModel;
  sink: TensorSink;
  names: Names;
  calib?: CalibrationData;
  /** The weight is stored in a 16-bit float type (`ft`); the graph computes in that type. */
  half: boolean;
  ft: FloatType;
  where: string;
  /** Name of the layer's node (or `<op>_<index>`), the stem of new nodes' names. */
  baseName: string;
  /** The tensor the layer's product writes: the node's output, or the input of the Gemm bias Add. */
  product: string;
  chunkBytes: number;
  /** Slice buffers shared by all streamed layers of one run. */
  streamBuffers: Buffer[];
  /** Worker threads for streamed layers (parallel.ts); absent: this thread does the work. */
  pool?: QuantPool;
  /** Per-run state of each step (`LayerStep.runState`), shared by all layers of one run. */
  state: ReadonlyMap<SectionName, unknown>;
  signal?: AbortSignal;
}

interface StepBase<D extends Decision> {
  /** The recipe section (config/methods.ts) whose plan entries turn the step on. */
  section: SectionName;
  /** What the step does to this layer, or undefined. `decided` holds the earlier steps' decisions. */
  decide(recipe: Recipe, plan: PlannedLayer, decided: Decided): D | undefined;
  /** Per-run state shared by the layers of one run (activation quantizers shared by q/k/v). */
  runState?(): unknown;
}

export interface WeightsStep<D extends Decision = Decision> extends StepBase<D> {
  kind: 'weights';
  apply(c: LayerCtx, d: D, s: WeightState): void | Promise<void>;
}

export interface EmitStep<D extends Decision = Decision> extends StepBase<D> {
  kind: 'emit';
  emit(c: LayerCtx, d: D, s: WeightState): Promise<Emitted>;
  /** The layer without loading its weight whole, when this is its only step; undefined: take the general path. */
  stream?(c: LayerCtx, d: D): Promise<Streamed | undefined>;
}

export type LayerStep = WeightsStep | EmitStep;

/** The output graph as whole-graph passes see it, just before it is written. */
export interface GraphPassCtx {
  recipe: Recipe;
  nodes: onnx.INodeProto[];
  opsetImport: onnx.IOperatorSetIdProto[];
  /** Custom-op domains the compressed layers' nodes use. */
  domains: ReadonlySet<string>;
}

export interface GraphPass {
  name: string;
  applies(recipe: Recipe): boolean;
  run(g: GraphPassCtx): void | Promise<void>;
}

/** A matrix written as it is: a float initializer (in the layer's float type) and a MatMul. */
export async function emitFloat(
  c: LayerCtx,
  m: Mat,
): Promise<{ node: onnx.INodeProto; effective: Emitted['effective'][number] }> {
  const wn = c.names.take(m.stem);
  await c.sink.add(wn, c.ft.dataType, [m.K, m.N], c.half ? c.ft.encode(m.W) : m.W);
  return {
    node: mkNode('MatMul', [m.input, wn], [m.output], { name: c.names.take(m.name) }),
    effective: { W: m.W, K: m.K, N: m.N },
  };
}
