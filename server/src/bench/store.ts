// The run store, `.haqa/` in the workspace:
//
//   .haqa/runs/runs.jsonl            one RunRecord per line, appended
//   .haqa/runs/.lock                 held while appending (see below)
//   .haqa/artifacts/<key>/model.onnx (+ model.onnx.data, meta.json)   compressed models, content-addressed
//   .haqa/reference/<key>.json/.bin  fp32 reference outputs for accuracy comparisons
//   .haqa/.gitignore                 `*`, written when HAQA creates the folder (storeIgnore.ts)
//
// Crash safety. A record is appended with one write() of the whole line followed by fsync, so a kill
// leaves at most a torn *last* line, which readers skip; the next append first terminates a torn line
// so the new record starts on a line of its own. A write that fails or comes up short (a full disk) is
// cut back off the file and reported as StoreWriteError: no torn line, no silent success. Artifacts are
// built in `.haqa/artifacts/.tmp-*` and renamed into place whole, so a key directory either holds a
// complete model or does not exist.
//
// Concurrency. O_APPEND makes each write land at the end, but "one write() is atomic" is only promised
// for pipes (PIPE_BUF), not files, and the torn-line repair is read-then-write. So appends take an
// exclusive lock file (created with O_EXCL, holding the owner's pid; a lock whose owner is dead is
// stale and broken). Two processes (the language server and a CLI run) may share a store.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import type { RunRecord } from './record';
import { isStaleTemp, pidAlive, writeFileAtomic } from '../util/atomicWrite';
import { decodeModel, externalRef, resolveExternal } from '../model/onnx';
import {
  fileRefusal,
  insideRoots,
  mayDelete,
  PathError,
  readRegularTextSync,
  READ_CAPS,
  strictlyInside,
} from '../util/paths';
import { validateModel } from '../model/validate';
import { createStoreRoot } from './storeIgnore';

export const STORE_DIR = '.haqa';

/** The one write of an append; a seam so tests can make it fail part-way (a full disk). */
export const appendIo = {
  write: (fh: fs.promises.FileHandle, bytes: Buffer): Promise<{ bytesWritten: number }> =>
    fh.write(bytes, 0, bytes.length),
};

/** A failed append, with what happened on disk: nothing of the record remains. */
export class StoreWriteError extends Error {
  constructor(
    message: string,
    readonly file: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'StoreWriteError';
  }
}

function appendError(file: string, err: NodeJS.ErrnoException): StoreWriteError {
  const full = err.code === 'ENOSPC' || err.code === 'EDQUOT';
  const why = full ? 'no space left on device' : err.message;
  return new StoreWriteError(
    `${full ? 'disk full: ' : ''}the run record was not saved (${file}: ${why})`,
    file,
    err.code,
  );
}

export interface ReadResult {
  records: RunRecord[];
  /** Lines that did not parse (a torn last line after a crash, or a hand edit), with 1-based numbers. */
  skipped: { line: number; reason: string }[];
}

/** A record and its 1-based line in runs.jsonl. */
export interface RecordAt {
  record: RunRecord;
  line: number;
}

export class RunStore {
  /** The folder holding `.haqa/`. */
  readonly workspace: string;
  readonly root: string;
  readonly runsFile: string;
  readonly artifactsDir: string;
  readonly referenceDir: string;
  private readonly lockFile: string;

  /** `workspace`: the folder that holds (or will hold) `.haqa/`. */
  constructor(workspace: string) {
    this.workspace = path.resolve(workspace);
    this.root = path.join(this.workspace, STORE_DIR);
    this.runsFile = path.join(this.root, 'runs', 'runs.jsonl');
    this.lockFile = path.join(this.root, 'runs', '.lock');
    this.artifactsDir = path.join(this.root, 'artifacts');
    this.referenceDir = path.join(this.root, 'reference');
  }

  /**
   * `file` of the store, refused when it resolves outside the workspace (a symlink committed into
   * `.haqa/` by a repository): the store reads and writes nothing there.
   */
  inside(file: string): string {
    if (insideRoots(file, [this.workspace])) return file;
    const message =
      `${file} resolves outside the workspace ${this.workspace} ` +
      '(a symlink); the run store does not read or write there';
    throw new PathError(message, 'path-outside-workspace', file);
  }

  /**
   * Creates `.haqa/` with its `.gitignore` when it does not exist yet
   * (storeIgnore.ts); every write goes through here first.
   */
  async ensureRoot(): Promise<void> {
    await createStoreRoot(this.root);
  }

  /** The text of a store file: inside the workspace, a regular file, at most `cap` bytes (util/paths.ts). */
  readText(file: string, what: string, cap: number = READ_CAPS.text): string {
    return readRegularTextSync(this.inside(file), what, cap);
  }

  // ---------------------------------------------------------------- records

  async append(record: RunRecord): Promise<void> {
    const line = JSON.stringify(record) + '\n';
    await this.ensureRoot();
    await fs.promises.mkdir(path.dirname(this.inside(this.runsFile)), { recursive: true });
    await this.withLock(async () => {
      const fh = await fs.promises.open(this.runsFile, 'a+');
      try {
        const { size } = await fh.stat();
        let prefix = '';
        if (size > 0) {
          const last = Buffer.alloc(1);
          await fh.read(last, 0, 1, size - 1);
          if (last[0] !== 0x0a) prefix = '\n'; // a torn line from a crash: end it, don't extend it
        }
        const bytes = Buffer.from(prefix + line);
        try {
          const { bytesWritten } = await appendIo.write(fh, bytes);
          if (bytesWritten !== bytes.length) {
            throw Object.assign(new Error(`short write: ${bytesWritten} of ${bytes.length} bytes`), { code: 'ENOSPC' });
          }
          await fh.sync();
        } catch (err) {
          // Never leave a torn record behind: cut the file back to where this append began.
          await fh.truncate(size).catch(() => undefined);
          throw appendError(this.runsFile, err as NodeJS.ErrnoException);
        }
      } finally {
        await fh.close();
      }
    });
  }

  /** All records, oldest first; unparseable lines are reported, never fatal. */
  read(): ReadResult {
    const { entries, skipped } = this.readLines();
    return { records: entries.map((e) => e.record), skipped };
  }

  /** All records with their 1-based line in runs.jsonl (what the editor links to), oldest first. */
  readLines(): { entries: RecordAt[]; skipped: ReadResult['skipped'] } {
    let text: string;
    try {
      text = this.readText(this.runsFile, 'run records');
    } catch (err) {
      // Absent: no runs yet. A link out of the workspace, a FIFO, an oversized file: said, not read.
      const refused = err instanceof PathError && err.code !== 'file-not-found';
      return { entries: [], skipped: refused ? [{ line: 0, reason: err.message }] : [] };
    }
    const entries: RecordAt[] = [];
    const skipped: ReadResult['skipped'] = [];
    const lines = text.split('\n');
    lines.forEach((l, i) => {
      if (l.trim() === '') return;
      try {
        const r = JSON.parse(l) as RunRecord;
        if (r && typeof r === 'object' && typeof r.id === 'string' && typeof r.status === 'string')
          entries.push({ record: r, line: i + 1 });
        else skipped.push({ line: i + 1, reason: 'not a run record' });
      } catch {
        skipped.push({
          line: i + 1,
          reason: i === lines.length - 1 ? 'torn last line (interrupted write)' : 'not valid JSON',
        });
      }
    });
    return { entries, skipped };
  }

  /** The records of one recipe file (by its resolved path), with their lines, oldest first. */
  recordsOf(recipeFile: string): RecordAt[] {
    const want = path.resolve(recipeFile);
    return this.readLines().entries.filter((e) => path.resolve(e.record.recipe_file ?? '') === want);
  }

  /** The newest record for a recipe hash (what a code lens shows), if any. */
  latest(filter: (r: RunRecord) => boolean = () => true): RunRecord | undefined {
    const { records } = this.read();
    for (let i = records.length - 1; i >= 0; i--) if (filter(records[i])) return records[i];
    return undefined;
  }

  private async withLock<T>(fn: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        const fd = fs.openSync(this.lockFile, 'wx');
        fs.writeSync(fd, String(process.pid));
        fs.closeSync(fd);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        if (this.lockIsStale()) {
          fs.rmSync(this.lockFile, { force: true });
          continue;
        }
        if (Date.now() > deadline)
          throw new Error(
            `run store is locked by another process (${this.lockFile}); remove it if no haqa process is running`,
          );
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    try {
      return await fn();
    } finally {
      fs.rmSync(this.lockFile, { force: true });
    }
  }

  private lockIsStale(): boolean {
    let pid: number;
    try {
      pid = Number(fs.readFileSync(this.lockFile, 'utf8'));
    } catch {
      return false; // vanished or being written: retry
    }
    if (!Number.isInteger(pid) || pid <= 0) {
      // Written but empty: the owner died between create and write, or is writing right now.
      const age = Date.now() - (fs.statSync(this.lockFile, { throwIfNoEntry: false })?.mtimeMs ?? 0);
      return age > 2000;
    }
    try {
      process.kill(pid, 0);
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ESRCH';
    }
  }

  // ---------------------------------------------------------------- artifacts

  artifactDir(key: string): string {
    return path.join(this.artifactsDir, key);
  }

  /** The model of a complete artifact, or undefined. */
  findArtifact(key: string, file = 'model.onnx'): { model: string; meta: ArtifactMeta } | undefined {
    const dir = this.artifactDir(key);
    try {
      const meta = JSON.parse(
        this.readText(path.join(dir, 'meta.json'), 'artifact meta.json', READ_CAPS.config),
      ) as ArtifactMeta;
      const model = path.join(dir, file);
      if (!fs.existsSync(model)) return undefined;
      return { model, meta };
    } catch {
      return undefined;
    }
  }

  /**
   * Build an artifact: `build(tmpModelPath)` writes `model.onnx` (and any `.data`) into a fresh
   * temporary folder and may return facts for meta.json; then the model's hash and meta.json are
   * written and the folder is renamed to its key.
   * If another process finished the same key first, theirs is kept and ours discarded.
   */
  async buildArtifact(
    key: string,
    build: (modelPath: string) => Promise<Record<string, unknown> | void>,
    extra: Record<string, unknown> = {},
    file = 'model.onnx',
  ): Promise<{ model: string; meta: ArtifactMeta }> {
    await this.ensureRoot();
    await fs.promises.mkdir(this.inside(this.artifactsDir), { recursive: true });
    const tmp = path.join(
      this.artifactsDir,
      `.tmp-${key.slice(0, 16)}-${process.pid}-${randomBytes(4).toString('hex')}`,
    );
    await fs.promises.mkdir(tmp);
    try {
      const model = path.join(tmp, file);
      const built = await build(model);
      const { hash, bytes } = await hashModelFiles(model);
      const meta: ArtifactMeta = {
        ...extra,
        ...(built ?? {}),
        key,
        model_hash: hash,
        model_bytes: bytes,
        created: new Date().toISOString(),
      };
      await writeFileAtomic(path.join(tmp, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
      await syncDir(tmp);
      try {
        await fs.promises.rename(tmp, this.artifactDir(key));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
        await fs.promises.rm(tmp, { recursive: true, force: true }); // someone else built it: use theirs
      }
      await syncDir(this.artifactsDir);
      const found = this.findArtifact(key, file);
      if (!found) throw new Error(`artifact ${key} vanished after it was built`);
      return found;
    } catch (err) {
      await fs.promises.rm(tmp, { recursive: true, force: true });
      throw err;
    }
  }

  /**
   * Remove artifacts not referenced by the `keep` most recent records, and temporary leftovers of
   * interrupted builds. Artifacts younger than `graceMs` are kept: a run may be measuring one whose
   * record is not written yet.
   * Nothing outside the store is deleted: `.haqa`, `.haqa/artifacts` or an entry that is a symlink out
   * of the workspace is left alone (util/paths.ts mayDelete), and `.haqa` itself pointing out of the
   * workspace refuses the prune.
   */
  async prune(keep: number, graceMs = 60_000): Promise<{ removed: string[]; kept: string[]; freedBytes: number }> {
    if (fs.existsSync(this.root) && !strictlyInside(this.root, this.workspace)) {
      const message = `${this.root} resolves outside the workspace ${this.workspace} (a symlink); nothing pruned`;
      throw new PathError(message, 'path-outside-workspace', this.root);
    }
    const { records } = this.read();
    const wanted = new Set(
      records
        .slice(Math.max(0, records.length - keep))
        .map((r) => r.artifact)
        .filter((a): a is string => typeof a === 'string')
        .map((a) => path.basename(path.dirname(a))),
    );
    const removed: string[] = [];
    const kept: string[] = [];
    let freedBytes = 0;
    // Temporary files of atomic writes (references, hardware.json) whose writer died before renaming.
    for (const dir of [this.referenceDir, this.root]) {
      for (const name of await fs.promises.readdir(dir).catch(() => [] as string[])) {
        if (!isStaleTemp(name)) continue;
        const full = path.join(dir, name);
        if (!mayDelete(full, this.root, this.workspace)) continue;
        freedBytes += (await fs.promises.stat(full).catch(() => undefined))?.size ?? 0;
        await fs.promises.rm(full, { force: true });
        removed.push(path.relative(this.root, full));
      }
    }
    let entries: string[] = [];
    try {
      entries = await fs.promises.readdir(this.artifactsDir);
    } catch {
      return { removed, kept, freedBytes };
    }
    const now = Date.now();
    for (const name of entries) {
      const full = path.join(this.artifactsDir, name);
      const st = await fs.promises.stat(full).catch(() => undefined);
      if (!st?.isDirectory() || !mayDelete(full, this.root, this.workspace)) continue;
      const keepIt = name.startsWith('.tmp-')
        ? tmpOwnerAlive(name) // a build in progress in a live process; a dead owner's is garbage
        : wanted.has(name) || now - st.mtimeMs < graceMs;
      if (keepIt) {
        kept.push(name);
        continue;
      }
      freedBytes += await dirBytes(full);
      await fs.promises.rm(full, { recursive: true, force: true });
      removed.push(name);
    }
    return { removed, kept, freedBytes };
  }

  // ---------------------------------------------------------------- fp32 references

  referencePath(key: string): string {
    return this.inside(path.join(this.referenceDir, `${key}.json`));
  }
}

export interface ArtifactMeta {
  key: string;
  model_hash: string;
  model_bytes: number;
  created: string;
  [k: string]: unknown;
}

function tmpOwnerAlive(name: string): boolean {
  const pid = Number(/^\.tmp-[^-]+-(\d+)-/.exec(name)?.[1]);
  return pid > 0 && pidAlive(pid);
}

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await fs.promises.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    total += e.isDirectory() ? await dirBytes(p) : (await fs.promises.stat(p)).size;
  }
  return total;
}

async function syncDir(dir: string): Promise<void> {
  // Make the rename itself durable. Not every platform lets a directory be opened for fsync.
  try {
    const fh = await fs.promises.open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    /* best effort */
  }
}

/**
 * sha256 over a model's bytes: the .onnx file, then each external data file its tensors refer to, in
 * name order (streamed, so a multi-GB model is never held in memory). Returns the total size too.
 */
export async function hashModelFiles(modelPath: string): Promise<{ hash: string; bytes: number }> {
  const dir = path.dirname(modelPath);
  const refused = fileRefusal(modelPath, 'model'); // a FIFO or device would hang the read below
  if (refused) throw refused;
  if (modelPath.endsWith('.gguf')) return hashFiles([modelPath]); // one self-contained file (llama.cpp)
  const proto = decodeModel(await fs.promises.readFile(modelPath), modelPath);
  validateModel(proto, dir, modelPath); // a broken graph is refused before any worker loads it
  const locations = new Set<string>();
  for (const t of proto.graph?.initializer ?? []) {
    const ext = externalRef(t);
    if (ext) locations.add(ext.location);
  }
  return hashFiles([modelPath, ...[...locations].sort().map((l) => resolveExternal(dir, l))]);
}

async function hashFiles(files: string[]): Promise<{ hash: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  for (const f of files) {
    h.update(`\0${path.basename(f)}\0`);
    for await (const chunk of fs.createReadStream(f, { highWaterMark: 4 << 20 })) {
      h.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
  }
  return { hash: h.digest('hex'), bytes };
}

const sourceIdentityMemo = new Map<string, { hash: string; bytes: number }>();

/**
 * Content hash of a source model, memoised per (path, size, mtime) for the life of the process:
 * hashing a multi-GB model on every trial would cost more than the trial.
 */
export async function hashSourceModel(modelPath: string): Promise<{ hash: string; bytes: number }> {
  const st = await fs.promises.stat(modelPath);
  const id = `${path.resolve(modelPath)}\0${st.size}\0${st.mtimeMs}`;
  let v = sourceIdentityMemo.get(id);
  if (!v) {
    v = await hashModelFiles(modelPath);
    sourceIdentityMemo.set(id, v);
  }
  return v;
}
