// Layer names that survive exporters. A compressible layer gets its Hugging Face module name from three
// kinds of evidence, in this order:
//  1. the weight initializer's name (`transformer.h.0.mlp.c_proj.weight`), which torch.onnx and Optimum
//     keep whenever they store the parameter as it is — the most reliable, because it is the module's
//     own state-dict key, whatever the node scopes say;
//  2. the graph's structure: the projection whose output becomes the `logits` output, or that reads the
//     embedding matrix (a tied head), is `lm_head`, however it is named (`MatMul_422`);
//  3. the node's scope (`/model/layers.3/mlp/down_proj/MatMul`), with the exporter's de-duplication
//     suffixes stripped (`c_proj_1` → `c_proj`) and the family's root restored (`h.0.attn` →
//     `transformer.h.0.attn`) when the scopes of a traced forward skipped it.
// Which suffixes are de-duplication and which roots exist comes from the family table (config/families.ts).
import { onnx } from './onnx';
import { Family, familyFromWeights, PROJECTION_LEAVES } from '../config/families';

/** Ops a head's output passes through on its way to `logits` (bias, reshapes, soft-capping, casts). */
const PASS_THROUGH = new Set([
  'Reshape',
  'Add',
  'Transpose',
  'Cast',
  'Identity',
  'Mul',
  'Div',
  'Tanh',
  'Squeeze',
  'Unsqueeze',
]);

/** Weight names that are exporter-made, not state-dict keys (`onnx::MatMul_422`, dynamo's `val_12`). */
const GENERATED = /^(onnx::|val_\d|_val_\d|\/)/;

/**
 * Module name from an exporter's scoped node name:
 * `/model/layers.3/mlp/down_proj/MatMul` → `model.layers.3.mlp.down_proj`.
 */
export function moduleFromNodeName(node: string): string | undefined {
  if (!node.startsWith('/')) return undefined;
  const parts = node.slice(1).split('/');
  if (parts.length < 2) return undefined;
  return parts.slice(0, -1).join('.');
}

/**
 * Module name from a weight initializer name: `model.layers.3.mlp.down_proj.weight` → `model.layers.3.mlp.down_proj`;
 * a packed MatMulNBits weight (`….weight_Q4`) names its module too. Exporter-made names give nothing.
 */
export function moduleFromWeightName(weight: string): string | undefined {
  if (GENERATED.test(weight)) return undefined;
  const m = /^([A-Za-z_][\w.]*)\.weight(?:_Q\d+)?$/.exec(weight);
  return m ? m[1] : undefined;
}

/** `c_proj_1` → `c_proj` where the stem is a projection some family has (an exporter's de-duplication suffix). */
export function stripDedupSuffix(segment: string): string {
  const m = /^(.+?)_\d+$/.exec(segment);
  return m && (PROJECTION_LEAVES.has(m[1]) || m[1] === 'lm_head') ? m[1] : segment;
}

/** A scope-derived name with de-duplication suffixes removed and the family's root restored. */
export function normalizeScopeName(name: string, family?: Family): string {
  let n = name.split('.').map(stripDedupSuffix).join('.');
  if (family) {
    const blocks = family.modules.blocks; // `transformer.h`, `model.layers`
    const root = blocks.slice(0, blocks.lastIndexOf('.') + 1); // `transformer.`
    const rel = blocks.slice(root.length); // `h`
    if (root && !n.startsWith(root) && new RegExp(`^${rel}\\.\\d+(\\.|$)`).test(n)) n = root + n;
  }
  return n;
}

export interface LayerNamer {
  /** The HF module name of the projection `node` (index `nodeIndex`) whose weight is `weight`. */
  name(node: onnx.INodeProto, nodeIndex: number, weight: string): string;
  /** The family the initializer names follow, if any. */
  family?: Family;
}

export function layerNamer(g: onnx.IGraphProto, initializerNames: Iterable<string>): LayerNamer {
  const nodes = g.node ?? [];
  const family = familyFromWeights(initializerNames);
  const consumers = new Map<string, onnx.INodeProto[]>();
  for (const n of nodes)
    for (const i of n.input ?? []) {
      let c = consumers.get(i);
      if (!c) consumers.set(i, (c = []));
      c.push(n);
    }
  // Embedding matrices: initializers a Gather reads rows of. A projection over one is a tied head.
  const embeddings = new Set<string>();
  for (const n of nodes) if (n.opType === 'Gather' && n.input?.[0]) embeddings.add(n.input[0]);
  const outputs = new Set((g.output ?? []).map((o) => o.name ?? ''));

  /** Whether `value` becomes the `logits` output through pass-through ops only. */
  const reachesLogits = (value: string, depth = 0): boolean => {
    if (outputs.has(value)) return value === 'logits';
    if (depth > 8) return false;
    const next = consumers.get(value) ?? [];
    return (
      next.length === 1 && PASS_THROUGH.has(next[0].opType ?? '') && reachesLogits(next[0].output?.[0] ?? '', depth + 1)
    );
  };

  return {
    family,
    name(node, nodeIndex, weight) {
      const op = node.opType ?? '';
      const nodeName = node.name || `${op}_${nodeIndex}`;
      const stem = weight.replace(/_Q\d+$/, '');
      const tied = embeddings.has(stem);
      const fromWeight = tied ? undefined : moduleFromWeightName(weight);
      if (fromWeight) return fromWeight;
      if (tied || reachesLogits(node.output?.[0] ?? '')) return 'lm_head';
      const scoped = moduleFromNodeName(nodeName);
      return scoped ? normalizeScopeName(scoped, family) : `${op}_${nodeIndex}`;
    },
  };
}
