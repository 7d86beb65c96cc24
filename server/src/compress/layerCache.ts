// Reuse of compressed layers across trials: a content-addressed store of what one layer became (its
// nodes, its tensors, its report), so a trial that changes one layer group's settings recompresses
// only that group and copies the rest from the store.
//
// Key (sha256 of a canonical JSON of):
//   - the source tensor. External data: the real path of its file, offset, length, dtype, dims and the
//     file's size, mtime and inode (cheap: the bytes are not read; an edit of the file in place changes
//     its mtime). Inline tensors: sha256 of their bytes (they are in memory already).
//   - the layer's node (encoded: its name, inputs, outputs and attributes, which the emitted graph
//     refers to) and its resolved settings (quantization, sparsity, low rank, the recipe-level knobs
//     that reach the layer: W8 weight type, low-rank method, seed).
//   - the calibration statistics of the layer's input, only where the layer uses them (GPTQ, Wanda,
//     static ranges): a sha256 of the statistics' bytes.
//   - LAYER_CACHE_FORMAT and the engine version, so a new engine never reads an old engine's bytes.
//
// An entry is one file `<key>.layer` under `.haqa/layers/` of the workspace: the layer's tensor bytes
// in the order they were emitted, then a JSON trailer (nodes, names, tensor headers, report), then the
// trailer's length. It is written while the layer is compressed (tensor by tensor, so a large layer
// is never held twice) to a temp file renamed into place when the layer is done. A hit replays the
// tensors into the output in the same order and takes the same names, so the assembled model is
// byte-identical to a fresh compression. Only layers whose output does not depend on other layers are
// stored: W8A8 layers share activation quantizers (emit.ts ActivationCache) and are recomputed; a
// layer whose names needed a suffix (a collision) is not stored either.
//
// The store is bounded (past `maxBytes`, default 4 GiB, least recently used entries are removed; a hit
// refreshes the entry's mtime) and `haqa runs prune` empties it (util/paths.ts mayDelete rules). A
// compression walks its layers in order, so under plain least-recently-used a model whose output exceeds
// the bound evicts, to store each new layer, the next layer it is about to reuse, and finds none
// (measured: an 8B-sized fp16 chain, 4.5 GB of output, a trial changing the first layer reused 0 of 1,907
// layers and took 2.5–3.4× a compression without a store). So eviction order is: stale temp files,
// entries neither this compression nor the previous one used, the new entry, the previous compression's,
// this compression's own. When the new entry goes, this compression stores nothing more; the next trial
// reuses what fits. "The previous compression" is the store's marker file `.last-compression`, whose
// mtime each compression that stores sets to its start; a hit refreshes its entry's mtime.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { DataType, LoadedModel, externalRef, onnx, readTensorBytes, resolveExternal, tensorDims } from '../model/onnx';
import { mayDelete, realPath } from '../util/paths';
import { createStoreRoot } from '../bench/storeIgnore';
import type { Names, TensorSink } from './emit';
import type { InputStats } from './calibrate';

/** Bump when the entry layout or anything a layer's output depends on changes meaning. */
export const LAYER_CACHE_FORMAT = 2; // 2: results name their custom-op domains (was usesMs)
export const DEFAULT_LAYER_CACHE_BYTES = 4 * 1024 ** 3;

/** What a layer's compression returns besides its tensors (pipeline.ts LayerOut). */
export interface LayerResult {
  nodes: onnx.INodeProto[];
  actions: string[];
  sqErr: number;
  sqNorm: number;
  /** Custom-op domains the nodes use (`com.microsoft` for MatMulNBits). */
  domains: string[];
  dropBias?: string;
}

interface TensorHead {
  name: string;
  dataType: number;
  dims: number[];
  length: number;
}
interface Trailer {
  format: number;
  nodes: string; // base64 GraphProto { node }
  names: string[];
  tensors: TensorHead[];
  result: Omit<LayerResult, 'nodes'>;
}

export interface LayerCacheStats {
  hits: number;
  misses: number;
  stored: number;
  bytesReused: number;
}

/** The identity of a layer's source tensor (see the header): cheap for external data. */
export async function sourceIdentity(t: onnx.ITensorProto, model: LoadedModel): Promise<Record<string, unknown>> {
  const ext = externalRef(t);
  const base = { dataType: t.dataType ?? 0, dims: tensorDims(t) };
  if (ext) {
    const file = resolveExternal(model.baseDir, ext.location, t.name ?? undefined);
    const st = await fs.promises.stat(file);
    return {
      ...base,
      file: realPath(file),
      offset: ext.offset,
      length: ext.length,
      size: st.size,
      mtimeMs: st.mtimeMs,
      ino: st.ino,
    };
  }
  const bytes = await readTensorBytes(t, model.baseDir);
  return { ...base, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** A digest of the calibration statistics a layer uses. */
export function statsDigest(st: InputStats | undefined): string | null {
  if (!st) return null;
  const h = createHash('sha256');
  for (const a of [st.xtx, st.sqSum]) {
    h.update(a ? new Uint8Array(a.buffer, a.byteOffset, a.byteLength) : new Uint8Array(0));
    h.update('|');
  }
  h.update(JSON.stringify([st.min, st.max]));
  return h.digest('hex');
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object' && !(v instanceof Uint8Array)) {
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

export class LayerCache {
  readonly stats: LayerCacheStats = { hits: 0, misses: 0, stored: 0, bytesReused: 0 };
  /** Entries this compression stored or reused: evicted only after every other entry. */
  private readonly touched = new Set<string>();
  /** Bytes the store holds as far as this object knows (undefined: not scanned yet); rescanned past the bound. */
  private knownBytes: number | undefined;
  /** The store filled up with entries worth more than a new one: store nothing more. */
  private full = false;
  private readonly started = new Date();
  /** Start of the previous compression that stored here (the marker's mtime); null: not read yet. */
  private prevStart: number | undefined | null = null;

  /**
   * `dir`: the entries' folder (`<workspace>/.haqa/layers`); `workspace`: the folder holding `.haqa`,
   * against which deletion is checked (util/paths.ts mayDelete).
   */
  constructor(
    readonly dir: string,
    readonly workspace: string,
    readonly maxBytes = DEFAULT_LAYER_CACHE_BYTES,
    readonly engine = '',
  ) {}

  /** The store of a workspace. */
  static forWorkspace(workspace: string, maxBytes?: number, engine = ''): LayerCache {
    const ws = path.resolve(workspace);
    return new LayerCache(path.join(ws, '.haqa', 'layers'), ws, maxBytes, engine);
  }

  /**
   * The store for an output written inside a run store (`<workspace>/.haqa/artifacts/…`, as the
   * benchmark's compress job writes): that workspace's store; undefined for an output elsewhere.
   */
  static forOutput(out: string, maxBytes?: number, engine = ''): LayerCache | undefined {
    for (let d = path.dirname(path.resolve(out)); path.dirname(d) !== d; d = path.dirname(d)) {
      if (path.basename(d) === '.haqa') return LayerCache.forWorkspace(path.dirname(d), maxBytes, engine);
    }
    return undefined;
  }

  key(parts: Record<string, unknown>): string {
    const doc = JSON.stringify(canonical({ format: LAYER_CACHE_FORMAT, engine: this.engine, ...parts }));
    return createHash('sha256').update(doc).digest('hex');
  }

  private file(key: string): string {
    return path.join(this.dir, `${key}.layer`);
  }

  /** The store's folder resolves inside the workspace (a committed symlink out of it is not used). */
  private usable(): boolean {
    return mayDelete(this.dir, path.join(this.workspace, '.haqa'), this.workspace) || !fs.existsSync(this.dir);
  }

  /**
   * The layer from the store, replayed into `sink` with its names taken from `names`; or, on a miss,
   * `compute` run with a recording sink and names, and its output stored for the next trial.
   */
  async layer(
    key: string,
    names: Names,
    sink: TensorSink,
    compute: (names: Names, sink: TensorSink) => Promise<LayerResult>,
  ): Promise<LayerResult> {
    const hit = await this.replay(key, names, sink).catch(() => undefined);
    if (hit) {
      this.stats.hits++;
      return hit;
    }
    this.stats.misses++;
    if (this.full || !this.usable()) return compute(names, sink);
    // with its .gitignore
    if (path.basename(path.dirname(this.dir)) === '.haqa') await createStoreRoot(path.dirname(this.dir));
    await fs.promises.mkdir(this.dir, { recursive: true });
    const tmp = path.join(this.dir, `.${key.slice(0, 16)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    const fh = await fs.promises.open(tmp, 'w');
    const pairs: [string, string][] = [];
    const heads: TensorHead[] = [];
    let at = 0;
    let size = 0; // the entry file's bytes
    let ok = false;
    try {
      const recNames = Object.create(names) as Names;
      recNames.take = (want: string) => {
        const got = names.take(want);
        pairs.push([want, got]);
        return got;
      };
      const recSink: TensorSink = {
        async add(name, dataType, dims, data) {
          await sink.add(name, dataType, dims, data);
          const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
          for (let done = 0; done < bytes.length;) {
            const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, at + done);
            done += bytesWritten;
          }
          at += bytes.length;
          heads.push({ name, dataType, dims, length: bytes.length });
        },
      };
      const res = await compute(recNames, recSink);
      if (pairs.every(([want, got]) => want === got)) {
        const { nodes, ...result } = res;
        const trailer: Trailer = {
          format: LAYER_CACHE_FORMAT,
          nodes: encodeNodes(nodes),
          names: pairs.map(([, got]) => got),
          tensors: heads,
          result,
        };
        const tb = Buffer.from(JSON.stringify(trailer));
        const len = Buffer.alloc(8);
        len.writeBigUInt64LE(BigInt(tb.length));
        await fh.write(tb, 0, tb.length, at);
        await fh.write(len, 0, 8, at + tb.length);
        size = at + tb.length + 8;
        ok = true;
      }
      return res;
    } finally {
      await fh.close();
      if (ok) {
        await fs.promises.rename(tmp, this.file(key));
        this.stats.stored++;
        await this.bound(this.file(key), size).catch(() => undefined);
      } else {
        await fs.promises.rm(tmp, { force: true });
      }
    }
  }

  private async replay(key: string, names: Names, sink: TensorSink): Promise<LayerResult | undefined> {
    const file = this.file(key);
    if (!fs.existsSync(file) || !this.usable()) return undefined;
    const fh = await fs.promises.open(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    try {
      const st = await fh.stat();
      if (!st.isFile() || st.size < 8) return undefined;
      const len = Buffer.alloc(8);
      await fh.read(len, 0, 8, st.size - 8);
      const tl = Number(len.readBigUInt64LE());
      if (tl <= 0 || tl > st.size - 8 || tl > 64 * 1024 ** 2) return undefined;
      const tb = Buffer.alloc(tl);
      await fh.read(tb, 0, tl, st.size - 8 - tl);
      const trailer = JSON.parse(tb.toString('utf8')) as Trailer;
      if (trailer.format !== LAYER_CACHE_FORMAT) return undefined;
      const dataBytes = trailer.tensors.reduce((s, t) => s + t.length, 0);
      if (dataBytes !== st.size - 8 - tl) return undefined;
      // The same names must be free now, or the assembled graph would differ from a fresh one.
      if (!trailer.names.every((n) => names.isFree(n)) || new Set(trailer.names).size !== trailer.names.length)
        return undefined;
      for (const n of trailer.names) names.take(n);
      let at = 0;
      for (const t of trailer.tensors) {
        const buf = Buffer.allocUnsafe(t.length);
        let got = 0;
        while (got < t.length) {
          const { bytesRead } = await fh.read(buf, got, t.length - got, at + got);
          if (bytesRead === 0) throw new Error(`layer cache entry ${file} is truncated`);
          got += bytesRead;
        }
        at += t.length;
        await sink.add(t.name, t.dataType as DataType, t.dims, buf);
      }
      this.stats.bytesReused += at;
      this.touched.add(file);
      const now = new Date();
      await fs.promises.utimes(file, now, now).catch(() => undefined);
      const nodes = onnx.GraphProto.decode(Buffer.from(trailer.nodes, 'base64')).node;
      return { ...trailer.result, nodes };
    } finally {
      await fh.close();
    }
  }

  /**
   * After storing `file` (about `bytes`): keep the store within `maxBytes`. The folder is scanned only
   * when this object's running total passes the bound (another process may have added entries since).
   */
  private async bound(file: string, bytes: number): Promise<void> {
    this.touched.add(file);
    if (this.prevStart === null) {
      const marker = path.join(this.dir, '.last-compression');
      const st = await fs.promises.lstat(marker).catch(() => undefined);
      // Only a regular file (or none) is the marker: a committed symlink must not be written through.
      if (!st || st.isFile()) {
        this.prevStart = st?.mtimeMs;
        await fs.promises.writeFile(marker, '');
        await fs.promises.utimes(marker, this.started, this.started);
      } else {
        this.prevStart = undefined;
      }
    }
    if (this.knownBytes !== undefined && this.knownBytes + bytes <= this.maxBytes) {
      this.knownBytes += bytes;
      return;
    }
    const r = await this.evict(this.maxBytes, file);
    this.knownBytes = r.keptBytes;
    if (r.droppedNew) this.full = true;
  }

  /**
   * Remove entries until the store holds at most `maxBytes`, in the order of the header (least recently
   * used first within each rank); `newest` is the entry just stored. Returns what was removed.
   */
  async evict(
    maxBytes: number,
    newest?: string,
  ): Promise<{ removed: number; freedBytes: number; keptBytes: number; droppedNew: boolean }> {
    if (!fs.existsSync(this.dir) || !this.usable())
      return { removed: 0, freedBytes: 0, keptBytes: 0, droppedNew: false };
    const entries: { file: string; size: number; mtime: number; rank: number }[] = [];
    for (const name of await fs.promises.readdir(this.dir)) {
      const file = path.join(this.dir, name);
      const st = await fs.promises.lstat(file).catch(() => undefined);
      if (!st?.isFile()) continue;
      const stale = name.endsWith('.tmp') && !pidAlive(Number(name.split('.')[2]));
      if (!name.endsWith('.layer') && !stale) continue;
      // 0: stale temp files; 1: entries the last two compressions did not use; 2: the new one;
      // 3: the previous compression's; 4: this compression's own.
      const prev = this.prevStart !== null && this.prevStart !== undefined && st.mtimeMs >= this.prevStart;
      const rank = stale ? 0 : file === newest ? 2 : this.touched.has(file) ? 4 : prev ? 3 : 1;
      entries.push({ file, size: st.size, mtime: st.mtimeMs, rank });
    }
    entries.sort((a, b) => a.rank - b.rank || a.mtime - b.mtime);
    let total = entries.reduce((s, e) => s + e.size, 0);
    let removed = 0;
    let freedBytes = 0;
    let droppedNew = false;
    for (const e of entries) {
      if (total <= maxBytes && e.rank !== 0) break;
      if (!mayDelete(e.file, path.join(this.workspace, '.haqa'), this.workspace)) continue;
      await fs.promises.rm(e.file, { force: true });
      this.touched.delete(e.file);
      total -= e.size;
      freedBytes += e.size;
      removed++;
      if (e.rank === 2) droppedNew = true;
    }
    return { removed, freedBytes, keptBytes: total, droppedNew };
  }
}

function encodeNodes(nodes: onnx.INodeProto[]): string {
  return Buffer.from(
    onnx.GraphProto.encode(onnx.GraphProto.create({ node: nodes as onnx.NodeProto[] })).finish(),
  ).toString('base64');
}

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
