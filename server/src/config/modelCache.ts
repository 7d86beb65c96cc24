// The model graph, read once per file version. Keyed by absolute path and validated by mtime + size on
// every lookup (one stat), so a model rewritten on disk is re-read on the next check even when the
// editor sends no file-change event; `invalidate` drops an entry when it does.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ModelGraph } from '../model/graph';

export type ModelLoad =
  | { ok: true; graph: ModelGraph }
  /** `invalid`: it decodes but model/validate.ts refuses the graph (a cycle, a dangling input, bad dims). */
  | { ok: false; kind: 'missing' | 'directory' | 'corrupt' | 'invalid'; message: string };

interface Entry {
  mtimeMs: number;
  size: number;
  load: Promise<ModelLoad>;
}

export class ModelCache {
  private entries = new Map<string, Entry>();
  /** Reads done (not cache hits): lets tests see that the cache works. */
  reads = 0;

  async get(file: string): Promise<ModelLoad> {
    const abs = path.resolve(file);
    let st: fs.Stats;
    try {
      st = fs.statSync(abs);
    } catch {
      this.entries.delete(abs);
      return { ok: false, kind: 'missing', message: `model file not found: ${abs}` };
    }
    if (st.isDirectory())
      return { ok: false, kind: 'directory', message: `${abs} is a directory, not an ONNX model file` };
    const hit = this.entries.get(abs);
    if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.load;
    this.reads++;
    // The ONNX layer (protobuf classes) loads on first use, not at server start.
    const load: Promise<ModelLoad> = Promise.resolve()
      .then(() => (require('../model/graph') as typeof import('../model/graph')).inspectModel(abs))
      .then(
        (graph) => ({ ok: true as const, graph }),
        (err: Error) => ({
          ok: false as const,
          kind: err.name === 'GraphError' ? ('invalid' as const) : ('corrupt' as const),
          message: err.message,
        }),
      );
    this.entries.set(abs, { mtimeMs: st.mtimeMs, size: st.size, load });
    return load;
  }

  invalidate(file: string): void {
    this.entries.delete(path.resolve(file));
  }

  has(file: string): boolean {
    return this.entries.has(path.resolve(file));
  }
}
