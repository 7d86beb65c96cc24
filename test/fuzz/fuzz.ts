// The fuzz harness: seeded hostile inputs against the five ways untrusted data gets in — recipes
// (`haqa check`), Hugging Face config.json (`haqa check`), ONNX models (`haqa inspect`, the recipe
// check, `haqa quantize`), LSP messages (malformed params to the built server over stdio) and agent
// tool calls (hostile tool_use blocks to the Claude agent's handler and the loop's validator).
//
// Each input's outcome is classified:
//   clear     a refusal the user can act on: a diagnostic, exit 1/2, an OnnxError, a tool refusal
//   accepted  no complaint
//   crash     an engine error (TypeError, RangeError, stack overflow…), exit 70, a dead server, or a
//             handler failure logged with a stack trace
//   hang      over the per-input deadline (measured; the LSP one waits at most that long)
//   dataLost  a write that left something behind: a partial output or temp file after a refusal, an
//             output that does not read back, or an input model changed
// Run: `node --import tsx test/fuzz/fuzz.ts [--seed 1] [--n 100] [--json out.json] [--strict]` (n per target);
// test/unit/fuzz.test.ts runs a short fixed-seed campaign and bench/run.ts a longer one.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { createMessageConnection, StreamMessageReader, StreamMessageWriter } from 'vscode-languageserver/node';
import { main } from '../../server/src/cli';
import type { CliIO } from '../../server/src/cli/command';
import { analyzeRecipe, RecipeAnalysis } from '../../server/src/config/check';
import { ModelCache } from '../../server/src/config/modelCache';
import { onnx, encodeModel, readModel, writeModel } from '../../server/src/model/onnx';
import { ClaudeAgent } from '../../server/src/agent/claude';
import { defaultSpace, validateConfig } from '../../server/src/agent/space';
import { syntheticSetting } from '../../server/src/agent/synthetic';
import { objectiveOf } from '../../server/src/agent/objective';
import { tinyMlpModel } from '../helpers/tinyModel';
import { writeLlamaShapes, SMALL } from '../lsp/llamaShapes';
import { Rng, rng, mutateText, mutateJson, mutateModel, mutateBytes, hostile } from './mutators';

export type Kind = 'clear' | 'accepted' | 'crash' | 'hang' | 'dataLost';
export const TARGETS = ['recipe', 'config', 'onnx', 'lsp', 'tool'] as const;
export type Target = (typeof TARGETS)[number];

export interface Counts {
  inputs: number;
  clear: number;
  accepted: number;
  crash: number;
  hang: number;
  dataLost: number;
}
export interface Failure {
  target: Target;
  index: number;
  kind: Kind;
  input: string;
  detail: string;
}
export interface FuzzReport {
  seed: number;
  perTarget: Record<string, Counts>;
  total: Counts;
  failures: Failure[];
  /** Recipe inputs whose incremental parse (patching the previous tree) disagreed with a fresh parse. */
  incrementalMismatches: number;
  seconds: number;
}

export interface FuzzOptions {
  seed: number;
  /** Inputs per target. */
  n: Partial<Record<Target, number>>;
  /** Per-input deadline, ms. */
  deadlineMs?: number;
  /** Scratch folder (removed by the caller). */
  dir: string;
  /** The built language server (dist/server.js); the LSP target is skipped without it. */
  serverJs?: string;
}

const empty = (): Counts => ({ inputs: 0, clear: 0, accepted: 0, crash: 0, hang: 0, dataLost: 0 });

/** Errors the JavaScript engine raises when code met input it did not expect: never a user's error. */
export function isEngineError(err: unknown): boolean {
  const e = err as Error;
  if (!(e instanceof Error) && typeof e !== 'object') return true;
  const names = [
    'TypeError',
    'RangeError',
    'ReferenceError',
    'SyntaxError',
    'DataCloneError',
    'EvalError',
    'InternalError',
  ];
  const internal = new RegExp(
    /Maximum call stack|Cannot read propert|is not a function|is not iterable/.source +
      /|Invalid (typed )?array length|out of memory/.source,
    'i',
  );
  return names.includes(e?.name ?? '') || internal.test(e?.message ?? '');
}

const shown = (s: string) =>
  s.length > 160 ? `${JSON.stringify(s.slice(0, 120))}… (${s.length} chars)` : JSON.stringify(s);

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string; thrown?: unknown }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIO = { out: (l) => out.push(l), err: (l) => err.push(l), signal: new AbortController().signal };
  try {
    return { code: await main(argv, io), out: out.join('\n'), err: err.join('\n') };
  } catch (e) {
    // What runCli would print as "internal error" and exit 70 with.
    return { code: 70, out: out.join('\n'), err: err.join('\n'), thrown: e };
  }
}

function cliKind(r: { code: number; err: string; thrown?: unknown }, acceptCodes = [0]): Kind {
  if (r.thrown !== undefined || r.code === 70) return 'crash';
  if (/\n\s+at .+:\d+:\d+\)?$/m.test(r.err)) return 'crash'; // a stack trace in the user's terminal
  if (acceptCodes.includes(r.code)) return 'accepted';
  return r.code === 1 || r.code === 2 ? 'clear' : 'crash';
}

const listing = (dir: string) => fs.readdirSync(dir).sort().join('\n');

// ---------------------------------------------------------------- the run

export async function runFuzz(opts: FuzzOptions): Promise<FuzzReport> {
  const t0 = Date.now();
  const deadline = opts.deadlineMs ?? 5000;
  const report: FuzzReport = {
    seed: opts.seed,
    perTarget: {},
    total: empty(),
    failures: [],
    incrementalMismatches: 0,
    seconds: 0,
  };
  const note = (target: Target, index: number, kind: Kind, input: string, detail: string, ms: number) => {
    if (kind !== 'crash' && kind !== 'dataLost' && ms > deadline) kind = 'hang';
    const c = (report.perTarget[target] ??= empty());
    c.inputs++;
    c[kind]++;
    report.total.inputs++;
    report.total[kind]++;
    if (kind === 'crash' || kind === 'hang' || kind === 'dataLost') {
      report.failures.push({ target, index, kind, input, detail: `${detail} (${Math.round(ms)} ms)` });
    }
  };
  fs.mkdirSync(opts.dir, { recursive: true });
  const ws = path.join(opts.dir, 'ws');
  fs.mkdirSync(ws, { recursive: true });
  await writeLlamaShapes(ws, SMALL);
  fs.writeFileSync(path.join(ws, 'calib.txt'), 'the quick brown fox jumps over the lazy dog\n'.repeat(20));

  for (const target of TARGETS) {
    const n = opts.n[target] ?? 0;
    if (n <= 0) continue;
    const r = rng(opts.seed * 7919 + TARGETS.indexOf(target));
    if (target === 'recipe') await fuzzRecipes(r, n, ws, note, () => report.incrementalMismatches++);
    else if (target === 'config') await fuzzConfigs(r, n, ws, note);
    else if (target === 'onnx') await fuzzModels(r, n, opts.dir, note);
    else if (target === 'lsp') {
      if (opts.serverJs && fs.existsSync(opts.serverJs)) await fuzzLsp(r, n, ws, opts.serverJs, deadline, note);
    } else await fuzzTools(r, n, note);
  }
  report.seconds = (Date.now() - t0) / 1000;
  return report;
}

type Note = (target: Target, index: number, kind: Kind, input: string, detail: string, ms: number) => void;

// ---------------------------------------------------------------- recipes

export const RECIPES = [
  fs.readFileSync(path.resolve(__dirname, '../../examples/tiny-llama/haqa.yaml'), 'utf8'),
  'version: 1\nmodel: ./model.onnx\nquantize:\n  bits: 4\n  block_size: 32\n  skip: [lm_head]\n  overrides:\n' +
    '    - match: model.layers.*.mlp.down_proj\n      bits: 8\n' +
    '    - match: model.layers.0.self_attn.*\n      bits: 8\n',
  'version: 1\nmodel: ./model.onnx\nsparsity:\n  rules:\n' +
    '    - match: "**"\n      pattern: "2:4"\nlow_rank:\n  rules:\n' +
    '    - match: model.layers.*.mlp.*\n      rank: 8\ncalibration:\n  text: ./calib.txt\n',
  'version: 1\nmodel: ./model.onnx\nsearch:\n  trials: 4\n  space:\n    quantize.bits: [4, 8]\n' +
    '    quantize.bits@model.layers.*.mlp.down_proj: [4, 8, 32]\n    runtime.intra_op_threads: [1, 2]\n',
];

async function fuzzRecipes(r: Rng, n: number, ws: string, note: Note, mismatch: () => void): Promise<void> {
  const models = new ModelCache();
  const file = path.join(ws, 'fuzz.haqa.yaml');
  const previous = new Map<string, RecipeAnalysis>();
  for (let i = 0; i < n; i++) {
    const base = r.pick(RECIPES);
    const text = mutateText(r, base);
    const t = performance.now();
    let kind: Kind = 'accepted';
    let detail = '';
    try {
      // The CLI's check (file on disk, exit codes), then the editor's path: an incremental parse
      // from the unmutated text, compared with a fresh one.
      fs.writeFileSync(file, text);
      const res = await cli(['check', file]);
      kind = cliKind(res);
      detail = res.thrown ? String((res.thrown as Error).stack ?? res.thrown) : res.err.split('\n').slice(-1)[0];
      if (kind !== 'crash') {
        let prev = previous.get(base);
        if (!prev) previous.set(base, (prev = await analyzeRecipe(base, file, { models })));
        const inc = await analyzeRecipe(text, file, { models }, await analyzeRecipe(base, file, { models }));
        const fresh = await analyzeRecipe(text, file, { models });
        const key = (a: RecipeAnalysis) =>
          JSON.stringify([a.parsed.value, a.diagnostics.map((d) => [d.code, d.range])]);
        if (key(inc) !== key(fresh)) mismatch();
      }
    } catch (err) {
      kind = isEngineError(err) ? 'crash' : 'clear';
      detail = String((err as Error).stack ?? err);
    }
    note('recipe', i, kind, shown(text), detail, performance.now() - t);
  }
}

// ---------------------------------------------------------------- config.json

const CONFIGS = fs
  .readdirSync(path.resolve(__dirname, '../../examples/configs'))
  .filter((f) => f.endsWith('.json'))
  .map((f) => fs.readFileSync(path.resolve(__dirname, '../../examples/configs', f), 'utf8'));

async function fuzzConfigs(r: Rng, n: number, ws: string, note: Note): Promise<void> {
  for (let i = 0; i < n; i++) {
    const base = r.pick(CONFIGS);
    const asJson = () => JSON.stringify(mutateJson(r, JSON.parse(base)), null, r.chance(0.5) ? 2 : 0) ?? 'null';
    const text = r.chance(0.7) ? asJson() : mutateText(r, base);
    // Beside the model half the time (then the graph comparison runs too).
    const dir = r.chance(0.5) ? ws : path.join(ws, 'alone');
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'config.json');
    fs.writeFileSync(file, text);
    const t = performance.now();
    const res = await cli(['check', file]);
    const detail = res.thrown ? String((res.thrown as Error).stack) : res.err.split('\n').slice(-1)[0];
    note('config', i, cliKind(res), shown(text), detail, performance.now() - t);
  }
}

// ---------------------------------------------------------------- ONNX models

async function fuzzModels(r: Rng, n: number, root: string, note: Note): Promise<void> {
  const spec = { hidden: 16, intermediate: 32, layers: 2 };
  const baseDir = path.join(root, 'models');
  fs.mkdirSync(baseDir, { recursive: true });
  const inline = path.join(baseDir, 'inline.onnx');
  const ext = path.join(baseDir, 'ext.onnx');
  await writeModel(tinyMlpModel(spec), inline);
  await writeModel(tinyMlpModel(spec), ext, { externalData: true });
  const sources = [
    { file: inline, data: undefined as string | undefined },
    { file: ext, data: ext + '.data' },
  ];
  for (let i = 0; i < n; i++) {
    const src = r.pick(sources);
    const dir = path.join(root, `m${i}`);
    fs.mkdirSync(dir);
    const file = path.join(dir, 'model.onnx');
    let what: string[];
    if (r.chance(0.8)) {
      const proto = onnx.ModelProto.decode(fs.readFileSync(src.file));
      what = mutateModel(r, proto);
      let bytes: Uint8Array;
      try {
        bytes = encodeModel(proto);
      } catch {
        bytes = fs.readFileSync(src.file); // a mutation protobufjs cannot encode: use the original
        what.push('(unencodable, original kept)');
      }
      fs.writeFileSync(file, bytes);
    } else {
      fs.writeFileSync(file, mutateBytes(r, fs.readFileSync(src.file)));
      what = ['bytes'];
    }
    if (src.data) fs.copyFileSync(src.data, path.join(dir, 'ext.onnx.data'));
    const recipe = path.join(dir, 'haqa.yaml');
    fs.writeFileSync(
      recipe,
      `version: 1\nmodel: ./model.onnx\nquantize:\n  bits: ${r.pick([4, 8])}\n  block_size: 16\n`,
    );
    const inputBefore = fs.readFileSync(file);
    const t = performance.now();
    let kind = 'accepted' as Kind;
    let detail = '';
    const worst = (k: Kind) => {
      const rank: Kind[] = ['accepted', 'clear', 'hang', 'crash', 'dataLost'];
      if (rank.indexOf(k) > rank.indexOf(kind)) kind = k;
    };
    const ins = await cli(['inspect', file]);
    worst(cliKind(ins));
    detail = ins.thrown ? String((ins.thrown as Error).stack) : ins.err;
    const chk = await cli(['check', recipe]);
    worst(cliKind(chk, [0, 1]) === 'accepted' ? 'accepted' : cliKind(chk, [0, 1]));
    if (chk.thrown) detail = String((chk.thrown as Error).stack);
    const before = listing(dir);
    const out = path.join(dir, 'out.onnx');
    const q = await cli(['quantize', recipe, '-o', out]);
    const qk = cliKind(q);
    worst(qk);
    if (q.thrown) detail = String((q.thrown as Error).stack);
    else if (qk === 'clear') detail = q.err.split('\n').slice(-1)[0];
    if (q.code !== 0 && listing(dir) !== before) {
      worst('dataLost');
      detail = `after a refusal the folder holds: ${listing(dir).replace(/\n/g, ', ')}`;
    }
    if (q.code === 0) {
      try {
        await readModel(out);
      } catch (err) {
        worst('dataLost');
        detail = `the output does not read back: ${(err as Error).message}`;
      }
    }
    if (!fs.readFileSync(file).equals(inputBefore)) {
      worst('dataLost');
      detail = 'the input model changed';
    }
    note('onnx', i, kind, what.join('; '), detail, performance.now() - t);
    if (kind !== 'crash' && kind !== 'dataLost') fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- LSP messages

const EDIT_TEXTS = ['', 'x', '\n', '  bits: 8\n', '[[[[', '!!merge x'];

async function fuzzLsp(r: Rng, n: number, ws: string, serverJs: string, deadline: number, note: Note): Promise<void> {
  const proc = spawn(process.execPath, [serverJs, '--stdio'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const conn = createMessageConnection(new StreamMessageReader(proc.stdout!), new StreamMessageWriter(proc.stdin!));
  const logs: string[] = [];
  conn.onNotification('window/logMessage', (p: { message: string }) => {
    logs.push(p.message);
  });
  conn.onNotification(() => undefined);
  conn.onRequest((method) => (method === 'workspace/applyEdit' ? { applied: false } : null));
  conn.onError(() => undefined);
  conn.listen();
  let exited = false;
  proc.on('exit', () => (exited = true));
  const within = <T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> =>
    Promise.race([p, new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), ms).unref())]);
  try {
    await conn.sendRequest('initialize', {
      processId: process.pid,
      rootUri: null,
      capabilities: {},
      workspaceFolders: [{ uri: pathToFileURL(ws).href, name: 'ws' }],
      initializationOptions: { diagnosticsDelayMs: 0 },
    });
    await conn.sendNotification('initialized', {});
    const good = pathToFileURL(path.join(ws, 'haqa.yaml')).href;
    await conn.sendNotification('textDocument/didOpen', {
      textDocument: { uri: good, languageId: 'yaml', version: 1, text: RECIPES[1] },
    });
    let version = 1;
    const inWs = (name: string) => pathToFileURL(path.join(ws, name)).href;
    const uris = [
      good,
      inWs('other.haqa.yaml'),
      inWs('config.json'),
      'file:///nowhere/haqa.yaml',
      'untitled:x',
      'not a uri',
    ];
    const pos = () => ({ line: r.int(40), character: r.int(200) });
    const range = () => ({ start: pos(), end: pos() });
    // Requests that start runs are sent too: the workspace is never trusted here, so they must refuse.
    // Prune is left out: it deletes files, and its trust gating is tested where it is implemented.
    const templates: [string, boolean, () => unknown][] = [
      ['textDocument/hover', true, () => ({ textDocument: { uri: r.pick(uris) }, position: pos() })],
      ['textDocument/completion', true, () => ({ textDocument: { uri: r.pick(uris) }, position: pos() })],
      // (Random draws in the order they always had: a seed's campaign stays the same.)
      [
        'textDocument/codeAction',
        true,
        () => {
          const uri = r.pick(uris),
            outer = range(),
            inner = range();
          const fix = r.pick(['remove', 'rename-key', 'replace', 'set', 'nope']);
          const data = {
            fix,
            path: [r.pick(['quantize', 'model', 0, -1]), r.int(3)],
            to: 'bits',
            values: [4],
            value: 8,
          };
          const diagnostics = [{ range: inner, message: 'x', source: 'haqa', code: 'unknown-key', data }];
          return { textDocument: { uri }, range: outer, context: { diagnostics } };
        },
      ],
      [
        'haqa/knobEdits',
        true,
        () => {
          const uri = r.pick(uris);
          const knob = r.pick(['quantize.bits', 'quantize.bits@lm_head', 'nope', '__proto__']);
          return { uri, assignment: { [knob]: r.pick([4, 8, 'x', null]) } };
        },
      ],
      [
        'haqa/suggestionEdit',
        true,
        () => ({ uri: r.pick(uris), knobs: { 'quantize.bits': r.pick([4, 8, 'x']) }, title: 'x' }),
      ],
      ['haqa/bestTrialEdit', true, () => ({ uri: r.pick(uris) })],
      ['haqa/runs', true, () => ({ uri: r.pick(uris) })],
      ['haqa/benchmark', true, () => ({ uri: r.pick(uris), quick: true })],
      ['haqa/tune', true, () => ({ uri: r.pick(uris), trials: 2 })],
      ['haqa/advise', true, () => ({ uri: r.pick(uris) })],
      [
        'textDocument/didOpen',
        false,
        () => {
          const uri = r.pick(uris.slice(1)),
            v = r.int(5);
          return { textDocument: { uri, languageId: 'yaml', version: v, text: mutateText(r, r.pick(RECIPES)) } };
        },
      ],
      [
        'textDocument/didChange',
        false,
        () => {
          const v = ++version,
            rg = range();
          return { textDocument: { uri: good, version: v }, contentChanges: [{ range: rg, text: r.pick(EDIT_TEXTS) }] };
        },
      ],
      ['textDocument/didClose', false, () => ({ textDocument: { uri: r.pick(uris.slice(1)) } })],
      ['workspace/didChangeWatchedFiles', false, () => ({ changes: [{ uri: r.pick(uris), type: r.int(4) }] })],
      ['$/nonsense', true, () => ({})],
    ];
    for (let i = 0; i < n; i++) {
      const [method, isRequest, make] = r.pick(templates);
      let params: unknown = make();
      if (r.chance(0.6)) params = r.chance(0.2) ? hostile(r) : mutateJson(r, params);
      const input = `${method} ${shown(JSON.stringify(params) ?? 'undefined')}`;
      const logsBefore = logs.length;
      const t = performance.now();
      let kind: Kind = 'accepted';
      let detail = '';
      if (r.chance(0.03)) {
        // A frame whose body is not JSON.
        const body = '{"jsonrpc":"2.0","id":1,"method":';
        proc.stdin!.write(`Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      } else if (isRequest) {
        const res = await within(
          conn.sendRequest(method, params).then(
            (v) => ({ v }),
            (e: Error) => ({ e }),
          ),
          deadline,
        );
        if (res === 'timeout') ((kind = 'hang'), (detail = 'no answer'));
        else if ('e' in res)
          ((kind = isEngineError({ name: '', message: res.e.message }) ? 'crash' : 'clear'), (detail = res.e.message));
        else kind = res.v === null || (Array.isArray(res.v) && res.v.length === 0) ? 'clear' : 'accepted';
      } else {
        await conn.sendNotification(method, params);
      }
      // Still alive and answering?
      const hover = () =>
        conn.sendRequest('textDocument/hover', { textDocument: { uri: good }, position: { line: 1, character: 2 } });
      const ping = exited
        ? 'timeout'
        : await within(
            hover().catch(() => 'error'),
            deadline,
          );
      if (exited) ((kind = 'crash'), (detail = `the server exited: ${stderr.slice(-400)}`));
      else if (ping === 'timeout') ((kind = 'hang'), (detail = 'the server stopped answering'));
      const engineFailure =
        /failed: (TypeError|RangeError|ReferenceError|SyntaxError)|Maximum call stack|uncaught|unhandled/i;
      const failed = logs.slice(logsBefore).find((l) => engineFailure.test(l));
      if (failed && kind !== 'hang') ((kind = 'crash'), (detail = failed.slice(0, 600)));
      note('lsp', i, kind, input, detail, performance.now() - t);
      if (exited) break;
    }
  } finally {
    conn.dispose();
    if (!exited) proc.kill();
  }
}

// ---------------------------------------------------------------- agent tool calls

async function fuzzTools(r: Rng, n: number, note: Note): Promise<void> {
  const setting = syntheticSetting();
  const space = defaultSpace(setting);
  const objective = objectiveOf(setting.recipe);
  const ctx = {
    space,
    setting,
    objective,
    trials: [],
    budget: { trialsLeft: 5 },
    signal: new AbortController().signal,
    validate: (c: unknown) => validateConfig(c, space, setting),
    duplicateOf: () => undefined,
  };
  const good = { config: { 'quantize.bits': 4, 'quantize.accuracy_level': 4 }, rationale: 'x', explanation: 'x' };
  const names: unknown[] = [
    'run_trial',
    'final_answer',
    'history',
    'search_space',
    'model_summary',
    'hardware_profile',
    'frobnicate',
    '',
    42,
    null,
    {},
    ['run_trial'],
    'x'.repeat(5000),
  ];
  for (let i = 0; i < n; i++) {
    const agent = new ClaudeAgent({ apiKey: 'sk-ant-fuzz-0000', baseURL: 'http://127.0.0.1:9' }, { trials: 5 });
    const uses = Array.from({ length: 1 + r.int(4) }, (_, j) => ({
      type: 'tool_use',
      id: r.chance(0.9) ? `toolu_${i}_${j}` : hostile(r),
      name: r.pick(names),
      input: r.chance(0.2) ? hostile(r) : mutateJson(r, good),
    }));
    const message = {
      content: r.chance(0.1) ? hostile(r) : uses,
      stop_reason: r.pick(['tool_use', 'end_turn', 'refusal', null]),
    };
    const input = shown(JSON.stringify(message) ?? '');
    const t = performance.now();
    let kind: Kind;
    let detail = '';
    try {
      // The handler is private: it is the seam where the API's reply meets the engine.
      (agent as unknown as { handle(m: unknown, c: unknown): unknown }).handle(message, ctx);
      const results = (agent as unknown as { results: { is_error?: boolean }[] }).results;
      kind = results.some((x) => x.is_error) ? 'clear' : 'accepted';
      // The loop's validator on its own, with the same hostile config.
      const v = validateConfig(mutateJson(r, good.config), space, setting);
      if (!v.ok && kind === 'accepted') kind = 'clear';
    } catch (err) {
      kind = isEngineError(err) ? 'crash' : 'clear';
      detail = String((err as Error).stack ?? err);
    }
    note('tool', i, kind, input, detail, performance.now() - t);
  }
}

// ---------------------------------------------------------------- command line

if (require.main === module) {
  const arg = (k: string, d: string) => (process.argv.includes(k) ? process.argv[process.argv.indexOf(k) + 1] : d);
  const seed = Number(arg('--seed', '1'));
  const per = Number(arg('--n', '100'));
  const os = require('node:os') as typeof import('node:os');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'haqa-fuzz-'));
  const serverJs = path.resolve(__dirname, '../../dist/server.js');
  const deadlineMs = Number(arg('--deadline-ms', '5000'));
  runFuzz({ seed, n: Object.fromEntries(TARGETS.map((t) => [t, per])), dir, serverJs, deadlineMs }).then(
    (rep) => {
      const json = arg('--json', '');
      const out = { ...rep, n: per, deadlineMs, failures: rep.failures.slice(0, 50) };
      if (json) fs.writeFileSync(json, JSON.stringify(out, null, 2));
      else process.stdout.write(JSON.stringify(out, null, 2) + '\n');
      const bad = rep.total.crash + rep.total.hang + rep.total.dataLost;
      process.stderr.write(
        `fuzz: ${rep.total.inputs} inputs, ${rep.total.clear} clear errors, ${rep.total.accepted} accepted, ` +
          `${rep.total.crash} crashes, ${rep.total.hang} hangs, ${rep.total.dataLost} data lost\n`,
      );
      fs.rmSync(dir, { recursive: true, force: true });
      // The counts are the result; --strict makes failures an exit status too.
      process.exit(bad > 0 && process.argv.includes('--strict') ? 1 : 0);
    },
    (err) => {
      process.stderr.write(`fuzz: ${(err as Error).stack ?? err}\n`);
      process.exit(2);
    },
  );
}
