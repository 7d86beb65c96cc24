// The diagnostics hub: sources merged per document, the first change after a quiet spell checked at
// once, a burst coalesced into one more check, a failing source logged without losing the others.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TextDocument } from 'vscode-languageserver-textdocument';
import type { Connection, TextDocuments } from 'vscode-languageserver/node';
import { DiagnosticsHub } from '../../server/src/lsp/diagnosticsHub';

function fakes() {
  const docs = new Map<string, TextDocument>();
  const published: { uri: string; version?: number; codes: string[] }[] = [];
  const errors: string[] = [];
  const connection = {
    sendDiagnostics: async (p: { uri: string; version?: number; diagnostics: { code?: string | number }[] }) => {
      published.push({ uri: p.uri, version: p.version, codes: p.diagnostics.map((d) => String(d.code)) });
    },
    console: { error: (m: string) => errors.push(m) },
  } as unknown as Connection;
  const documents = {
    get: (u: string) => docs.get(u),
    all: () => [...docs.values()],
  } as unknown as TextDocuments<TextDocument>;
  return { docs, published, errors, connection, documents };
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const range = { start: { line: 0, character: 0 }, end: { line: 0, character: 1 } };

test('sources are merged; a throwing source is logged and the others still publish', async () => {
  const f = fakes();
  f.docs.set('u', TextDocument.create('u', 'yaml', 1, 'x'));
  const hub = new DiagnosticsHub(f.connection, f.documents, 20);
  hub.register({ id: 'a', appliesTo: () => true, compute: () => [{ range, message: 'a', code: 'from-a' }] });
  hub.register({ id: 'b', appliesTo: () => true, compute: async () => [{ range, message: 'b', code: 'from-b' }] });
  hub.register({
    id: 'boom',
    appliesTo: () => true,
    compute: () => {
      throw new Error('kaput');
    },
  });
  hub.register({
    id: 'other',
    appliesTo: (d) => d.uri !== 'u',
    compute: () => [{ range, message: 'c', code: 'never' }],
  });
  await sleep(80);
  const last = f.published[f.published.length - 1];
  assert.deepEqual(last, { uri: 'u', version: 1, codes: ['from-a', 'from-b'] });
  assert.match(f.errors.join('\n'), /source 'boom' failed.*kaput/s);
});

test('a single change is checked at once; a burst is coalesced; closing clears', async () => {
  const f = fakes();
  const hub = new DiagnosticsHub(f.connection, f.documents, 400);
  let runs = 0;
  hub.register({
    id: 'count',
    appliesTo: () => true,
    compute: (d) => (runs++, [{ range, message: d.getText(), code: `v${d.version}` }]),
  });
  f.docs.set('u', TextDocument.create('u', 'yaml', 1, 'x'));
  hub.schedule('u');
  await sleep(20);
  assert.equal(runs, 1, 'the first change after a quiet spell runs without waiting for the delay');
  for (let v = 2; v <= 10; v++) {
    f.docs.set('u', TextDocument.create('u', 'yaml', v, 'x'.repeat(v)));
    hub.schedule('u'); // a burst of typing, well within the 400 ms spacing
  }
  assert.equal(runs, 1, 'typing within the delay queues nothing extra yet');
  for (let i = 0; i < 100 && runs < 2; i++) await sleep(20);
  await sleep(50);
  assert.equal(runs, 2, 'the burst became exactly one more check');
  assert.deepEqual(f.published[f.published.length - 1], { uri: 'u', version: 10, codes: ['v10'] });
  hub.close('u');
  await sleep(5);
  assert.deepEqual(f.published[f.published.length - 1], { uri: 'u', version: undefined, codes: [] });
});
