// Calibration: run the fp32 model in onnxruntime on calibration inputs and collect, for the input of
// each layer that needs it, what the transforms use — XᵀX (GPTQ), per-feature Σx² (Wanda's ‖X[:,k]‖₂),
// min/max (static activation ranges). The layer inputs are exposed as extra graph outputs on a copy
// of the model; the user's file is never touched. Decoders get tokenized text (windows of seq_len with
// an empty KV cache, docs/decoder-interface.md); other models get seeded Gaussian inputs.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { DataType, LoadedModel, OnnxError, encodeModel, externalRef, makeTensor, num, onnx } from '../model/onnx';
import { node } from '../model/build';
import { Tokenizer } from '../model/tokenizer';
import { besideModel, PathError, readRegularTextSync, READ_CAPS } from '../util/paths';
import { gaussian } from './linalg';
import { tempPathFor } from '../util/atomicWrite';

export interface InputNeeds {
  /** Width of the input (the layer's K). */
  K: number;
  hessian: boolean;
  norms: boolean;
  range: boolean;
}

export interface InputStats {
  tensor: string;
  K: number;
  /** Rows (tokens) seen. */
  rows: number;
  /** XᵀX, K×K, when asked for. */
  xtx?: Float64Array;
  /** Σ_rows x_k², when asked for (‖X[:,k]‖₂ = √sqSum[k]). */
  sqSum?: Float64Array;
  min: number;
  max: number;
}

export interface CalibrationData {
  /** By the name of the tensor a layer reads (several layers may share one: q/k/v, gate/up). */
  inputs: Map<string, InputStats>;
  samples: number;
  source: 'text' | 'random-tokens' | 'gaussian';
}

export interface CalibrationSettings {
  text?: string;
  samples: number;
  seq_len: number;
  seed?: number;
}

export class CalibrationError extends OnnxError {}

export async function calibrate(
  model: LoadedModel,
  needs: Map<string, InputNeeds>,
  settings: CalibrationSettings,
  signal?: AbortSignal,
): Promise<CalibrationData> {
  const g = model.proto.graph!;
  const inits = new Set((g.initializer ?? []).map((t) => t.name ?? ''));
  const graphInputs = (g.input ?? []).filter((i) => !inits.has(i.name ?? ''));
  const inputNames = new Set(graphInputs.map((i) => i.name ?? ''));
  // With opset ≥ 13 the reductions run inside onnxruntime (its GEMM computes XᵀX; only K×K floats
  // per sample come back); older models return the raw activations and JS reduces them.
  const opset = num((model.proto.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx')?.version as never);
  const inGraph = opset >= 13;
  const probe = inGraph ? reductionNodes(needs) : undefined;
  const existingOutputs = new Set((g.output ?? []).map((o) => o.name ?? ''));
  const rawOutputs = inGraph ? [] : [...needs.keys()].filter((t) => !inputNames.has(t) && !existingOutputs.has(t));
  const instrumented: onnx.IModelProto = {
    ...model.proto,
    graph: {
      ...g,
      node: [...(g.node ?? []), ...(probe?.nodes ?? [])],
      initializer: [...(g.initializer ?? []), ...(probe?.initializers ?? [])],
      output: [
        ...(g.output ?? []),
        ...[...rawOutputs, ...(probe?.outputs ?? [])].map((name) =>
          onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: DataType.FLOAT } } }),
        ),
      ],
    },
  };
  if (probe) {
    // Shape outputs are int64.
    for (const o of instrumented.graph!.output!)
      if (o.name?.endsWith('/rows')) o.type = { tensorType: { elemType: DataType.INT64 } };
  }
  const stats = new Map<string, InputStats>();
  for (const [tensor, n] of needs) {
    stats.set(tensor, {
      tensor,
      K: n.K,
      rows: 0,
      xtx: n.hessian ? new Float64Array(n.K * n.K) : undefined,
      sqSum: n.norms ? new Float64Array(n.K) : undefined,
      min: Infinity,
      max: -Infinity,
    });
  }

  const bytes = encodeModel(instrumented);
  const usesExternal = (g.initializer ?? []).some((t) => externalRef(t));
  let tmp: string | undefined;
  let session: ort.InferenceSession;
  const so: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'basic', intraOpNumThreads: 2 };
  try {
    if (usesExternal) {
      // External data resolves against the model file's folder, so the copy must sit beside it.
      tmp = tempPathFor(model.path);
      await fs.promises.writeFile(tmp, bytes);
      session = await ort.InferenceSession.create(tmp, so);
    } else {
      session = await ort.InferenceSession.create(bytes, so);
    }
  } catch (err) {
    if (tmp) await fs.promises.rm(tmp, { force: true });
    throw new CalibrationError(`calibration: onnxruntime cannot load the model: ${(err as Error).message}`);
  }
  try {
    const feeds = makeFeeds(model, graphInputs, settings);
    const fetches = probe ? probe.outputs : [...needs.keys()].filter((t) => !inputNames.has(t));
    for (const feed of feeds.samples) {
      if (signal?.aborted) throw abortError();
      const out = fetches.length ? await session.run(feed, fetches) : {};
      for (const [tensor, st] of stats) {
        if (probe) {
          accumulateReduced(st, out, probe.prefix.get(tensor)!);
          continue;
        }
        const t = (inputNames.has(tensor) ? feed[tensor] : out[tensor]) as ort.Tensor | undefined;
        if (!t) throw new CalibrationError(`calibration: no value for ${tensor}`);
        accumulate(st, t.data as Float32Array);
      }
    }
    return { inputs: stats, samples: feeds.samples.length, source: feeds.source };
  } finally {
    await session.release().catch(() => undefined);
    if (tmp) await fs.promises.rm(tmp, { force: true });
  }
}

/** Nodes that reduce each needed tensor to what its stats need, named `<prefix>/xtx` etc. */
function reductionNodes(needs: Map<string, InputNeeds>) {
  const nodes: onnx.NodeProto[] = [];
  const initializers: onnx.TensorProto[] = [];
  const outputs: string[] = [];
  const prefix = new Map<string, string>();
  const axes0 = '__haqa_calib/axes0';
  if ([...needs.values()].some((n) => n.norms && !n.hessian))
    initializers.push(makeTensor(axes0, DataType.INT64, [1], new BigInt64Array([0n])));
  let i = 0;
  for (const [tensor, n] of needs) {
    const p = `__haqa_calib/${i++}`;
    prefix.set(tensor, p);
    const shape = `${p}/shape`;
    initializers.push(makeTensor(shape, DataType.INT64, [2], new BigInt64Array([-1n, BigInt(n.K)])));
    nodes.push(node('Cast', [tensor], [`${p}/f32`], { name: `${p}/Cast`, attrs: { to: DataType.FLOAT } }));
    nodes.push(node('Reshape', [`${p}/f32`, shape], [`${p}/x2d`], { name: `${p}/Reshape` }));
    nodes.push(node('Shape', [`${p}/x2d`], [`${p}/rows`], { name: `${p}/Shape` }));
    outputs.push(`${p}/rows`);
    if (n.hessian) {
      nodes.push(node('Gemm', [`${p}/x2d`, `${p}/x2d`], [`${p}/xtx`], { name: `${p}/Gemm`, attrs: { transA: 1 } }));
      outputs.push(`${p}/xtx`);
    } else if (n.norms) {
      nodes.push(node('Mul', [`${p}/x2d`, `${p}/x2d`], [`${p}/sq`], { name: `${p}/Mul` }));
      nodes.push(
        node('ReduceSum', [`${p}/sq`, axes0], [`${p}/sqsum`], { name: `${p}/ReduceSum`, attrs: { keepdims: 0 } }),
      );
      outputs.push(`${p}/sqsum`);
    }
    if (n.range) {
      // Without axes both reduce over everything, in every opset from 13 on.
      nodes.push(node('ReduceMin', [`${p}/f32`], [`${p}/min`], { name: `${p}/ReduceMin`, attrs: { keepdims: 0 } }));
      nodes.push(node('ReduceMax', [`${p}/f32`], [`${p}/max`], { name: `${p}/ReduceMax`, attrs: { keepdims: 0 } }));
      outputs.push(`${p}/min`, `${p}/max`);
    }
  }
  return { nodes, initializers, outputs, prefix };
}

function accumulateReduced(st: InputStats, out: Record<string, ort.Tensor>, p: string): void {
  const K = st.K;
  st.rows += Number((out[`${p}/rows`].data as BigInt64Array)[0]);
  const xtx = out[`${p}/xtx`]?.data as Float32Array | undefined;
  if (xtx && st.xtx) for (let i = 0; i < K * K; i++) st.xtx[i] += xtx[i];
  if (st.sqSum) {
    const sq = out[`${p}/sqsum`]?.data as Float32Array | undefined;
    if (sq) for (let k = 0; k < K; k++) st.sqSum[k] += sq[k];
    else if (xtx) for (let k = 0; k < K; k++) st.sqSum[k] += xtx[k * K + k];
  }
  const mn = out[`${p}/min`]?.data as Float32Array | undefined;
  const mx = out[`${p}/max`]?.data as Float32Array | undefined;
  if (mn && mn[0] < st.min) st.min = mn[0];
  if (mx && mx[0] > st.max) st.max = mx[0];
}

function accumulate(st: InputStats, x: Float32Array): void {
  const K = st.K;
  if (x.length % K !== 0)
    throw new CalibrationError(`calibration: ${st.tensor} has ${x.length} values, not a multiple of K=${K}`);
  const rows = x.length / K;
  st.rows += rows;
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (v < st.min) st.min = v;
    if (v > st.max) st.max = v;
  }
  if (st.sqSum) {
    for (let r = 0; r < rows; r++) for (let k = 0; k < K; k++) st.sqSum[k] += x[r * K + k] * x[r * K + k];
  }
  const h = st.xtx;
  if (h) {
    // Upper triangle of Σ x xᵀ, mirrored at the end of each batch. Row i of H outermost: it stays in
    // L1 while the rows of X stream past (the other order streams all of H once per token).
    // Four tokens per pass over the row: a quarter of the loads and stores of H.
    const r4 = rows - (rows % 4);
    for (let i = 0; i < K; i++) {
      const hi = i * K;
      for (let r = 0; r < r4; r += 4) {
        const o0 = r * K,
          o1 = o0 + K,
          o2 = o1 + K,
          o3 = o2 + K;
        const a = x[o0 + i],
          b = x[o1 + i],
          c = x[o2 + i],
          d = x[o3 + i];
        for (let j = i; j < K; j++) h[hi + j] += a * x[o0 + j] + b * x[o1 + j] + c * x[o2 + j] + d * x[o3 + j];
      }
      for (let r = r4; r < rows; r++) {
        const o = r * K;
        const xi = x[o + i];
        if (xi === 0) continue;
        for (let j = i; j < K; j++) h[hi + j] += xi * x[o + j];
      }
    }
    for (let i = 0; i < K; i++) for (let j = 0; j < i; j++) h[i * K + j] = h[j * K + i];
  }
}

type Feed = Record<string, ort.Tensor>;

function makeFeeds(
  model: LoadedModel,
  inputs: onnx.IValueInfoProto[],
  s: CalibrationSettings,
): { samples: Feed[]; source: CalibrationData['source'] } {
  const names = inputs.map((i) => i.name ?? '');
  if (names.includes('input_ids')) return decoderFeeds(model, inputs, s);
  const samples: Feed[] = [];
  for (let i = 0; i < s.samples; i++) {
    const feed: Feed = {};
    inputs.forEach((vi, j) => {
      const tt = vi.type?.tensorType;
      const dims = (tt?.shape?.dim ?? []).map((d, axis) =>
        d.dimParam || !d.dimValue ? (axis === 0 ? 1 : s.seq_len) : Number(d.dimValue),
      );
      const count = dims.reduce((a, b) => a * b, 1);
      const et = tt?.elemType ?? DataType.FLOAT;
      if (et === DataType.FLOAT)
        feed[vi.name!] = new ort.Tensor(
          'float32',
          Float32Array.from(gaussian(count, (s.seed ?? 0) * 7919 + i * 131 + j + 1)),
          dims,
        );
      else if (et === DataType.INT64) feed[vi.name!] = new ort.Tensor('int64', new BigInt64Array(count), dims);
      else if (et === DataType.INT32) feed[vi.name!] = new ort.Tensor('int32', new Int32Array(count), dims);
      else throw new CalibrationError(`calibration: cannot make random values for input ${vi.name} of this type`);
    });
    samples.push(feed);
  }
  return { samples, source: 'gaussian' };
}

function decoderFeeds(
  model: LoadedModel,
  inputs: onnx.IValueInfoProto[],
  s: CalibrationSettings,
): { samples: Feed[]; source: CalibrationData['source'] } {
  const dir = path.dirname(model.path);
  let cfg: Record<string, number> = {};
  try {
    cfg = JSON.parse(
      readRegularTextSync(besideModel(model.path, 'config.json', 'config.json'), 'config.json', READ_CAPS.config),
    );
  } catch {
    /* shapes from the model's inputs then */
  }
  let ids: number[] = [];
  let source: CalibrationData['source'] = 'text';
  const tokPath = path.join(dir, 'tokenizer.json');
  if (s.text && fs.existsSync(tokPath)) {
    let text: string;
    try {
      text = readRegularTextSync(s.text, 'calibration text', READ_CAPS.text); // regular files only, capped
    } catch (err) {
      const why = err instanceof PathError ? `: ${err.message}` : '';
      throw new CalibrationError(`calibration: cannot read calibration.text ${s.text}${why}`);
    }
    try {
      ids = Tokenizer.fromFile(besideModel(model.path, 'tokenizer.json', 'tokenizer')).encode(text);
    } catch (err) {
      throw new CalibrationError(`calibration: cannot tokenize with ${tokPath}: ${(err as Error).message}`);
    }
  } else if (s.text) {
    throw new CalibrationError(`calibration: no tokenizer.json beside ${model.path} to tokenize ${s.text}`);
  }
  const seq = s.seq_len;
  const windows: number[][] = [];
  for (let i = 0; i + seq <= ids.length && windows.length < s.samples; i += seq) windows.push(ids.slice(i, i + seq));
  if (windows.length === 0 && ids.length >= 2) windows.push(ids.slice(0, seq));
  if (windows.length === 0) {
    // No text: seeded random tokens still exercise every layer (documented as a weaker calibration).
    source = 'random-tokens';
    const vocab = Number(cfg.vocab_size) || 256;
    const r = gaussian(s.samples * seq, (s.seed ?? 0) + 17);
    for (let w = 0; w < s.samples; w++)
      windows.push(Array.from({ length: seq }, (_, i) => Math.floor(Math.abs(r[w * seq + i] * 1e6)) % vocab));
  }
  const samples = windows.map((win) => {
    const L = win.length;
    const feed: Feed = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(win.map(BigInt)), [1, L]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(L).fill(1n), [1, L]),
    };
    for (const vi of inputs) {
      const name = vi.name ?? '';
      if (name === 'position_ids')
        feed[name] = new ort.Tensor(
          'int64',
          BigInt64Array.from({ length: L }, (_, i) => BigInt(i)),
          [1, L],
        );
      else if (name.startsWith('past_key_values.')) {
        const d = vi.type?.tensorType?.shape?.dim ?? [];
        const heads = Number(d[1]?.dimValue ?? 0) || cfg.num_key_value_heads || cfg.num_attention_heads;
        const hd =
          Number(d[3]?.dimValue ?? 0) ||
          cfg.head_dim ||
          (cfg.hidden_size && cfg.num_attention_heads ? cfg.hidden_size / cfg.num_attention_heads : 0);
        if (!heads || !hd)
          throw new CalibrationError(
            `calibration: cannot tell the shape of ${name} (no static dims and no config.json)`,
          );
        feed[name] = new ort.Tensor('float32', new Float32Array(0), [1, heads, 0, hd]);
      } else if (!(name in feed)) {
        throw new CalibrationError(`calibration: decoder input ${name} is not part of the decoder interface`);
      }
    }
    return feed;
  });
  return { samples, source };
}

function abortError(): Error {
  const e = new Error('calibration cancelled');
  e.name = 'AbortError';
  return e;
}
