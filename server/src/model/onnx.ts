// Reading and writing ONNX ModelProto files, and the bytes of their tensors.
//
// Everything that touches the protobuf lives here, so the rest of the engine talks about models,
// graphs and tensors, not wire formats. Weights stored in external data files (models over 2 GB) are
// read lazily, one tensor at a time, and written through ExternalDataWriter so that no step has to
// hold a whole model in memory.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import { tempPathFor } from '../util/atomicWrite';
import { fileKind, insideRoots, realPath } from '../util/paths';
import { validateModel } from './validate';
import { floatType, halfToFloat } from './floatTypes';

export { onnx };
export const DataType = onnx.TensorProto.DataType;
export type DataType = onnx.TensorProto.DataType;

/** An error about a model, naming the file and, where known, the node or tensor at fault. */
export class OnnxError extends Error {
  constructor(
    message: string,
    readonly file?: string,
    readonly where?: string,
  ) {
    super(message);
    this.name = 'OnnxError';
  }
}

/** A model that decodes but cannot be run as it stands (model/validate.ts says why). */
export class GraphError extends OnnxError {
  constructor(message: string, file?: string, where?: string) {
    super(message, file, where);
    this.name = 'GraphError';
  }
}

/**
 * A failed write of `out` as the user should read it: a full disk (or quota) is said plainly, other
 * errors keep their message; either way the output is named. Atomic writers remove their temp files
 * first, so "nothing was written" holds.
 */
export function writeFailure(err: unknown, out: string): Error {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (err instanceof OnnxError || (err as Error)?.name === 'AbortError') return err as Error;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new OnnxError(`cannot write ${out}: no space left on device; nothing was written`, out);
  }
  if (code === 'EACCES' || code === 'EROFS' || code === 'EPERM' || code === 'EIO' || code === 'EFBIG') {
    return new OnnxError(`cannot write ${out}: ${(err as Error).message}; nothing was written`, out);
  }
  return err as Error;
}

export interface LoadedModel {
  proto: onnx.ModelProto;
  /** Absolute path of the .onnx file. */
  path: string;
  /** Directory against which external data locations resolve. */
  baseDir: string;
  /** Size of the .onnx file itself (without external data). */
  fileBytes: number;
}

type LongLike = number | { toNumber(): number } | null | undefined;
/** protobufjs gives int64 fields as Long objects; every shape in ONNX fits a double. */
export function num(v: LongLike): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

export async function readModel(file: string): Promise<LoadedModel> {
  const abs = path.resolve(file);
  let stat: fs.Stats;
  try {
    stat = await fs.promises.stat(abs);
  } catch {
    throw new OnnxError(`model file not found: ${abs}`, abs);
  }
  if (stat.isDirectory()) throw new OnnxError(`${abs} is a directory, not an ONNX model file`, abs);
  if (!stat.isFile())
    throw new OnnxError(`${abs} is not a regular file (a FIFO, socket or device); it is not read`, abs);
  if (stat.size === 0) throw new OnnxError(`${abs} is empty`, abs);
  const bytes = await fs.promises.readFile(abs);
  const proto = decodeModel(bytes, abs);
  validateModel(proto, path.dirname(abs), abs);
  return { proto, path: abs, baseDir: path.dirname(abs), fileBytes: stat.size };
}

export function decodeModel(bytes: Uint8Array, file = '<memory>'): onnx.ModelProto {
  let proto: onnx.ModelProto;
  try {
    proto = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw new OnnxError(`${file}: not a valid ONNX model (${(err as Error).message})`, file);
  }
  if (!proto.graph || ((proto.graph.node?.length ?? 0) === 0 && (proto.graph.input?.length ?? 0) === 0)) {
    throw new OnnxError(`${file}: not a valid ONNX model (no graph)`, file);
  }
  return proto;
}

export function encodeModel(proto: onnx.IModelProto): Uint8Array {
  return onnx.ModelProto.encode(proto as onnx.ModelProto).finish();
}

// ---------------------------------------------------------------- tensors

const ELEMENT_SIZE: Partial<Record<number, number>> = {
  [DataType.FLOAT]: 4,
  [DataType.UINT8]: 1,
  [DataType.INT8]: 1,
  [DataType.UINT16]: 2,
  [DataType.INT16]: 2,
  [DataType.INT32]: 4,
  [DataType.INT64]: 8,
  [DataType.BOOL]: 1,
  [DataType.FLOAT16]: 2,
  [DataType.DOUBLE]: 8,
  [DataType.UINT32]: 4,
  [DataType.UINT64]: 8,
  [DataType.BFLOAT16]: 2,
};

export function dataTypeName(t: number): string {
  return (onnx.TensorProto.DataType as unknown as Record<number, string>)[t] ?? `type${t}`;
}

export function elementSize(t: number): number {
  const s = ELEMENT_SIZE[t];
  if (s === undefined) throw new OnnxError(`unsupported tensor data type ${dataTypeName(t)}`);
  return s;
}

export function tensorDims(t: onnx.ITensorProto): number[] {
  return (t.dims ?? []).map((d) => num(d as LongLike));
}

export function tensorElements(t: onnx.ITensorProto): number {
  return tensorDims(t).reduce((a, b) => a * b, 1);
}

export interface ExternalRef {
  location: string;
  offset: number;
  length: number;
}

export function externalRef(t: onnx.ITensorProto): ExternalRef | undefined {
  if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) return undefined;
  const kv = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
  const location = kv.get('location');
  if (!location)
    throw new OnnxError(`tensor ${t.name}: external data without a location`, undefined, t.name ?? undefined);
  const count = (key: string): number | undefined => {
    const v = kv.get(key);
    if (v === undefined) return undefined;
    const n = /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n)) {
      const shownValue = JSON.stringify(v.slice(0, 40));
      const why = `tensor ${t.name}: external data '${key}' is ${shownValue}, not a non-negative integer`;
      throw new OnnxError(why, undefined, t.name ?? undefined);
    }
    return n;
  };
  const offset = count('offset') ?? 0;
  const length = count('length') ?? tensorElements(t) * elementSize(t.dataType ?? 0);
  return { location, offset, length };
}

/**
 * Resolve an external data location, refusing anything that leaves the model's directory: a `..` or
 * absolute location, or a symlink whose target is outside (resolved with realpath), and anything that
 * is not a regular file (a FIFO would hang the reader, a device never ends). A missing file resolves
 * to its path; the reader reports it as not found.
 */
export function resolveExternal(baseDir: string, location: string, tensor?: string): string {
  const full = path.resolve(baseDir, location);
  const rel = path.relative(baseDir, full);
  if (rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new OnnxError(
      `tensor ${tensor}: external data location '${location}' is outside the model's folder`,
      undefined,
      tensor,
    );
  }
  const kind = fileKind(full);
  if (kind === 'missing') return full;
  if (!insideRoots(full, [baseDir])) {
    const where = `resolves to ${realPath(full)}, outside the model's folder ${baseDir} (a symlink out of it)`;
    throw new OnnxError(`tensor ${tensor}: external data file ${full} ${where}; it is not read`, full, tensor);
  }
  if (kind !== 'file') {
    const what = kind === 'directory' ? 'a directory' : 'a FIFO, socket or device';
    throw new OnnxError(
      `tensor ${tensor}: external data file ${full} is not a regular file (${what}); it is not read`,
      full,
      tensor,
    );
  }
  return full;
}

/** The little-endian bytes of a tensor, wherever they are stored. */
export async function readTensorBytes(t: onnx.ITensorProto, baseDir: string): Promise<Uint8Array> {
  const ext = externalRef(t);
  if (ext) {
    const file = resolveExternal(baseDir, ext.location, t.name ?? undefined);
    const fh = await fs.promises.open(file, 'r').catch(() => {
      throw new OnnxError(`tensor ${t.name}: external data file not found: ${file}`, file, t.name ?? undefined);
    });
    try {
      const buf = Buffer.allocUnsafe(ext.length);
      const { bytesRead } = await fh.read(buf, 0, ext.length, ext.offset);
      if (bytesRead !== ext.length) {
        throw new OnnxError(
          `tensor ${t.name}: external data truncated (${bytesRead} ` +
            `of ${ext.length} bytes at offset ${ext.offset} in ${file})`,
          file,
          t.name ?? undefined,
        );
      }
      return buf;
    } finally {
      await fh.close();
    }
  }
  return inlineTensorBytes(t);
}

function inlineTensorBytes(t: onnx.ITensorProto): Uint8Array {
  const want = tensorElements(t) * elementSize(t.dataType ?? 0);
  if (t.rawData && t.rawData.length > 0) {
    if (t.rawData.length !== want) {
      throw new OnnxError(
        `tensor ${t.name}: raw data has ${t.rawData.length} bytes, its shape needs ${want}`,
        undefined,
        t.name ?? undefined,
      );
    }
    return t.rawData;
  }
  const dt = t.dataType ?? 0;
  let typed: ArrayBufferView;
  if (dt === DataType.FLOAT) typed = Float32Array.from(t.floatData ?? []);
  else if (dt === DataType.DOUBLE) typed = Float64Array.from(t.doubleData ?? []);
  else if (dt === DataType.INT64)
    typed = BigInt64Array.from((t.int64Data ?? []).map((v) => BigInt(num(v as LongLike))));
  else if (dt === DataType.INT32) typed = Int32Array.from(t.int32Data ?? []);
  else if (dt === DataType.INT8) typed = Int8Array.from(t.int32Data ?? []);
  else if (dt === DataType.UINT8 || dt === DataType.BOOL) typed = Uint8Array.from(t.int32Data ?? []);
  else if (dt === DataType.FLOAT16 || dt === DataType.BFLOAT16) typed = Uint16Array.from(t.int32Data ?? []);
  else
    throw new OnnxError(`tensor ${t.name}: unsupported data type ${dataTypeName(dt)}`, undefined, t.name ?? undefined);
  const bytes = new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
  if (bytes.length !== want) {
    throw new OnnxError(
      `tensor ${t.name}: has ${bytes.length} bytes of data, its shape needs ${want}`,
      undefined,
      t.name ?? undefined,
    );
  }
  return bytes;
}

/** A weight as float32, converted from float16/bfloat16/double where needed (model/floatTypes.ts). */
export async function readTensorFloat32(t: onnx.ITensorProto, baseDir: string): Promise<Float32Array> {
  const bytes = await readTensorBytes(t, baseDir);
  const n = tensorElements(t);
  const dt = t.dataType ?? 0;
  if (dt === DataType.DOUBLE) {
    const aligned = bytes.byteOffset % 8 === 0 ? bytes : new Uint8Array(bytes);
    return Float32Array.from(new Float64Array(aligned.buffer, aligned.byteOffset, n));
  }
  const ft = floatType(dt);
  if (!ft) {
    throw new OnnxError(
      `tensor ${t.name}: weights of type ${dataTypeName(dt)} cannot ` +
        'be compressed (float32, float16, bfloat16 or double expected)',
      undefined,
      t.name ?? undefined,
    );
  }
  const out = new Float32Array(n);
  ft.decode(bytes, n, out);
  return out;
}

export { halfToFloat };

function asBytes(data: ArrayBufferView): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** An inline initializer. `data` is raw little-endian contents matching `dataType` and `dims`. */
export function makeTensor(name: string, dataType: DataType, dims: number[], data: ArrayBufferView): onnx.TensorProto {
  const bytes = asBytes(data);
  const want = dims.reduce((a, b) => a * b, 1) * elementSize(dataType);
  if (bytes.length !== want)
    throw new OnnxError(`makeTensor ${name}: ${bytes.length} bytes for shape [${dims}] of ${dataTypeName(dataType)}`);
  return onnx.TensorProto.create({ name, dataType, dims, rawData: bytes });
}

export function makeAttribute(
  name: string,
  value: number | number[] | string | onnx.ITensorProto,
  type?: 'int' | 'float',
): onnx.AttributeProto {
  const A = onnx.AttributeProto.AttributeType;
  if (typeof value === 'string') return onnx.AttributeProto.create({ name, type: A.STRING, s: Buffer.from(value) });
  if (Array.isArray(value)) {
    return type === 'float'
      ? onnx.AttributeProto.create({ name, type: A.FLOATS, floats: value })
      : onnx.AttributeProto.create({ name, type: A.INTS, ints: value });
  }
  if (typeof value === 'number') {
    return type === 'float' || (!Number.isInteger(value) && type !== 'int')
      ? onnx.AttributeProto.create({ name, type: A.FLOAT, f: value })
      : onnx.AttributeProto.create({ name, type: A.INT, i: value });
  }
  return onnx.AttributeProto.create({ name, type: A.TENSOR, t: value as onnx.TensorProto });
}

export function attr(node: onnx.INodeProto, name: string): onnx.IAttributeProto | undefined {
  return (node.attribute ?? []).find((a) => a.name === name);
}

export function attrInt(node: onnx.INodeProto, name: string, dflt: number): number {
  const a = attr(node, name);
  return a ? num(a.i as LongLike) : dflt;
}

// ---------------------------------------------------------------- writing

/** Write all of `bytes` at `position`, looping over short writes; a full disk ends in ENOSPC. */
async function writeAll(fh: fs.promises.FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < bytes.length;) {
    const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, position + done);
    if (bytesWritten <= 0) throw Object.assign(new Error('write made no progress'), { code: 'ENOSPC' });
    done += bytesWritten;
  }
}

/** Initializers at least this large go to the external data file when external data is used. */
const EXTERNAL_MIN_BYTES = 1024;
/** Above this many bytes of weights a model must use external data (protobuf's 2 GB limit). */
export const EXTERNAL_DATA_THRESHOLD = 1.5 * 1024 ** 3;

/**
 * Appends tensors to a model's external data file as they are produced, so a large model is written
 * one layer at a time. Everything goes to temporary files; `commit` renames them into place (data file
 * first, then the model), `abort` removes them.
 */
export class ExternalDataWriter {
  readonly dataName: string;
  private readonly tmpData: string;
  private fh: fs.promises.FileHandle | undefined;
  private offset = 0;

  constructor(readonly modelPath: string) {
    this.dataName = `${path.basename(modelPath)}.data`;
    this.tmpData = tempPathFor(path.join(path.dirname(modelPath), this.dataName));
  }

  /** Write `data` to the data file; returns the tensor that refers to it. */
  async append(name: string, dataType: DataType, dims: number[], data: ArrayBufferView): Promise<onnx.TensorProto> {
    if (!this.fh) this.fh = await fs.promises.open(this.tmpData, 'w');
    const bytes = asBytes(data);
    const pad = (64 - (this.offset % 64)) % 64; // keep tensors 64-byte aligned for mmap-friendly loads
    if (pad) await writeAll(this.fh, new Uint8Array(pad), this.offset);
    this.offset += pad;
    await writeAll(this.fh, bytes, this.offset); // a write may come up short (a nearly full disk)
    const t = onnx.TensorProto.create({
      name,
      dataType,
      dims,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: this.dataName },
        { key: 'offset', value: String(this.offset) },
        { key: 'length', value: String(bytes.length) },
      ],
    });
    this.offset += bytes.length;
    return t;
  }

  get bytesWritten(): number {
    return this.offset;
  }

  /**
   * Like `append`, for a tensor produced in pieces (a generator refilling one buffer), so a large
   * tensor never exists whole in memory and no single write() exceeds what the kernel takes at once
   * (about 2 GiB on Linux; an embedding of 150k × 3.5k floats is more). Each chunk may be reused by
   * the producer once the next one is requested.
   */
  async appendChunks(
    name: string,
    dataType: DataType,
    dims: number[],
    chunks: Iterable<ArrayBufferView> | AsyncIterable<ArrayBufferView>,
  ): Promise<onnx.TensorProto> {
    if (!this.fh) this.fh = await fs.promises.open(this.tmpData, 'w');
    const want = dims.reduce((a, b) => a * b, 1) * elementSize(dataType);
    const pad = (64 - (this.offset % 64)) % 64;
    if (pad) await this.fh.write(new Uint8Array(pad), 0, pad, this.offset);
    this.offset += pad;
    const start = this.offset;
    for await (const chunk of chunks) {
      const bytes = asBytes(chunk);
      for (let done = 0; done < bytes.length;) {
        const { bytesWritten } = await this.fh.write(bytes, done, bytes.length - done, this.offset);
        done += bytesWritten;
        this.offset += bytesWritten;
      }
    }
    if (this.offset - start !== want) {
      throw new OnnxError(
        `tensor ${name}: ${this.offset - start} bytes written for ` +
          `shape [${dims}] of ${dataTypeName(dataType)} (${want} expected)`,
        undefined,
        name,
      );
    }
    return onnx.TensorProto.create({
      name,
      dataType,
      dims,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: this.dataName },
        { key: 'offset', value: String(start) },
        { key: 'length', value: String(want) },
      ],
    });
  }

  async commit(model: onnx.IModelProto): Promise<void> {
    const tmpModel = tempPathFor(this.modelPath);
    try {
      if (this.fh) {
        await this.fh.sync();
        await this.fh.close();
        this.fh = undefined;
      }
      await fs.promises.writeFile(tmpModel, encodeModel(model));
      if (this.offset > 0)
        await fs.promises.rename(this.tmpData, path.join(path.dirname(this.modelPath), this.dataName));
      await fs.promises.rename(tmpModel, this.modelPath);
    } catch (err) {
      await fs.promises.rm(tmpModel, { force: true });
      await this.abort();
      throw err;
    }
  }

  async abort(): Promise<void> {
    if (this.fh) {
      await this.fh.close().catch(() => undefined);
      this.fh = undefined;
    }
    await fs.promises.rm(this.tmpData, { force: true });
  }
}

export interface WriteResult {
  modelBytes: number;
  dataBytes: number;
  dataFile?: string;
}

/**
 * Write a whole in-memory model atomically. With `externalData` (or automatically above
 * EXTERNAL_DATA_THRESHOLD) large initializers move to `<name>.data` beside it.
 * External tensors of the source model are copied from `sourceBaseDir`.
 */
export async function writeModel(
  model: onnx.IModelProto,
  outFile: string,
  opts: { externalData?: boolean; sourceBaseDir?: string } = {},
): Promise<WriteResult> {
  const graph = model.graph!;
  const inits = graph.initializer ?? [];
  const hasExternal = inits.some((t) => externalRef(t));
  const inlineBytes = inits.reduce((s, t) => s + (t.rawData?.length ?? 0), 0);
  const external = opts.externalData ?? (hasExternal || inlineBytes > EXTERNAL_DATA_THRESHOLD);
  const out = path.resolve(outFile);
  const writer = new ExternalDataWriter(out);
  try {
    const newInits: onnx.ITensorProto[] = [];
    for (const t of inits) {
      const big = externalRef(t) !== undefined || (t.rawData?.length ?? 0) >= EXTERNAL_MIN_BYTES;
      if (external && big) {
        const bytes = await readTensorBytes(t, opts.sourceBaseDir ?? path.dirname(out));
        newInits.push(await writer.append(t.name ?? '', t.dataType ?? 0, tensorDims(t), bytes));
      } else if (externalRef(t)) {
        const bytes = await readTensorBytes(t, opts.sourceBaseDir ?? path.dirname(out));
        newInits.push(makeTensor(t.name ?? '', t.dataType ?? 0, tensorDims(t), bytes));
      } else {
        newInits.push(t);
      }
    }
    const written = { ...model, graph: { ...graph, initializer: newInits } };
    await writer.commit(written);
    const modelBytes = (await fs.promises.stat(out)).size;
    return {
      modelBytes,
      dataBytes: writer.bytesWritten,
      dataFile: writer.bytesWritten > 0 ? path.join(path.dirname(out), writer.dataName) : undefined,
    };
  } catch (err) {
    await writer.abort();
    throw writeFailure(err, out);
  }
}
