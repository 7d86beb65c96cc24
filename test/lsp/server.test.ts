// The language server over the real protocol: spawn `node dist/server.js --stdio`, speak LSP with
// vscode-jsonrpc, open documents, get diagnostics, hover, completion and code actions, apply the fix.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  createMessageConnection,
  StreamMessageReader,
  StreamMessageWriter,
  MessageConnection,
} from 'vscode-languageserver/node';
import type { Diagnostic, TextEdit, CodeAction, Hover, CompletionItem } from 'vscode-languageserver-types';
import type { PublishDiagnosticsParams } from 'vscode-languageserver/node';
import { tempDir } from '../helpers/tinyModel';
import { writeLlamaShapes, SMALL } from './llamaShapes';

const root = path.join(__dirname, '..', '..');
const serverJs = path.join(root, 'dist', 'server.js');
if (!fs.existsSync(serverJs))
  execFileSync(process.execPath, [path.join(root, 'esbuild.mjs')], { cwd: root, stdio: 'inherit' });

const dir = tempDir('haqa-lsp-');
const recipeFile = path.join(dir, 'haqa.yaml');
const recipeUri = pathToFileURL(recipeFile).href;

class Client {
  conn: MessageConnection;
  proc = spawn(process.execPath, [serverJs, '--stdio'], { stdio: ['pipe', 'pipe', 'pipe'] });
  latest = new Map<string, PublishDiagnosticsParams>();
  private waiters: { uri: string; pred: (d: Diagnostic[]) => boolean; resolve: (d: Diagnostic[]) => void }[] = [];
  logs: string[] = [];
  constructor() {
    this.conn = createMessageConnection(
      new StreamMessageReader(this.proc.stdout!),
      new StreamMessageWriter(this.proc.stdin!),
    );
    this.conn.onNotification('textDocument/publishDiagnostics', (p: PublishDiagnosticsParams) => {
      this.latest.set(p.uri, p);
      this.waiters = this.waiters.filter((w) => {
        if (w.uri === p.uri && w.pred(p.diagnostics)) {
          w.resolve(p.diagnostics);
          return false;
        }
        return true;
      });
    });
    this.conn.onNotification('window/logMessage', (p: { message: string }) => {
      this.logs.push(p.message);
    });
    this.conn.onRequest('client/registerCapability', () => null);
    this.conn.listen();
  }
  diagnostics(uri: string, pred: (d: Diagnostic[]) => boolean = () => true, ms = 10000): Promise<Diagnostic[]> {
    const have = this.latest.get(uri);
    if (have && pred(have.diagnostics)) return Promise.resolve(have.diagnostics);
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () =>
          reject(
            new Error(
              `no matching diagnostics for ${uri}; last: ` +
                `${JSON.stringify(this.latest.get(uri)?.diagnostics.map((d) => d.code))}; ` +
                `logs: ${this.logs.join('\n')}`,
            ),
          ),
        ms,
      );
      this.waiters.push({ uri, pred, resolve: (d) => (clearTimeout(t), resolve(d)) });
    });
  }
  async close() {
    await this.conn.sendRequest('shutdown');
    await this.conn.sendNotification('exit');
    await new Promise((r) => this.proc.once('exit', r));
    this.conn.dispose();
  }
}

const has = (code: string) => (ds: Diagnostic[]) => ds.some((d) => d.code === code);
const lacks = (code: string) => (ds: Diagnostic[]) => !ds.some((d) => d.code === code);

const TEXT = `# recipe under test
model: ./model.onnx
quantize:
  bitz: 4 # default bits
  skip:
    - lm_head
    - model.layers.5.mlp.up_proj # stale: the model has 2 layers
`;

let client: Client;
const started = (async () => {
  await writeLlamaShapes(dir, SMALL);
  client = new Client();
  const init = await client.conn.sendRequest('initialize', {
    processId: process.pid,
    rootUri: null,
    workspaceFolders: [{ uri: pathToFileURL(dir).href, name: 'ws' }],
    capabilities: { workspace: { didChangeWatchedFiles: { dynamicRegistration: true } } },
    initializationOptions: { diagnosticsDelayMs: 20 },
  });
  await client.conn.sendNotification('initialized', {});
  return init as { capabilities: Record<string, unknown> };
})();
after(async () => client && (await client.close()));

test('initialize announces incremental sync, hover, completion and quick fixes', async () => {
  const { capabilities } = await started;
  assert.equal(capabilities.textDocumentSync, 2);
  assert.equal(capabilities.hoverProvider, true);
  assert.ok(capabilities.completionProvider);
  assert.ok(capabilities.codeActionProvider);
});

test('open → diagnostics; code action → apply → the diagnostic goes; hover; completion; watched model', async () => {
  await started;
  await client.conn.sendNotification('textDocument/didOpen', {
    textDocument: { uri: recipeUri, languageId: 'yaml', version: 1, text: TEXT },
  });
  const diags = await client.diagnostics(recipeUri, (ds) => has('unknown-key')(ds) && has('pattern-no-match')(ds));
  const typo = diags.find((d) => d.code === 'unknown-key')!;
  assert.deepEqual(typo.range, { start: { line: 3, character: 2 }, end: { line: 3, character: 6 } });
  assert.equal(typo.source, 'haqa');

  // Quick fix for the typo, applied as the client would: an incremental change with the edit.
  const actions = (await client.conn.sendRequest('textDocument/codeAction', {
    textDocument: { uri: recipeUri },
    range: typo.range,
    context: { diagnostics: [typo] },
  })) as CodeAction[];
  const fix = actions.find((a) => a.title === "Change 'bitz' to 'bits'")!;
  assert.ok(fix, JSON.stringify(actions));
  const edits = fix.edit!.changes![recipeUri] as TextEdit[];
  await client.conn.sendNotification('textDocument/didChange', {
    textDocument: { uri: recipeUri, version: 2 },
    contentChanges: edits.map((e) => ({ range: e.range, text: e.newText })),
  });
  const after2 = await client.diagnostics(recipeUri, lacks('unknown-key'));
  assert.ok(has('pattern-no-match')(after2));

  // Drop the stale pattern with its quick fix.
  const stale = after2.find((d) => d.code === 'pattern-no-match')!;
  const acts2 = (await client.conn.sendRequest('textDocument/codeAction', {
    textDocument: { uri: recipeUri },
    range: stale.range,
    context: { diagnostics: [stale] },
  })) as CodeAction[];
  const drop = acts2.find((a) => a.title === 'Remove the pattern that matches no layer')!;
  await client.conn.sendNotification('textDocument/didChange', {
    textDocument: { uri: recipeUri, version: 3 },
    contentChanges: (drop.edit!.changes![recipeUri] as TextEdit[]).map((e) => ({ range: e.range, text: e.newText })),
  });
  assert.deepEqual(await client.diagnostics(recipeUri, (ds) => ds.length === 0), []);

  // Hover over lm_head (line 5 now reads "    - lm_head").
  const hover = (await client.conn.sendRequest('textDocument/hover', {
    textDocument: { uri: recipeUri },
    position: { line: 5, character: 8 },
  })) as Hover;
  assert.match((hover.contents as { value: string }).value, /matches \*\*1\*\* of 15 layers/);

  // Completion of a new skip entry: layer names and patterns from the model.
  await client.conn.sendNotification('textDocument/didChange', {
    textDocument: { uri: recipeUri, version: 4 },
    contentChanges: [{ range: { start: { line: 6, character: 0 }, end: { line: 6, character: 0 } }, text: '    - \n' }],
  });
  const items = (await client.conn.sendRequest('textDocument/completion', {
    textDocument: { uri: recipeUri },
    position: { line: 6, character: 6 },
  })) as CompletionItem[];
  assert.ok(
    items.some((i) => i.label === 'model.layers.*.mlp.down_proj'),
    JSON.stringify(items.map((i) => i.label)),
  );
  await client.conn.sendNotification('textDocument/didChange', {
    textDocument: { uri: recipeUri, version: 5 },
    contentChanges: [
      {
        range: { start: { line: 6, character: 6 }, end: { line: 6, character: 6 } },
        text: 'model.layers.3.mlp.up_proj',
      },
    ],
  });
  await client.diagnostics(recipeUri, has('pattern-no-match'));

  // The model grows on disk: after the watched-file event the pattern matches and the warning goes.
  await writeLlamaShapes(dir, { ...SMALL, layers: 4 });
  const future = new Date(Date.now() + 10_000);
  fs.utimesSync(path.join(dir, 'model.onnx'), future, future);
  await client.conn.sendNotification('workspace/didChangeWatchedFiles', {
    changes: [{ uri: pathToFileURL(path.join(dir, 'model.onnx')).href, type: 2 }],
  });
  assert.deepEqual(await client.diagnostics(recipeUri, (ds) => ds.length === 0), []);
});

test('haqa/knobEdits turns a tuner assignment into minimal edits of the open recipe', async () => {
  await started;
  const uri = pathToFileURL(path.join(dir, 'knobs.haqa.yaml')).href;
  const text = 'model: ./model.onnx # m\nquantize:\n  bits: 4 # default\n';
  await client.conn.sendNotification('textDocument/didOpen', {
    textDocument: { uri, languageId: 'yaml', version: 1, text },
  });
  const r = (await client.conn.sendRequest('haqa/knobEdits', {
    uri,
    assignment: { 'quantize.bits': 8, 'quantize.bits@lm_head': 32 },
  })) as { edits: TextEdit[] };
  assert.equal(r.edits.length, 1);
  await client.conn.sendNotification('textDocument/didChange', {
    textDocument: { uri, version: 2 },
    contentChanges: r.edits.map((e) => ({ range: e.range, text: e.newText })),
  });
  const ds = await client.diagnostics(uri, has('slow-8bit-kernel'));
  assert.ok(
    ds.every((d) => d.code === 'slow-8bit-kernel'),
    JSON.stringify(ds),
  );
});

test('config.json gets diagnostics; junk and odd requests never crash the server', async () => {
  await started;
  const cfgUri = pathToFileURL(path.join(dir, 'config.json')).href;
  await client.conn.sendNotification('textDocument/didOpen', {
    textDocument: {
      uri: cfgUri,
      languageId: 'json',
      version: 1,
      text:
        '{"model_type": "llama", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": ' +
        '2, "num_attention_heads": 8, "num_key_value_heads": 3, "vocab_size": 128}',
    },
  });
  await client.diagnostics(cfgUri, has('kv-heads-not-divisor'));

  const junkUri = pathToFileURL(path.join(dir, 'junk.haqa.yaml')).href;
  await client.conn.sendNotification('textDocument/didOpen', {
    textDocument: { uri: junkUri, languageId: 'yaml', version: 1, text: '\u0000\u0001\u0002PK\u0003\u0004' },
  });
  await client.diagnostics(junkUri, has('binary-file'));
  // Requests on unknown documents, positions past the end, and a broken document.
  assert.equal(
    await client.conn.sendRequest('textDocument/hover', {
      textDocument: { uri: 'file:///nowhere/haqa.yaml' },
      position: { line: 0, character: 0 },
    }),
    null,
  );
  await client.conn.sendRequest('textDocument/hover', {
    textDocument: { uri: junkUri },
    position: { line: 99, character: 99 },
  });
  await client.conn.sendRequest('textDocument/completion', {
    textDocument: { uri: junkUri },
    position: { line: 99, character: 99 },
  });
  await client.conn.sendRequest('textDocument/codeAction', {
    textDocument: { uri: junkUri },
    range: { start: { line: 0, character: 0 }, end: { line: 0, character: 1 } },
    context: {
      diagnostics: [
        {
          range: { start: { line: 0, character: 0 }, end: { line: 0, character: 1 } },
          message: 'x',
          source: 'haqa',
          data: { fix: 'remove', path: ['a', 7] },
        },
      ],
    },
  });
  const brokenUri = pathToFileURL(path.join(dir, 'broken.haqa.yaml')).href;
  await client.conn.sendNotification('textDocument/didOpen', {
    textDocument: { uri: brokenUri, languageId: 'yaml', version: 1, text: 'model: [\n  - : : :\n\t\tquantize: {' },
  });
  await client.diagnostics(brokenUri, has('yaml-syntax'));
  // Still alive and answering.
  const h = await client.conn.sendRequest('textDocument/hover', {
    textDocument: { uri: recipeUri },
    position: { line: 1, character: 2 },
  });
  assert.ok(h);
  // Closing clears the diagnostics.
  await client.conn.sendNotification('textDocument/didClose', { textDocument: { uri: junkUri } });
  await client.diagnostics(junkUri, (ds) => ds.length === 0);
});

test('hostile documents get a bounded diagnostic at their place, and the server keeps answering', async () => {
  await started;
  const open = async (name: string, text: string) => {
    const uri = pathToFileURL(path.join(dir, name)).href;
    await client.conn.sendNotification('textDocument/didOpen', {
      textDocument: { uri, languageId: name.endsWith('.json') ? 'json' : 'yaml', version: 1, text },
    });
    return uri;
  };
  let long = 'model: ./model.onnx\nquantize:\n  overrides:\n';
  for (let i = 0; i < 12_500; i++)
    long +=
      `    - match: model.layers.${i % 2}.mlp.down_proj\n` +
      `      bits: 8\n      block_size: 64\n      accuracy_level: 4\n`;
  const cases: [string, string, string, number][] = [
    ['merge.haqa.yaml', 'model: !!merge x\n', 'yaml-unsupported-value', 0],
    ['deep.haqa.yaml', `model: ./model.onnx\nx: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n`, 'yaml-too-deep', 1],
    ['long.haqa.yaml', long, 'file-too-large', 0],
    [
      'deep/config.json',
      `{"model_type": "llama", "x": ${'['.repeat(10_000)}${']'.repeat(10_000)}}`,
      'json-too-deep',
      0,
    ],
  ];
  fs.mkdirSync(path.join(dir, 'deep'), { recursive: true });
  for (const [name, text, code, line] of cases) {
    const uri = await open(name, text);
    const ds = await client.diagnostics(uri, has(code));
    assert.equal(ds.find((d) => d.code === code)!.range.start.line, line, name);
    // Requests on the hostile document are answered, not crashed on.
    await client.conn.sendRequest('textDocument/hover', { textDocument: { uri }, position: { line: 0, character: 2 } });
    await client.conn.sendRequest('textDocument/completion', {
      textDocument: { uri },
      position: { line: 1, character: 2 },
    });
    await client.conn.sendRequest('haqa/knobEdits', { uri, assignment: { 'quantize.bits': 8 } });
  }
  const h = await client.conn.sendRequest('textDocument/hover', {
    textDocument: { uri: recipeUri },
    position: { line: 1, character: 2 },
  });
  assert.ok(h);
  assert.equal(client.proc.exitCode, null);
});
