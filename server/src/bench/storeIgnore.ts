// `.haqa/` holds run records, built models and caches: specific to this machine, often large, never meant
// for version control. When HAQA creates the folder it writes `.haqa/.gitignore` containing `*` (as
// Python's venv and pytest do for theirs), so git ignores everything in it, that file included.
//
// Why this and not an offer to edit the repository's .gitignore: it changes no file of the user's, asks
// nothing (the CLI and CI cannot answer a prompt anyway), needs no check that the folder is a git
// repository or that some rule already covers `.haqa/`, and goes away with the folder. The file is written
// only when HAQA creates `.haqa/`: a store that already exists is left as it is, so a user who edited or
// deleted the file (to commit some runs) keeps their choice.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../util/atomicWrite';

export const STORE_GITIGNORE =
  '# Written by HAQA when it created this folder: run records, built models and caches stay out of git.\n' +
  '# Edit or delete this file to commit some of them; HAQA does not write it again.\n' +
  '*\n';

/**
 * Creates the store folder `root` (and its parents) if it does not exist; when this call created it,
 * writes its `.gitignore`. Returns whether it created the folder. An existing `root` is left untouched,
 * whatever it is (the store's own checks refuse a symlink out of the workspace).
 */
export async function createStoreRoot(root: string): Promise<boolean> {
  await fs.promises.mkdir(path.dirname(root), { recursive: true });
  try {
    await fs.promises.mkdir(root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  await writeFileAtomic(path.join(root, '.gitignore'), STORE_GITIGNORE);
  return true;
}
