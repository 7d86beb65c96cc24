// Synthetic decoders at real scale: the graph of any config.json of a family in config/families.ts
// with seeded random weights, to measure speed and memory of a model before its weights exist here.
//
// The graph (synth/graph.ts) is only a description; weights are drawn one tensor at a time, in chunks,
// straight into the external data file when the model is large, so generating an 8B model needs about
// as much memory as one chunk, not 32 GB. Small models are written inline as one file.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataType, EXTERNAL_DATA_THRESHOLD, ExternalDataWriter, makeTensor, onnx, writeModel } from './onnx';
import { ModelArchitecture, parameterCount } from '../config/hfConfig';
import { buildDecoderGraph, WeightSpec } from './synth/graph';
import { constantChunks, normalChunks } from './synth/random';
import { FLOAT_TYPE_FLAGS, FloatType, floatType } from './floatTypes';

export { buildDecoderGraph, checkArchitecture, rotaryInvFreq, DIMS, MASK_VALUE } from './synth/graph';
export type { WeightSpec, DecoderGraph } from './synth/graph';

export interface SynthOptions {
  /** Path of the .onnx file to write (external data goes to `<out>.data` beside it). */
  out: string;
  /** Seed of the weights (default 0). The same seed and config give the same bytes. */
  seed?: number;
  /** Override num_hidden_layers (small models for tests, or a slice of a big one). */
  layers?: number;
  /** Override vocab_size. */
  vocab?: number;
  /** true: weights in `<out>.data`; false: inline; 'auto' (default): external above EXTERNAL_DATA_THRESHOLD. */
  externalData?: boolean | 'auto';
  /** The weights' and activations' float type: `fp32` (default), or `fp16` / `bf16` as exports ship. */
  dtype?: 'fp32' | 'fp16' | 'bf16';
  onProgress?: (p: { tensor: string; doneBytes: number; totalBytes: number }) => void;
  signal?: AbortSignal;
}

export interface SynthResult {
  out: string;
  /** Parameters in the written initializers (equals parameterCount of the effective architecture). */
  params: number;
  /** Bytes on disk: the .onnx file plus its external data. */
  bytes: number;
  /** The architecture actually written (after the layers/vocab overrides). */
  arch: ModelArchitecture;
  dataFile?: string;
}

/** The architecture with the test/bench overrides applied. */
export function effectiveArchitecture(
  arch: ModelArchitecture,
  opts: Pick<SynthOptions, 'layers' | 'vocab'>,
): ModelArchitecture {
  const check = (v: number | undefined, what: string): void => {
    if (v !== undefined && !(Number.isInteger(v) && v > 0))
      throw new RangeError(`${what} must be a positive integer, got ${v}`);
  };
  check(opts.layers, 'layers');
  check(opts.vocab, 'vocab');
  return {
    ...arch,
    num_hidden_layers: opts.layers ?? arch.num_hidden_layers,
    vocab_size: opts.vocab ?? arch.vocab_size,
  };
}

/** Chunks of 1M floats (4 MB): big enough that writes are efficient, small enough to be free. */
const CHUNK = 1 << 20;

function* chunksOf(w: WeightSpec, seed: number, std: number, ft: FloatType): Generator<Float32Array | Uint16Array> {
  const n = w.dims.reduce((x, y) => x * y, 1);
  // Biases are drawn too (HF initialises them to zero): a zero bias would leave the bias path untested.
  const gen =
    w.fill === 'ones' || w.fill === 'zeros'
      ? constantChunks(w.fill === 'ones' ? 1 : 0, n, CHUNK)
      : normalChunks(seed, w.name, n, std, CHUNK);
  // The same draws as the float32 model, rounded to the type: an fp16 model is its fp32 twin rounded.
  for (const c of gen) yield ft.dataType === DataType.FLOAT ? c : ft.encode(c);
}

function abortIf(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    const err = new Error('synthesis cancelled');
    err.name = 'AbortError';
    throw err;
  }
}

export async function synthesizeDecoder(archIn: ModelArchitecture, opts: SynthOptions): Promise<SynthResult> {
  const arch = effectiveArchitecture(archIn, opts);
  const seed = opts.seed ?? 0;
  const std = arch.initializer_range;
  const out = path.resolve(opts.out);
  const ft = floatType(FLOAT_TYPE_FLAGS[opts.dtype ?? 'fp32']);
  if (!ft) throw new RangeError(`dtype must be fp32, fp16 or bf16, got ${opts.dtype}`);
  const { model, weights } = buildDecoderGraph(arch, ft.dataType);
  const params = weights.reduce((s, w) => s + w.dims.reduce((x, y) => x * y, 1), 0);
  const totalBytes = params * ft.bytes;
  const external =
    opts.externalData === undefined || opts.externalData === 'auto'
      ? totalBytes > EXTERNAL_DATA_THRESHOLD
      : opts.externalData;
  await fs.promises.mkdir(path.dirname(out), { recursive: true });
  const graph = model.graph!;
  let doneBytes = 0;
  const progress = (tensor: string, bytes: number): void => {
    doneBytes += bytes;
    opts.onProgress?.({ tensor, doneBytes, totalBytes });
  };

  if (external) {
    const writer = new ExternalDataWriter(out);
    try {
      const inits: onnx.TensorProto[] = [];
      for (const w of weights) {
        const counted = (function* (gen: Generator<Float32Array | Uint16Array>) {
          for (const c of gen) {
            abortIf(opts.signal);
            yield c;
            progress(w.name, c.byteLength);
          }
        })(chunksOf(w, seed, std, ft));
        inits.push(await writer.appendChunks(w.name, ft.dataType, w.dims, counted));
      }
      graph.initializer = inits;
      await writer.commit(model);
    } catch (err) {
      await writer.abort();
      throw err;
    }
    const modelBytes = (await fs.promises.stat(out)).size;
    return {
      out,
      params,
      bytes: modelBytes + writer.bytesWritten,
      arch,
      dataFile: path.join(path.dirname(out), writer.dataName),
    };
  }

  // Inline: below the threshold the whole model fits comfortably in memory and in one protobuf.
  graph.initializer = weights.map((w) => {
    abortIf(opts.signal);
    const n = w.dims.reduce((x, y) => x * y, 1);
    const data = ft.bytes === 4 ? new Float32Array(n) : new Uint16Array(n);
    let at = 0;
    for (const c of chunksOf(w, seed, std, ft)) {
      data.set(c, at);
      at += c.length;
    }
    progress(w.name, data.byteLength);
    return makeTensor(w.name, ft.dataType, w.dims, data);
  });
  const res = await writeModel(model, out, { externalData: false });
  return { out, params, bytes: res.modelBytes, arch };
}

/** Parameter count the synthesized model will have, from the config alone (no graph built). */
export function synthParameterCount(
  arch: ModelArchitecture,
  opts: Pick<SynthOptions, 'layers' | 'vocab'> = {},
): number {
  return parameterCount(effectiveArchitecture(arch, opts));
}
