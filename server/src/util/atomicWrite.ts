// Files are written next to their destination under a temporary name, flushed, then renamed over it:
// a crash at any point leaves either the old file or the new one, never half of either.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

export function tempPathFor(dest: string): string {
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
