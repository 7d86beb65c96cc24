// Small constructors for ONNX graphs: the vocabulary that transforms, `haqa synth` and tests use
// to write nodes, so none of them spells out protobuf objects by hand.
import { onnx, makeAttribute, DataType } from './onnx';

export type AttrValue = number | number[] | string | onnx.ITensorProto | { float: number } | { floats: number[] };

export function node(
  opType: string,
  inputs: string[],
  outputs: string[],
  opts: { name?: string; domain?: string; attrs?: Record<string, AttrValue> } = {},
): onnx.NodeProto {
  const attribute = Object.entries(opts.attrs ?? {}).map(([k, v]) => {
    if (typeof v === 'object' && v !== null && 'float' in v)
      return makeAttribute(k, (v as { float: number }).float, 'float');
    if (typeof v === 'object' && v !== null && 'floats' in v)
      return makeAttribute(k, (v as { floats: number[] }).floats, 'float');
    return makeAttribute(
      k,
      v as number | number[] | string | onnx.ITensorProto,
      typeof v === 'number' ? 'int' : undefined,
    );
  });
  return onnx.NodeProto.create({
    opType,
    input: inputs,
    output: outputs,
    name: opts.name ?? '',
    domain: opts.domain ?? '',
    attribute,
  });
}

/** A tensor-typed graph input or output; string dims are symbolic (`batch`, `sequence_length`). */
export function valueInfo(name: string, elemType: DataType, shape: (number | string)[]): onnx.ValueInfoProto {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  });
}

export function model(
  graph: {
    name: string;
    node: onnx.INodeProto[];
    input: onnx.IValueInfoProto[];
    output: onnx.IValueInfoProto[];
    initializer: onnx.ITensorProto[];
  },
  opts: { opset?: number; msOpset?: number; producer?: string } = {},
): onnx.ModelProto {
  const opsetImport = [{ domain: '', version: opts.opset ?? 17 }];
  if (opts.msOpset !== undefined || graph.node.some((n) => n.domain === 'com.microsoft')) {
    opsetImport.push({ domain: 'com.microsoft', version: opts.msOpset ?? 1 });
  }
  return onnx.ModelProto.create({
    irVersion: 8,
    producerName: opts.producer ?? 'haqa',
    producerVersion: '0.1.0',
    opsetImport,
    graph: onnx.GraphProto.create(graph),
  });
}
