// Graph validation before anything runs: a model file is untrusted input, and what onnxruntime would
// only reject at bench (or what would crash a transform) is refused here, naming the node, tensor or
// key at fault. Checked: the graph has inputs and outputs; every node input is a graph input, an
// initializer or some node's output; no value is produced twice; the nodes form no cycle; tensor dims
// are non-negative integers whose product fits; a tensor's stored bytes match its shape; external-data
// offsets and lengths are numbers and lie within their data file. Iterative throughout (Kahn's
// algorithm, no recursion on graph depth), linear in the size of the graph, and reads no weight bytes
// (one stat per external data file). `readModel` calls it, so inspect, check, quantize and bench all do.
import * as fs from 'node:fs';
import type { onnx } from 'onnx-proto';
import { GraphError, DataType, elementSize, dataTypeName, externalRef, resolveExternal } from './onnx';

export { GraphError };

/** Larger than any real tensor (2^50 bytes = 1 PiB) and small enough that sizes stay exact doubles. */
const MAX_TENSOR_BYTES = 2 ** 50;

type LongLike = number | { toNumber(): number; toString(): string } | null | undefined;
function dimOf(v: LongLike): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : Number(v.toString());
}

function checkDims(dims: LongLike[] | null | undefined, what: string, file: string, where: string): number {
  let elements = 1;
  for (const raw of dims ?? []) {
    const d = dimOf(raw);
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new GraphError(
        `${file}: ${what} has dimension ${String(raw)}; dims must be non-negative integers`,
        file,
        where,
      );
    }
    elements *= d;
    if (elements > MAX_TENSOR_BYTES) {
      throw new GraphError(
        `${file}: ${what} has shape [${(dims ?? []).map(String)}], over ${MAX_TENSOR_BYTES} elements`,
        file,
        where,
      );
    }
  }
  return elements;
}

/** Elements stored in a tensor's typed fields (when it has no raw data). */
function typedCount(t: onnx.ITensorProto): number {
  const dt = t.dataType ?? 0;
  if (dt === DataType.FLOAT) return t.floatData?.length ?? 0;
  if (dt === DataType.DOUBLE) return t.doubleData?.length ?? 0;
  if (dt === DataType.INT64) return t.int64Data?.length ?? 0;
  if (dt === DataType.UINT32 || dt === DataType.UINT64) return t.uint64Data?.length ?? 0;
  return t.int32Data?.length ?? 0;
}

function checkTensor(t: onnx.ITensorProto, baseDir: string, file: string, sizes: Map<string, number>): void {
  const name = t.name ?? '';
  const what = `tensor ${name}`;
  const elements = checkDims(t.dims as LongLike[], what, file, name);
  let size: number | undefined;
  try {
    size = elementSize(t.dataType ?? 0);
  } catch {
    size = undefined; // strings and exotic types: nothing to size-check
  }
  const ext = (() => {
    try {
      return externalRef(t);
    } catch (err) {
      throw new GraphError(`${file}: ${(err as Error).message}`, file, name);
    }
  })();
  if (ext) {
    const data = resolveExternal(baseDir, ext.location, name);
    let bytes = sizes.get(data);
    if (bytes === undefined) {
      const st = fs.statSync(data, { throwIfNoEntry: false });
      if (!st) throw new GraphError(`${file}: ${what}: external data file not found: ${data}`, file, name);
      if (!st.isFile())
        throw new GraphError(`${file}: ${what}: external data ${data} is not a regular file`, file, name);
      bytes = st.size;
      sizes.set(data, bytes);
    }
    if (size !== undefined && ext.length !== elements * size) {
      throw new GraphError(
        `${file}: ${what}: external data length ${ext.length} does not match its shape ` +
          `[${(t.dims ?? []).map(String)}] of ${dataTypeName(t.dataType ?? 0)} (${elements * size} bytes)`,
        file,
        name,
      );
    }
    if (ext.offset + ext.length > bytes) {
      throw new GraphError(
        `${file}: ${what}: external data truncated: bytes ${ext.offset}..${ext.offset + ext.length} ` +
          `are past the end of ${data} (${bytes} bytes)`,
        file,
        name,
      );
    }
    return;
  }
  if (size === undefined) return;
  const stored = t.rawData && t.rawData.length > 0 ? t.rawData.length : typedCount(t) * size;
  const want = elements * size;
  // FLOAT16/BFLOAT16/INT8/UINT8/BOOL pack one element per int32 entry.
  const storedElems = t.rawData && t.rawData.length > 0 ? stored / size : typedCount(t);
  if (storedElems !== elements && !(elements === 0 && stored === 0)) {
    throw new GraphError(
      `${file}: ${what}: holds ${t.rawData?.length ? `${stored} bytes` : `${storedElems} values`}, its shape ` +
        `[${(t.dims ?? []).map(String)}] of ${dataTypeName(t.dataType ?? 0)} needs ` +
        `${t.rawData?.length ? `${want} bytes` : `${elements} values`}`,
      file,
      name,
    );
  }
}

/** Throws GraphError naming what is wrong; returns quietly for a graph that may be run. */
export function validateModel(proto: onnx.IModelProto, baseDir: string, file = '<memory>'): void {
  const g = proto.graph;
  if (!g) throw new GraphError(`${file}: not a valid ONNX model (no graph)`, file);
  const inits = g.initializer ?? [];
  const nodes = g.node ?? [];
  const sizes = new Map<string, number>();
  const available = new Set<string>();
  for (const t of inits) {
    checkTensor(t, baseDir, file, sizes);
    available.add(t.name ?? '');
  }
  const realInputs = (g.input ?? []).filter((i) => !available.has(i.name ?? ''));
  if (realInputs.length === 0) {
    throw new GraphError(
      `${file}: the graph has no inputs (every graph input is an initializer or there are none)`,
      file,
    );
  }
  if ((g.output ?? []).length === 0) throw new GraphError(`${file}: the graph has no outputs`, file);
  for (const v of [...(g.input ?? []), ...(g.output ?? [])]) {
    const dims = v.type?.tensorType?.shape?.dim ?? [];
    for (const d of dims) {
      if (d.dimParam) continue;
      const x = dimOf(d.dimValue as LongLike);
      if (!Number.isSafeInteger(x) || x < 0) {
        throw new GraphError(
          `${file}: graph input/output ${v.name} has dimension ${String(d.dimValue)}; ` +
            `dims must be non-negative integers`,
          file,
          v.name ?? undefined,
        );
      }
    }
  }
  for (const i of g.input ?? []) available.add(i.name ?? '');

  // Who produces each value; SSA: a value is produced once.
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => {
    const label = nodeLabel(n, i);
    if (n.opType === 'Constant') {
      const v = (n.attribute ?? []).find((a) => a.name === 'value')?.t;
      if (v) checkTensor({ ...v, name: n.output?.[0] ?? v.name }, baseDir, file, sizes);
    }
    for (const o of n.output ?? []) {
      if (o === '') continue;
      if (available.has(o)) {
        throw new GraphError(
          `${file}: node ${label} writes '${o}', which is a graph input or initializer`,
          file,
          label,
        );
      }
      const prev = producer.get(o);
      if (prev !== undefined) {
        throw new GraphError(
          `${file}: '${o}' is produced twice (nodes ${nodeLabel(nodes[prev], prev)} and ${label})`,
          file,
          label,
        );
      }
      producer.set(o, i);
    }
  });
  // Inputs defined, and an edge list for the cycle check.
  const indegree = new Int32Array(nodes.length);
  const consumers: number[][] = nodes.map(() => []);
  nodes.forEach((n, i) => {
    for (const x of n.input ?? []) {
      if (x === '') continue; // an omitted optional input
      const p = producer.get(x);
      if (p !== undefined) {
        consumers[p].push(i);
        indegree[i]++;
      } else if (!available.has(x)) {
        throw new GraphError(
          `${file}: node ${nodeLabel(n, i)} reads '${x}', which is no graph input, initializer ` + `or node output`,
          file,
          nodeLabel(n, i),
        );
      }
    }
  });
  for (const o of g.output ?? []) {
    const name = o.name ?? '';
    if (!producer.has(name) && !available.has(name)) {
      throw new GraphError(`${file}: graph output '${name}' is produced by no node`, file, name);
    }
  }
  // Kahn's algorithm: whatever is left with inputs pending sits on a cycle.
  const queue: number[] = [];
  for (let i = 0; i < nodes.length; i++) if (indegree[i] === 0) queue.push(i);
  let done = 0;
  while (done < queue.length) {
    const i = queue[done++];
    for (const c of consumers[i]) if (--indegree[c] === 0) queue.push(c);
  }
  if (done < nodes.length) {
    // Walk back through still-pending producers from a stuck node until a node repeats: it is on a cycle.
    let cur = indegree.findIndex((d) => d > 0);
    const seen = new Set<number>();
    while (!seen.has(cur)) {
      seen.add(cur);
      const n = nodes[cur];
      const back = (n.input ?? []).map((x) => producer.get(x)).find((p) => p !== undefined && indegree[p] > 0);
      if (back === undefined) break;
      cur = back;
    }
    const label = nodeLabel(nodes[cur], cur);
    throw new GraphError(
      `${file}: the graph has a cycle through node ${label} (${nodes.length - done} ` +
        `of ${nodes.length} nodes can never run)`,
      file,
      label,
    );
  }
}

function nodeLabel(n: onnx.INodeProto, i: number): string {
  return n.name || `${n.opType ?? '?'}_${i}`;
}
