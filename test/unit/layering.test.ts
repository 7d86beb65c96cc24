// Imports follow the layering: the server never imports the client, and the engine folders (config,
// model, compress, bench, agent, util) never import the CLI or the language server, and the language server
// never imports the CLI (the tuning session is agent/session.ts, called by both). Client and server
// share their contract through server/src/lsp/protocol.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '../..');
function tsFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? tsFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}
/** Files of the repository a file imports (relative imports only), as paths relative to the root. */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from|import|require)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
    out.push(path.relative(root, path.resolve(path.dirname(file), m[1])));
  }
  return out;
}

test('the server does not import the client', () => {
  const bad = tsFiles(path.join(root, 'server/src')).flatMap((f) =>
    importsOf(f)
      .filter((i) => i.startsWith('client/'))
      .map((i) => `${path.relative(root, f)} → ${i}`),
  );
  assert.deepEqual(bad, []);
});

test('engine folders do not import the CLI or the language server', () => {
  const engine = ['config', 'model', 'compress', 'bench', 'agent', 'util'];
  const bad: string[] = [];
  for (const folder of engine) {
    for (const f of tsFiles(path.join(root, 'server/src', folder))) {
      for (const i of importsOf(f)) {
        if (/^server\/src\/(cli|lsp)(\/|$)/.test(i) || i === 'server/src/cli')
          bad.push(`${path.relative(root, f)} → ${i}`);
      }
    }
  }
  assert.deepEqual(bad, []);
});

test('the language server does not import the CLI', () => {
  const bad = tsFiles(path.join(root, 'server/src/lsp')).flatMap((f) =>
    importsOf(f)
      .filter((i) => /^server\/src\/cli(\/|\.ts$|$)/.test(i))
      .map((i) => `${path.relative(root, f)} → ${i}`),
  );
  assert.deepEqual(bad, []);
});
