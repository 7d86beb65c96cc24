// Files are written next to their destination under a temporary name, flushed, then renamed over it:
// a crash at any point leaves either the old file or the new one, never half of either.
//
// Temporary names are `.<name>.<pid>.<8 hex>.tmp`. A kill -9 mid-write leaves one behind; it is removed
// the next time the same destination is written (tempPathFor cleans the leftovers of writers that are
// gone), and `haqa runs prune` removes those in the store. A temp whose writer is alive is never touched.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

const TEMP_NAME = /^\.(.+)\.(\d+)\.[0-9a-f]{8}\.tmp$/;

/** For a temporary name: the destination's base name and the writer's pid. */
export function parseTempName(name: string): { dest: string; pid: number } | undefined {
  const m = TEMP_NAME.exec(name);
  return m ? { dest: m[1], pid: Number(m[2]) } : undefined;
}

/** Whether a process with this pid exists (EPERM: it does, someone else's). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** A leftover of an atomic write whose writer is gone. */
export function isStaleTemp(name: string): boolean {
  const t = parseTempName(name);
  return t !== undefined && t.pid > 0 && !pidAlive(t.pid);
}

/** Removes the leftovers of interrupted writes of `dest` (best effort); returns their paths. */
export function removeStaleTemps(dest: string): string[] {
  const dir = path.dirname(dest);
  const base = path.basename(dest);
  const removed: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    const t = parseTempName(name);
    if (!t || t.dest !== base || !isStaleTemp(name)) continue;
    const full = path.join(dir, name);
    if (!fs.lstatSync(full, { throwIfNoEntry: false })?.isFile()) continue;
    try {
      fs.rmSync(full, { force: true });
      removed.push(full);
    } catch {
      /* another process removed it, or the folder is read-only: harmless */
    }
  }
  return removed;
}

/** A fresh temporary name beside `dest`; leftovers of earlier writers of `dest` that died are removed first. */
export function tempPathFor(dest: string): string {
  removeStaleTemps(dest);
  return path.join(path.dirname(dest), `.${path.basename(dest)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Write `data` to `dest` atomically (same directory temp file, fsync, rename). */
export async function writeFileAtomic(dest: string, data: string | Uint8Array): Promise<void> {
  const tmp = tempPathFor(dest);
  const fh = await fs.promises.open(tmp, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  try {
    await fs.promises.rename(tmp, dest);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
}

/** Synchronous twin for the few places that cannot await (process exit paths). */
export function writeFileAtomicSync(dest: string, data: string | Uint8Array): void {
  const tmp = tempPathFor(dest);
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.renameSync(tmp, dest);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}
