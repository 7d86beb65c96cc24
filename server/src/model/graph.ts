// The one model-graph model: what a model is, as the rest of HAQA needs to know it — its inputs and
// outputs and the compressible layers (MatMul/Gemm with a constant weight), named the way Hugging Face
// names modules (model/layerNames.ts). Built from the graph alone: no weight bytes are read.
import * as path from 'node:path';
import { LoadedModel, onnx, readModel, tensorDims, dataTypeName, attrInt, externalRef, elementSize, num } from './onnx';
import { layerNamer, LayerNamer } from './layerNames';

export type LayerOp = 'MatMul' | 'Gemm' | 'MatMulNBits';

export interface Layer {
  /** Module name, e.g. `model.layers.3.mlp.down_proj` (or a stable fallback like `MatMul_12`). */
  name: string;
  /** Name of the ONNX node. */
  node: string;
  nodeIndex: number;
  op: LayerOp;
  /** Initializer holding the weight. */
  weight: string;
  /** Input features (the reduction dimension) and output features. */
  K: number;
  N: number;
  /** Gemm with transB=1 stores the weight as [N, K]. */
  transB: boolean;
  /** Element type of the stored weight (`FLOAT`, `FLOAT16`, `UINT8` for MatMulNBits). */
  dtype: string;
  /** Bits per weight as stored (32 for fp32, 4 or 8 for MatMulNBits). */
  bits: number;
  /** MatMulNBits block size, when already quantized. */
  blockSize?: number;
  params: number;
  /** Bytes the weight occupies now. */
  bytes: number;
}

export interface ValueInfo {
  name: string;
  dtype: string;
  shape: (number | string)[];
}

export interface ModelGraph {
  path: string;
  irVersion: number;
  opsets: Record<string, number>;
  producer: string;
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  layers: Layer[];
  nodeCount: number;
  opTypes: Record<string, number>;
  /** Size of the .onnx file plus external data, from the graph's own accounting. */
  weightBytes: number;
  usesExternalData: boolean;
  totals: { params: number; layerParams: number; layerBytes: number };
}

export async function inspectModel(file: string): Promise<ModelGraph> {
  return inspectLoaded(await readModel(file));
}

export { moduleFromNodeName, moduleFromWeightName } from './layerNames';

function valueInfo(v: onnx.IValueInfoProto): ValueInfo {
  const tt = v.type?.tensorType;
  return {
    name: v.name ?? '',
    dtype: dataTypeName(tt?.elemType ?? 0),
    shape: (tt?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : num(d.dimValue as never))),
  };
}

export function inspectLoaded(model: LoadedModel): ModelGraph {
  const g = model.proto.graph!;
  const inits = new Map<string, onnx.ITensorProto>();
  for (const t of g.initializer ?? []) inits.set(t.name ?? '', t);
  // Weights may also arrive as Constant nodes (some exporters do this).
  for (const n of g.node ?? []) {
    if (n.opType === 'Constant' && n.output?.length === 1) {
      const v = (n.attribute ?? []).find((a) => a.name === 'value')?.t;
      if (v) inits.set(n.output[0], { ...v, name: n.output[0] });
    }
  }

  const namer = layerNamer(g, inits.keys());
  const layers: Layer[] = [];
  const taken = new Map<string, number>();
  const opTypes: Record<string, number> = {};
  (g.node ?? []).forEach((node, nodeIndex) => {
    const op = node.opType ?? '';
    opTypes[op] = (opTypes[op] ?? 0) + 1;
    const layer = layerOf(node, nodeIndex, inits, namer);
    if (!layer) return;
    const count = taken.get(layer.name) ?? 0;
    taken.set(layer.name, count + 1);
    if (count > 0) layer.name = `${layer.name}#${count}`;
    layers.push(layer);
  });

  let params = 0;
  let weightBytes = 0;
  let usesExternalData = false;
  for (const t of g.initializer ?? []) {
    const n = tensorDims(t).reduce((a, b) => a * b, 1);
    params += n;
    try {
      weightBytes += n * elementSize(t.dataType ?? 0);
    } catch {
      /* strings and other exotic tensors don't count as weights */
    }
    if (externalRef(t)) usesExternalData = true;
  }
  const opsets: Record<string, number> = {};
  for (const o of model.proto.opsetImport ?? []) opsets[o.domain || 'ai.onnx'] = num(o.version as never);

  return {
    path: model.path,
    irVersion: num(model.proto.irVersion as never),
    opsets,
    producer: `${model.proto.producerName ?? ''} ${model.proto.producerVersion ?? ''}`.trim(),
    inputs: (g.input ?? []).filter((i) => !inits.has(i.name ?? '')).map(valueInfo),
    outputs: (g.output ?? []).map(valueInfo),
    layers,
    nodeCount: g.node?.length ?? 0,
    opTypes,
    weightBytes,
    usesExternalData,
    totals: {
      params,
      layerParams: layers.reduce((s, l) => s + l.params, 0),
      layerBytes: layers.reduce((s, l) => s + l.bytes, 0),
    },
  };
}

function layerOf(
  node: onnx.INodeProto,
  nodeIndex: number,
  inits: Map<string, onnx.ITensorProto>,
  namer: LayerNamer,
): Layer | undefined {
  const op = node.opType;
  const nodeName = node.name || `${op}_${nodeIndex}`;
  const weightName = node.input?.[1] ?? '';
  const w = inits.get(weightName);
  if (!w) return undefined;
  const name = namer.name(node, nodeIndex, weightName);
  const dims = tensorDims(w);

  if (op === 'MatMul' || op === 'Gemm') {
    if (dims.length !== 2) return undefined; // batched constant matmuls are not linear layers
    const transB = op === 'Gemm' && attrInt(node, 'transB', 0) === 1;
    const [K, N] = transB ? [dims[1], dims[0]] : dims;
    const size = elementSizeOrZero(w.dataType ?? 0);
    return {
      name,
      node: nodeName,
      nodeIndex,
      op,
      weight: weightName,
      K,
      N,
      transB,
      dtype: dataTypeName(w.dataType ?? 0),
      bits: size * 8,
      params: K * N,
      bytes: K * N * size,
    };
  }
  if (op === 'MatMulNBits' && node.domain === 'com.microsoft') {
    const K = attrInt(node, 'K', 0);
    const N = attrInt(node, 'N', 0);
    const bits = attrInt(node, 'bits', 4);
    const blockSize = attrInt(node, 'block_size', 32);
    return {
      name: name.replace(/_Q\d+$/, ''),
      node: nodeName,
      nodeIndex,
      op: 'MatMulNBits',
      weight: weightName,
      K,
      N,
      transB: true,
      dtype: `INT${bits}`,
      bits,
      blockSize,
      params: K * N,
      bytes: Math.ceil((K * N * bits) / 8),
    };
  }
  return undefined;
}

function elementSizeOrZero(t: number): number {
  try {
    return elementSize(t);
  } catch {
    return 0;
  }
}

/** The config.json beside a model, if there is one (path only; parsing lives in config/hfConfig). */
export function configPathFor(modelPath: string): string {
  return path.join(path.dirname(modelPath), 'config.json');
}
