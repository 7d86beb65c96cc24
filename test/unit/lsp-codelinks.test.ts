// Issue 21 item 8: diagnostic codes link to their row of docs/diagnostics.md, and every code the
// checks can emit has a row (with the anchor the link points at).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DIAGNOSTICS_DOC, withCodeLink } from '../../server/src/lsp/codeLinks';

const root = path.join(__dirname, '..', '..');
const doc = fs.readFileSync(path.join(root, 'docs', 'diagnostics.md'), 'utf8');
const anchors = new Set([...doc.matchAll(/<a id="([a-z0-9-]+)"><\/a>/g)].map((m) => m[1]));

function sources(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) =>
      e.isDirectory()
        ? sources(path.join(dir, e.name))
        : e.name.endsWith('.ts')
          ? [fs.readFileSync(path.join(dir, e.name), 'utf8')]
          : [],
    );
}

test('a haqa diagnostic gets a codeDescription link to its anchor; others are left alone', () => {
  const d = withCodeLink({
    range: { start: { line: 0, character: 0 }, end: { line: 0, character: 1 } },
    message: 'm',
    source: 'haqa',
    code: 'unknown-key',
  });
  assert.equal(d.codeDescription?.href, `${DIAGNOSTICS_DOC}#unknown-key`);
  assert.ok(anchors.has('unknown-key'));
  const other = { range: d.range, message: 'm', source: 'yaml', code: 'x' };
  assert.equal(withCodeLink(other), other);
});

test('every code in server/src has a row with an anchor in docs/diagnostics.md', () => {
  const text = sources(path.join(root, 'server', 'src')).join('\n');
  const codes = new Set<string>();
  for (const m of text.matchAll(/'(?:error|warning|information|hint)',\s*'([a-z0-9]+(?:-[a-z0-9]+)+)'/g))
    codes.add(m[1]);
  for (const m of text.matchAll(/\bcode: '([a-z0-9]+(?:-[a-z0-9]+)+)'/g)) codes.add(m[1]);
  const pathCodes = /export type PathCode =([^;]+);/.exec(text)?.[1] ?? '';
  for (const m of pathCodes.matchAll(/'([a-z0-9-]+)'/g)) codes.add(m[1]);
  assert.ok(codes.size > 30, `found ${codes.size} codes`);
  const missing = [...codes].filter((c) => !anchors.has(c));
  assert.deepEqual(missing, [], 'codes without a row in docs/diagnostics.md');
});
