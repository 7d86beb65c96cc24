// Line length of the sources: prettier formats at 120 columns (the style) but leaves long strings, template
// literals and comments as they are, so a line can still run past it. 140 columns is the hard limit here: any
// .ts/.js/.mjs line over it under the source folders fails, named file:line. Columns are Unicode code points.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const FOLDERS = ['server/src', 'client/src', 'media', 'test', 'scripts', 'bench'];
const HARD_LIMIT = 140;
const EXTENSIONS = ['.ts', '.js', '.mjs'];

/** Each `file:line (N columns)` over `limit` in .ts/.js/.mjs files under root/folders (not node_modules, dot dirs). */
function longLines(root: string, folders: string[], limit: number): string[] {
  const found: string[] = [];
  const walk = (dir: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return; // a folder that is not there (e.g. media in a partial checkout) has no long lines
    }
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'node_modules' && !e.name.startsWith('.')) walk(full);
      } else if (e.isFile() && EXTENSIONS.includes(path.extname(e.name))) {
        const rel = path.relative(root, full).split(path.sep).join('/');
        fs.readFileSync(full, 'utf8')
          .split(/\r?\n/)
          .forEach((line, i) => {
            const columns = [...line].length;
            if (columns > limit) found.push(`${rel}:${i + 1} (${columns} columns)`);
          });
      }
    }
  };
  for (const f of folders) walk(path.join(root, f));
  return found;
}

test(`no source line is over ${HARD_LIMIT} columns (bench/ files on the temporary list excepted)`, () => {
  const over = longLines(ROOT, FOLDERS, HARD_LIMIT);
  assert.deepEqual(over, [], `lines over ${HARD_LIMIT} columns (wrap them at 120):\n${over.join('\n')}`);
});

test('the walker names file:line of a line over the limit, in .ts/.js/.mjs only, not in node_modules', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'haqa-line-length-'));
  try {
    const write = (rel: string, text: string) => {
      fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
      fs.writeFileSync(path.join(root, rel), text);
    };
    const at = 'x'.repeat(HARD_LIMIT);
    const over = 'y'.repeat(HARD_LIMIT + 1);
    write('src/a.ts', `ok\n${at}\n${over}\n`);
    write('src/deep/b.mjs', `${over}\r\nshort\r\n${'→'.repeat(HARD_LIMIT)}\n`); // 140 arrows: 140 columns, 420 bytes
    write('src/c.js', `${over}`);
    write('src/d.md', `${over}\n`);
    write('src/node_modules/e.js', `${over}\n`);
    write('src/.cache/f.ts', `${over}\n`);
    write('other/g.ts', `${over}\n`);
    assert.deepEqual(longLines(root, ['src', 'missing'], HARD_LIMIT), [
      'src/a.ts:3 (141 columns)',
      'src/c.js:1 (141 columns)',
      'src/deep/b.mjs:1 (141 columns)',
    ]);
    assert.deepEqual(longLines(root, ['src'], HARD_LIMIT + 1), []);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
