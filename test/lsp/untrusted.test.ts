// The language server with a hostile model file: layer names carrying escape codes, a BEL and a bidi
// override reach the editor's diagnostics, hover and quick-fix titles as visible escapes, never raw.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createMessageConnection, StreamMessageReader, StreamMessageWriter } from 'vscode-languageserver/node';
import type { CodeAction, Diagnostic, Hover } from 'vscode-languageserver-types';
import type { PublishDiagnosticsParams } from 'vscode-languageserver/node';
import { writeModel } from '../../server/src/model/onnx';
import { tempDir, tinyMlpModel } from '../helpers/tinyModel';

const root = path.join(__dirname, '..', '..');
const serverJs = path.join(root, 'dist', 'server.js');
if (!fs.existsSync(serverJs))
  execFileSync(process.execPath, [path.join(root, 'esbuild.mjs')], { cwd: root, stdio: 'inherit' });
// eslint-disable-next-line no-control-regex
const RAW = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
const HOSTILE = 'evil\u001b[2J\u001b]0;pwned\u0007\u202e';

const dir = tempDir('haqa-lsp-untrusted-');
const proc = spawn(process.execPath, [serverJs, '--stdio'], { stdio: ['pipe', 'pipe', 'pipe'] });
const conn = createMessageConnection(new StreamMessageReader(proc.stdout!), new StreamMessageWriter(proc.stdin!));
const published = new Map<string, Diagnostic[]>();
conn.onNotification('textDocument/publishDiagnostics', (p: PublishDiagnosticsParams) => {
  published.set(p.uri, p.diagnostics);
});
conn.onRequest('client/registerCapability', () => null);
conn.listen();
after(async () => {
  await conn.sendRequest('shutdown');
  await conn.sendNotification('exit');
  await new Promise((r) => proc.once('exit', r));
  conn.dispose();
});

async function until<T>(get: () => T | undefined, ms = 10_000): Promise<T> {
  for (const t0 = Date.now(); Date.now() - t0 < ms; await new Promise((r) => setTimeout(r, 20))) {
    const v = get();
    if (v !== undefined) return v;
  }
  throw new Error('timed out');
}

test('diagnostics, hover and quick-fix titles quote hostile layer names escaped', async () => {
  const m = tinyMlpModel({ hidden: 16, intermediate: 32, layers: 2 });
  const first = m.graph!.node!.filter((n) => n.opType === 'MatMul')[0];
  first.name = `/model/layers.0/mlp/${HOSTILE}/MatMul`;
  // An exporter-made weight name, so the (hostile) scope is what names this layer (model/layerNames.ts).
  const w = m.graph!.initializer!.find((x) => x.name === first.input![1])!;
  w.name = first.input![1] = 'onnx::MatMul_1';
  await writeModel(m, path.join(dir, 'model.onnx'));
  const text =
    'model: ./model.onnx\nquantize:\n  bits: 4\n  skip:\n    - model.layers.0.mlp.evil\n    - model.layers.0.mlp.*\n';
  const uri = pathToFileURL(path.join(dir, 'haqa.yaml')).href;
  await conn.sendRequest('initialize', {
    processId: process.pid,
    rootUri: null,
    workspaceFolders: [{ uri: pathToFileURL(dir).href, name: 'ws' }],
    capabilities: {},
    initializationOptions: { diagnosticsDelayMs: 20 },
  });
  await conn.sendNotification('initialized', {});
  await conn.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'yaml', version: 1, text } });
  const diags = await until(() =>
    published.get(uri)?.some((d) => d.code === 'pattern-no-match') ? published.get(uri) : undefined,
  );
  const miss = diags.find((d) => d.code === 'pattern-no-match')!;
  const text0 = (d: Diagnostic) => (typeof d.message === 'string' ? d.message : d.message.value);
  assert.ok(text0(miss).includes('model.layers.0.mlp.evil\\u001b[2J\\u001b]0;pwned\\u0007\\u202e'), text0(miss));
  for (const d of diags) assert.doesNotMatch(text0(d), RAW, text0(d));
  const actions = (await conn.sendRequest('textDocument/codeAction', {
    textDocument: { uri },
    range: miss.range,
    context: { diagnostics: [miss] },
  })) as CodeAction[];
  assert.ok(actions.length > 0);
  for (const a of actions) assert.doesNotMatch(a.title, RAW, a.title);
  const hover = (await conn.sendRequest('textDocument/hover', {
    textDocument: { uri },
    position: { line: 5, character: 10 },
  })) as Hover;
  const value = (hover.contents as { value: string }).value;
  assert.match(value, /matches/);
  assert.ok(value.includes('\\u001b[2J'), value);
  assert.doesNotMatch(value, RAW);
});
