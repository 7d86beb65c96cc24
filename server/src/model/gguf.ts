// GGUF (version 3), the file format llama.cpp loads: a header, typed key/value metadata, tensor
// descriptors, then the tensors' data, each aligned (general.alignment, default 32).
// Spec: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
//
// The writer streams: the caller gives each tensor's name, shape and type up front (so every offset
// is known before any data), then one tensor's bytes at a time, so memory is bounded by the largest
// tensor, never the model. The file is written to a temp beside the output and renamed over it
// (util/atomicWrite.ts): a killed export leaves the old file or none, never a half one.
// The reader parses the header, metadata and descriptors (for tests and for checks), and reads one
// tensor's bytes on request.
import * as fs from 'node:fs';
import { tempPathFor } from '../util/atomicWrite';

const MAGIC = 0x46554747; // "GGUF" little-endian
export const GGUF_VERSION = 3;
export const DEFAULT_ALIGNMENT = 32;

/** Metadata value types (gguf_type). */
export enum GgufValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** Tensor types (ggml_type) HAQA writes, with their block geometry: elements per block, bytes per block. */
export const GGML_TYPES = {
  F32: { id: 0, block: 1, bytes: 4 },
  F16: { id: 1, block: 1, bytes: 2 },
  Q4_0: { id: 2, block: 32, bytes: 18 },
  Q8_0: { id: 8, block: 32, bytes: 34 },
  Q4_K: { id: 12, block: 256, bytes: 144 },
  Q6_K: { id: 14, block: 256, bytes: 210 },
} as const;
export type GgmlTypeName = keyof typeof GGML_TYPES;
export const GGML_TYPE_NAMES = Object.keys(GGML_TYPES) as GgmlTypeName[];

export function ggmlTypeName(id: number): GgmlTypeName | undefined {
  return GGML_TYPE_NAMES.find((n) => GGML_TYPES[n].id === id);
}

/** Bytes of a tensor of `elements` values in `type`; throws when the row does not fill whole blocks. */
export function tensorBytes(type: GgmlTypeName, dims: number[]): number {
  const t = GGML_TYPES[type];
  if (dims[0] % t.block !== 0)
    throw new GgufError(`a ${type} tensor's rows must be a multiple of ${t.block} (got ${dims[0]})`);
  return (dims.reduce((a, b) => a * b, 1) / t.block) * t.bytes;
}

export class GgufError extends Error {
  constructor(
    message: string,
    readonly file?: string,
  ) {
    super(message);
    this.name = 'GgufError';
  }
}

/** A metadata value: the type is explicit where JS numbers are ambiguous. */
export type GgufValue =
  | { type: GgufValueType.STRING; value: string }
  | { type: GgufValueType.BOOL; value: boolean }
  | {
      type:
        | GgufValueType.UINT32
        | GgufValueType.INT32
        | GgufValueType.FLOAT32
        | GgufValueType.UINT64
        | GgufValueType.FLOAT64
        | GgufValueType.UINT8
        | GgufValueType.INT8
        | GgufValueType.UINT16
        | GgufValueType.INT16
        | GgufValueType.INT64;
      value: number;
    }
  | { type: GgufValueType.ARRAY; itemType: GgufValueType; value: (string | number | boolean)[] };

export const gv = {
  str: (value: string): GgufValue => ({ type: GgufValueType.STRING, value }),
  u32: (value: number): GgufValue => ({ type: GgufValueType.UINT32, value }),
  i32: (value: number): GgufValue => ({ type: GgufValueType.INT32, value }),
  f32: (value: number): GgufValue => ({ type: GgufValueType.FLOAT32, value }),
  bool: (value: boolean): GgufValue => ({ type: GgufValueType.BOOL, value }),
  strs: (value: string[]): GgufValue => ({ type: GgufValueType.ARRAY, itemType: GgufValueType.STRING, value }),
  i32s: (value: number[]): GgufValue => ({ type: GgufValueType.ARRAY, itemType: GgufValueType.INT32, value }),
  f32s: (value: number[]): GgufValue => ({ type: GgufValueType.ARRAY, itemType: GgufValueType.FLOAT32, value }),
};

export interface GgufTensorInfo {
  name: string;
  /** ggml order: dims[0] is the row length (contiguous), as llama.cpp's ne[]. */
  dims: number[];
  type: GgmlTypeName;
}

// ---------------------------------------------------------------- encoding

class Bytes {
  private chunks: Buffer[] = [];
  length = 0;
  push(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    this.push(b);
  }
  u64(v: number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.push(b);
  }
  scalar(t: GgufValueType, v: string | number | boolean): void {
    const b = Buffer.alloc(8);
    switch (t) {
      case GgufValueType.UINT8:
        b.writeUInt8(Number(v));
        return this.push(b.subarray(0, 1));
      case GgufValueType.INT8:
        b.writeInt8(Number(v));
        return this.push(b.subarray(0, 1));
      case GgufValueType.UINT16:
        b.writeUInt16LE(Number(v));
        return this.push(b.subarray(0, 2));
      case GgufValueType.INT16:
        b.writeInt16LE(Number(v));
        return this.push(b.subarray(0, 2));
      case GgufValueType.UINT32:
        b.writeUInt32LE(Number(v));
        return this.push(b.subarray(0, 4));
      case GgufValueType.INT32:
        b.writeInt32LE(Number(v));
        return this.push(b.subarray(0, 4));
      case GgufValueType.FLOAT32:
        b.writeFloatLE(Number(v));
        return this.push(b.subarray(0, 4));
      case GgufValueType.BOOL:
        b.writeUInt8(v ? 1 : 0);
        return this.push(b.subarray(0, 1));
      case GgufValueType.UINT64:
        b.writeBigUInt64LE(BigInt(v));
        return this.push(b);
      case GgufValueType.INT64:
        b.writeBigInt64LE(BigInt(v));
        return this.push(b);
      case GgufValueType.FLOAT64:
        b.writeDoubleLE(Number(v));
        return this.push(b);
      case GgufValueType.STRING:
        return this.str(String(v));
      default:
        throw new GgufError(`metadata value type ${t} cannot be an array item here`);
    }
  }
  value(v: GgufValue): void {
    this.u32(v.type);
    if (v.type === GgufValueType.ARRAY) {
      this.u32(v.itemType);
      this.u64(v.value.length);
      for (const x of v.value) this.scalar(v.itemType, x);
    } else {
      this.scalar(v.type, v.value);
    }
  }
  concat(): Buffer {
    return Buffer.concat(this.chunks, this.length);
  }
}

const pad = (n: number, a: number) => (a - (n % a)) % a;

/**
 * Writes a GGUF file: header and descriptors at once, then `data(i)` for each tensor in order (each
 * must return exactly tensorBytes of its type and shape). Atomic: a temp file renamed over `dest`.
 */
export async function writeGguf(
  dest: string,
  metadata: Record<string, GgufValue>,
  tensors: GgufTensorInfo[],
  data: (i: number) => Promise<Uint8Array> | Uint8Array,
  signal?: AbortSignal,
): Promise<{ bytes: number }> {
  const alignment = (metadata['general.alignment']?.value as number | undefined) ?? DEFAULT_ALIGNMENT;
  const h = new Bytes();
  h.u32(MAGIC);
  h.u32(GGUF_VERSION);
  h.u64(tensors.length);
  h.u64(Object.keys(metadata).length);
  for (const [k, v] of Object.entries(metadata)) {
    h.str(k);
    h.value(v);
  }
  const sizes = tensors.map((t) => tensorBytes(t.type, t.dims));
  let offset = 0;
  const seen = new Set<string>();
  for (const [i, t] of tensors.entries()) {
    if (seen.has(t.name)) throw new GgufError(`tensor ${t.name} appears twice`);
    seen.add(t.name);
    h.str(t.name);
    h.u32(t.dims.length);
    for (const d of t.dims) h.u64(d);
    h.u32(GGML_TYPES[t.type].id);
    h.u64(offset);
    offset += sizes[i] + pad(sizes[i], alignment);
  }
  h.push(Buffer.alloc(pad(h.length, alignment)));

  const tmp = tempPathFor(dest);
  const fh = await fs.promises.open(tmp, 'w');
  let total = 0;
  try {
    const head = h.concat();
    await fh.write(head);
    total += head.length;
    for (let i = 0; i < tensors.length; i++) {
      signal?.throwIfAborted();
      const b = await data(i);
      if (b.byteLength !== sizes[i]) {
        throw new GgufError(
          `tensor ${tensors[i].name}: ${b.byteLength} bytes of data, ` +
            `${tensors[i].type} ${tensors[i].dims.join('×')} needs ${sizes[i]}`,
        );
      }
      await fh.write(b);
      const p = pad(sizes[i], alignment);
      if (p) await fh.write(Buffer.alloc(p));
      total += sizes[i] + p;
    }
    await fh.sync();
    await fh.close();
    await fs.promises.rename(tmp, dest);
  } catch (err) {
    await fh.close().catch(() => undefined);
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
  return { bytes: total };
}

// ---------------------------------------------------------------- decoding

export interface GgufFile {
  file: string;
  version: number;
  metadata: Map<string, string | number | boolean | (string | number | boolean)[]>;
  tensors: (GgufTensorInfo & { offset: number; bytes: number })[];
  /** Absolute file offset where tensor data starts. */
  dataStart: number;
}

/** Largest header (metadata + descriptors) read; a vocabulary of 256k tokens fits easily. */
const MAX_HEADER = 256 << 20;

export function readGguf(file: string): GgufFile {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const buf = Buffer.alloc(Math.min(size, MAX_HEADER));
    fs.readSync(fd, buf, 0, buf.length, 0);
    let p = 0;
    const need = (n: number) => {
      if (p + n > buf.length) throw new GgufError(`${file}: truncated GGUF header at byte ${p}`, file);
    };
    const u32 = () => {
      need(4);
      const v = buf.readUInt32LE(p);
      p += 4;
      return v;
    };
    const u64 = () => {
      need(8);
      const v = Number(buf.readBigUInt64LE(p));
      p += 8;
      return v;
    };
    const str = () => {
      const n = u64();
      need(n);
      const s = buf.toString('utf8', p, p + n);
      p += n;
      return s;
    };
    const scalar = (t: number): string | number | boolean => {
      switch (t) {
        case GgufValueType.UINT8:
          need(1);
          return buf.readUInt8(p++);
        case GgufValueType.INT8:
          need(1);
          return buf.readInt8(p++);
        case GgufValueType.UINT16:
          need(2);
          p += 2;
          return buf.readUInt16LE(p - 2);
        case GgufValueType.INT16:
          need(2);
          p += 2;
          return buf.readInt16LE(p - 2);
        case GgufValueType.UINT32:
          return u32();
        case GgufValueType.INT32:
          need(4);
          p += 4;
          return buf.readInt32LE(p - 4);
        case GgufValueType.FLOAT32:
          need(4);
          p += 4;
          return buf.readFloatLE(p - 4);
        case GgufValueType.BOOL:
          need(1);
          return buf.readUInt8(p++) !== 0;
        case GgufValueType.STRING:
          return str();
        case GgufValueType.UINT64:
          return u64();
        case GgufValueType.INT64:
          need(8);
          p += 8;
          return Number(buf.readBigInt64LE(p - 8));
        case GgufValueType.FLOAT64:
          need(8);
          p += 8;
          return buf.readDoubleLE(p - 8);
        default:
          throw new GgufError(`${file}: unknown metadata value type ${t} at byte ${p}`, file);
      }
    };
    if (u32() !== MAGIC) throw new GgufError(`${file}: not a GGUF file (bad magic)`, file);
    const version = u32();
    if (version !== 2 && version !== 3)
      throw new GgufError(`${file}: GGUF version ${version} is not supported (2 or 3)`, file);
    const nTensors = u64();
    const nKv = u64();
    const metadata: GgufFile['metadata'] = new Map();
    for (let i = 0; i < nKv; i++) {
      const k = str();
      const t = u32();
      if (t === GgufValueType.ARRAY) {
        const it = u32();
        const n = u64();
        const arr: (string | number | boolean)[] = [];
        for (let j = 0; j < n; j++) arr.push(scalar(it));
        metadata.set(k, arr);
      } else {
        metadata.set(k, scalar(t));
      }
    }
    const tensors: GgufFile['tensors'] = [];
    for (let i = 0; i < nTensors; i++) {
      const name = str();
      const nd = u32();
      const dims = Array.from({ length: nd }, () => u64());
      const typeId = u32();
      const type = ggmlTypeName(typeId);
      if (!type) throw new GgufError(`${file}: tensor ${name} has ggml type ${typeId}, which HAQA does not read`, file);
      const offset = u64();
      tensors.push({ name, dims, type, offset, bytes: tensorBytes(type, dims) });
    }
    const alignment = Number(metadata.get('general.alignment') ?? DEFAULT_ALIGNMENT);
    const dataStart = p + pad(p, alignment);
    for (const t of tensors) {
      if (dataStart + t.offset + t.bytes > size)
        throw new GgufError(`${file}: tensor ${t.name} lies past the end of the file`, file);
    }
    return { file, version, metadata, tensors, dataStart };
  } finally {
    fs.closeSync(fd);
  }
}

export function readGgufTensor(g: GgufFile, name: string): Uint8Array {
  const t = g.tensors.find((x) => x.name === name);
  if (!t) throw new GgufError(`${g.file}: no tensor ${name}`, g.file);
  const fd = fs.openSync(g.file, 'r');
  try {
    const b = Buffer.alloc(t.bytes);
    fs.readSync(fd, b, 0, t.bytes, g.dataStart + t.offset);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}
