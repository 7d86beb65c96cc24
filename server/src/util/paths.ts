// The one path policy: which files HAQA reads and deletes, and how it reads them. `haqa check` reports
// with it, and the engine (quantize, bench, the worker, the run store, prune) enforces the same rule,
// so a path the check calls "not read" is not read.
//
//   - Roots. A recipe may name files inside the allowed roots: the workspace folders (editor) or the
//     recipe's own folder (CLI: the recipe named on the command line is the user's choice, and so is
//     its folder). Files the model brings along (external data, tokenizer.json, config.json beside it)
//     must stay inside the model's own folder.
//   - Symlinks are resolved (realpath) before the test: a link inside the workspace that points
//     outside is outside.
//   - Regular files only: a FIFO, a device (/dev/zero) or a directory is refused before it is read.
//     Files are opened with O_NONBLOCK and checked with fstat, so swapping in a FIFO after the check
//     cannot hang the reader either.
//   - Size caps for what is read whole into memory (texts, tokenizers, configs).
//   - Deletion (prune) only below the store's real folder, never through a symlink.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import type { Recipe } from '../config/recipe';

const MiB = 1024 * 1024;

/** The most HAQA reads whole into memory, by kind of file. */
export const READ_CAPS = {
  /** evaluation.text, calibration.text. */
  text: 256 * MiB,
  /** tokenizer.json. */
  tokenizer: 64 * MiB,
  /** config.json, meta.json and other small JSON. */
  config: 8 * MiB,
} as const;

/** Diagnostic codes of the policy (docs/diagnostics.md). */
export type PathCode =
  | 'path-outside-workspace'
  | 'model-outside-workspace'
  | 'path-not-regular-file'
  | 'file-too-large'
  | 'file-not-found'
  | 'path-is-directory'
  | 'path-outside-model';

/** A refused path: what the check reports and what the engine throws. */
export class PathError extends Error {
  constructor(
    message: string,
    readonly code: PathCode,
    readonly file: string,
    readonly recipePath?: (string | number)[],
  ) {
    super(message);
    this.name = 'PathError';
  }
}

/**
 * The real path of `p`: symlinks resolved. For a path that does not exist (yet), the nearest existing
 * ancestor is resolved and the rest appended, so a missing file under a symlinked folder is judged by
 * where the folder really is.
 */
export function realPath(p: string): string {
  const abs = path.resolve(p);
  const rest: string[] = [];
  for (let cur = abs; ;) {
    try {
      return path.join(fs.realpathSync(cur), ...rest.reverse());
    } catch {
      const parent = path.dirname(cur);
      if (parent === cur) return abs;
      rest.push(path.basename(cur));
      cur = parent;
    }
  }
}

/** Whether `file` (already real) is `root` (already real) or below it. */
function below(file: string, root: string): boolean {
  const rel = path.relative(root, file);
  return rel === '' || (!rel.startsWith('..' + path.sep) && rel !== '..' && !path.isAbsolute(rel));
}

/** Whether `file`, symlinks resolved, lies inside one of `roots`. */
export function insideRoots(file: string, roots: readonly string[]): boolean {
  const real = realPath(file);
  return roots.some((r) => below(real, realPath(r)));
}

/** The folders a recipe may name files in: the workspace folders when given, else the recipe's folder. */
export function recipeRoots(recipeFile: string, workspaceRoots?: readonly string[]): string[] {
  const roots = workspaceRoots?.length ? workspaceRoots : [path.dirname(path.resolve(recipeFile))];
  return roots.map(realPath);
}

/** The refusal of a path outside the roots, worded once for the check and the engine. */
export function outsideRefusal(
  file: string,
  roots: readonly string[],
  what: string,
  code: PathCode = 'path-outside-workspace',
): PathError | undefined {
  if (insideRoots(file, roots)) return undefined;
  const message =
    `${what} ${file} is outside the workspace (${roots.join(', ')}); it is not read. ` +
    'Move it inside or open a folder that contains it.';
  return new PathError(message, code, file);
}

export type FileKind = 'file' | 'directory' | 'missing' | 'special';

/** What `file` is, following symlinks: a FIFO, socket or device is 'special'. */
export function fileKind(file: string): FileKind {
  const st = fs.statSync(file, { throwIfNoEntry: false });
  if (!st) return 'missing';
  return st.isFile() ? 'file' : st.isDirectory() ? 'directory' : 'special';
}

/** The refusal of a file that is not a regular file of at most `maxBytes`, if any. */
export function fileRefusal(file: string, what: string, maxBytes?: number): PathError | undefined {
  const st = fs.statSync(file, { throwIfNoEntry: false });
  if (!st) return new PathError(`${what} not found: ${file}`, 'file-not-found', file);
  if (st.isDirectory()) return new PathError(`${what} ${file} is a directory, not a file`, 'path-is-directory', file);
  if (!st.isFile()) return notRegular(file, what);
  if (maxBytes !== undefined && st.size > maxBytes) return tooLarge(file, what, st.size, maxBytes);
  return undefined;
}

function notRegular(file: string, what: string): PathError {
  return new PathError(
    `${what} ${file} is not a regular file (a FIFO, socket or device); it is not read`,
    'path-not-regular-file',
    file,
  );
}

function tooLarge(file: string, what: string, size: number, maxBytes: number): PathError {
  return new PathError(
    `${what} ${file} is ${mib(size)}, over the ${mib(maxBytes)} HAQA reads for it`,
    'file-too-large',
    file,
  );
}

const mib = (n: number) => `${(n / MiB).toFixed(n < 10 * MiB ? 1 : 0)} MiB`;

// O_NONBLOCK: opening a FIFO for reading returns at once instead of waiting for a writer.
const OPEN_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0);

/** Opens a regular file for reading; anything else is refused without blocking. Returns the fd and size. */
function openRegular(file: string, what: string, maxBytes?: number): { fd: number; size: number } {
  let fd: number;
  try {
    fd = fs.openSync(file, OPEN_FLAGS);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new PathError(`${what} not found: ${file}`, 'file-not-found', file);
    if (code === 'EISDIR') throw new PathError(`${what} ${file} is a directory, not a file`, 'path-is-directory', file);
    throw new PathError(`cannot read ${what} ${file}: ${(err as Error).message}`, 'file-not-found', file);
  }
  const st = fs.fstatSync(fd);
  const refusal = st.isDirectory()
    ? new PathError(`${what} ${file} is a directory, not a file`, 'path-is-directory', file)
    : !st.isFile()
      ? notRegular(file, what)
      : maxBytes !== undefined && st.size > maxBytes
        ? tooLarge(file, what, st.size, maxBytes)
        : undefined;
  if (refusal) {
    fs.closeSync(fd);
    throw refusal;
  }
  return { fd, size: st.size };
}

/**
 * A regular file's bytes, at most `maxBytes` (a file that grows while read is cut off there and
 * refused). Throws PathError for anything else.
 */
export function readRegularFileSync(file: string, what: string, maxBytes: number): Buffer {
  const { fd, size } = openRegular(file, what, maxBytes);
  try {
    const buf = Buffer.allocUnsafe(Math.min(size, maxBytes) + 1);
    let got = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, got, buf.length - got, got);
      if (n === 0) break;
      got += n;
      if (got === buf.length) break;
    }
    if (got > maxBytes) throw tooLarge(file, what, got, maxBytes);
    return buf.subarray(0, got);
  } finally {
    fs.closeSync(fd);
  }
}

/** The same, as UTF-8 text. */
export function readRegularTextSync(file: string, what: string, maxBytes: number): string {
  return readRegularFileSync(file, what, maxBytes).toString('utf8');
}

/** sha256 of a regular file, streamed (no cap on size: nothing is held), refusing FIFOs and devices. */
export async function hashRegularFile(file: string, what: string): Promise<string> {
  const { fd } = openRegular(file, what);
  const h = createHash('sha256');
  const stream = fs.createReadStream('', { fd, highWaterMark: 4 * MiB });
  for await (const chunk of stream) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * A file the model brings along (`name` relative to the model's folder): refused when it resolves
 * outside that folder (a symlink out of it), so a model folder cannot make HAQA read elsewhere.
 */
export function besideModel(modelPath: string, name: string, what: string): string {
  const dir = path.dirname(path.resolve(modelPath));
  const file = path.resolve(dir, name);
  if (!below(realPath(file), realPath(dir))) {
    const message = `${what} ${file} resolves outside the model's folder ${dir} (a symlink out of it); it is not read`;
    throw new PathError(message, 'path-outside-model', file);
  }
  return file;
}

// ---------------------------------------------------------------- the rule for a recipe

/** Which of a recipe's files a command reads. */
export interface RecipeReads {
  model?: boolean;
  calibration?: boolean;
  evaluation?: boolean;
}

interface RecipeRef {
  file: string;
  recipePath: string[];
  what: string;
  outside: PathCode;
  cap?: number;
}

/** The files a recipe names, with their recipe key and how the check words them. */
export function recipeRefs(
  recipe: Recipe,
  reads: RecipeReads = { model: true, calibration: true, evaluation: true },
): RecipeRef[] {
  const refs: RecipeRef[] = [];
  const text = (file: string | undefined, recipePath: string[], what: string, cap: number) => {
    if (file) refs.push({ file, recipePath, what, outside: 'path-outside-workspace', cap });
  };
  if (reads.evaluation) text(recipe.evaluation.text, ['evaluation', 'text'], 'evaluation text', READ_CAPS.text);
  if (reads.calibration) text(recipe.calibration.text, ['calibration', 'text'], 'calibration text', READ_CAPS.text);
  if (reads.evaluation)
    text(recipe.evaluation.tokenizer, ['evaluation', 'tokenizer'], 'tokenizer', READ_CAPS.tokenizer);
  if (reads.model)
    refs.push({ file: recipe.model, recipePath: ['model'], what: 'model', outside: 'model-outside-workspace' });
  return refs;
}

/**
 * The engine's gate: the first file of the recipe that the policy refuses (outside the roots, not a
 * regular file, over its cap), as a PathError carrying the recipe key; undefined when all may be read.
 * Missing files are left to the reader, which names them in its own words.
 */
export function recipeReadRefusal(
  recipe: Recipe,
  roots: readonly string[],
  reads?: RecipeReads,
): PathError | undefined {
  for (const ref of recipeRefs(recipe, reads)) {
    const e = outsideRefusal(ref.file, roots, ref.what, ref.outside) ?? fileRefusal(ref.file, ref.what, ref.cap);
    if (e && e.code !== 'file-not-found') return new PathError(e.message, e.code, e.file, ref.recipePath);
  }
  return undefined;
}

// ---------------------------------------------------------------- deletion

/** Whether `p`, symlinks resolved, lies below `folder` (and is not `folder` itself). */
export function strictlyInside(p: string, folder: string): boolean {
  const real = realPath(p);
  const realFolder = realPath(folder);
  return real !== realFolder && below(real, realFolder);
}

/**
 * Whether `target` may be deleted by the store rooted at `root` (the `.haqa` folder): it must lie
 * strictly below the store's real folder once its parent's symlinks are resolved, and must not itself
 * be a symlink to a directory (rm would not follow it, but its size and contents would be counted
 * from elsewhere). `workspace` is the folder holding `.haqa`: `.haqa` itself being a link out of it
 * makes everything refused.
 */
export function mayDelete(target: string, root: string, workspace: string): boolean {
  if (!strictlyInside(root, workspace)) return false;
  const realRoot = realPath(root);
  const realTarget = path.join(realPath(path.dirname(path.resolve(target))), path.basename(target));
  if (realTarget === realRoot || !below(realTarget, realRoot)) return false;
  const lst = fs.lstatSync(target, { throwIfNoEntry: false });
  return lst !== undefined && !lst.isSymbolicLink();
}
