// Hostile recipes and configs: YAML tags that yield non-data values, nesting deep enough to overflow a
// recursive parser, globs past picomatch's limit, and run-store lines missing fields. Each must give a
// diagnostic (or a placeholder) with its location and an exit code of 1 or 2 — never exit 70 or a
// stack trace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { main } from '../../server/src/cli';
import type { CliIO } from '../../server/src/cli/command';
import { parseYaml, boundedYamlValue } from '../../server/src/config/parse';
import { messageText } from '../../server/src/config/diagnostics';
import { yamlTooDeep, jsonTooDeep, MAX_NESTING } from '../../server/src/config/depth';
import { globMatcher } from '../../server/src/config/plan';
import { tempDir } from '../helpers/tinyModel';
import { writeLlamaShapes, SMALL } from '../lsp/llamaShapes';

async function cli(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIO = { out: (l) => out.push(l), err: (l) => err.push(l), signal: new AbortController().signal };
  const code = await main(argv, io);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const dir = tempDir('haqa-hostile-');
const ready = writeLlamaShapes(dir, SMALL);

async function check(name: string, text: string) {
  await ready;
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return cli('check', file, '--json');
}

function codes(out: string): { code: string; line: number; character: number; message: string }[] {
  return (
    JSON.parse(out) as { code: string; range: { start: { line: number; character: number } }; message: string }[]
  ).map((d) => ({ code: d.code, line: d.range.start.line, character: d.range.start.character, message: d.message }));
}

test('a !!merge tag (and other non-data tags) is a diagnostic on the value, not a crash', async () => {
  for (const [text, what] of [
    ['version: 1\nmodel: !!merge x\n', /Symbol/],
    ['version: 1\nmodel: ./model.onnx\nquantize: !!set {a, b}\n', /Set/],
    ['version: 1\nmodel: !!binary aGVsbG8=\n', /Buffer|Uint8Array/],
  ] as const) {
    const r = await check('tag.haqa.yaml', text);
    assert.equal(r.code, 1, r.err);
    const [d] = codes(r.out);
    assert.equal(d.code, 'yaml-unsupported-value');
    assert.match(d.message, what);
    assert.equal(d.line, text.includes('quantize') ? 2 : 1);
  }
});

test('deep YAML nesting is refused up front with a location: 1,000 and 100,000 levels, flow and block', async () => {
  const flow = (n: number) => `version: 1\nmodel: ./model.onnx\nx: ${'['.repeat(n)}${']'.repeat(n)}\n`;
  for (const text of [flow(1000), flow(100_000), `version: 1\nmodel: ./model.onnx\nx:\n${'- '.repeat(1000)}a\n`]) {
    const r = await check('deep.haqa.yaml', text);
    assert.equal(r.code, 1, r.err);
    const ds = codes(r.out);
    assert.deepEqual(
      ds.map((d) => d.code),
      ['yaml-too-deep'],
    );
    assert.equal(ds[0].line, text.includes('- - ') ? 3 : 2);
  }
  // Just inside the bound parses (and says something else, or nothing).
  const p = parseYaml(flow(MAX_NESTING - 1));
  assert.ok(!p.diagnostics.some((d) => d.code === 'yaml-too-deep'));
  // Indentation nesting counts too.
  let ind = 'version: 1\n';
  for (let i = 0; i < 70; i++) ind += `${' '.repeat(i)}k${i}:\n`;
  assert.equal(parseYaml(ind).diagnostics[0]?.code, 'yaml-too-deep');
});

test('the depth scan ignores brackets in quotes, comments, block scalars and plain-scalar globs', () => {
  const many = '['.repeat(200);
  const text =
    `a: |\n  ${many}\nb: "${many}"\nc: '${many}'\n# ${many}\n` + `d: model.layers.{0,1}.x${many}\ne: >-\n  ${many}\n`;
  assert.equal(yamlTooDeep(text), undefined);
  assert.ok(parseYaml(text).diagnostics.every((d) => d.code !== 'yaml-too-deep'));
  const recipe = fs.readFileSync(path.resolve(__dirname, '../../examples/tiny-llama/haqa.yaml'), 'utf8');
  assert.equal(yamlTooDeep(recipe, 6), undefined);
  assert.equal(jsonTooDeep(`{"a": "${many}"}`), undefined);
});

test('an edit that adds deep nesting inside a list item is not patched past the bound', () => {
  const base =
    'model: ./m.onnx\nquantize:\n  overrides:\n    - match: a\n      bits: 8\n    - match: b\n      bits: 4\n';
  const prev = parseYaml(base);
  const edited = base.replace('      bits: 8\n', `      bits: 8\n      x: ${'['.repeat(200)}${']'.repeat(200)}\n`);
  const next = parseYaml(edited, prev);
  assert.equal(next.diagnostics[0]?.code, 'yaml-too-deep');
});

test('config.json nested 10,000 deep: json-too-deep at the place, exit 1', async () => {
  await ready;
  const sub = path.join(dir, 'deepcfg');
  fs.mkdirSync(sub, { recursive: true });
  const file = path.join(sub, 'config.json');
  fs.writeFileSync(file, `{"model_type": "llama",\n "x": ${'['.repeat(10_000)}${']'.repeat(10_000)}}`);
  const r = await cli('check', file, '--json');
  assert.equal(r.code, 1, r.err);
  const [d] = codes(r.out);
  assert.equal(d.code, 'json-too-deep');
  assert.equal(d.line, 1);
});

test('a glob over 64 KiB, as a skip entry or a knob scope, is a diagnostic; the matcher never throws', async () => {
  const long = 'a*'.repeat(40_000);
  const skip = await check('glob.haqa.yaml', `version: 1\nmodel: ./model.onnx\nquantize:\n  skip:\n    - "${long}"\n`);
  assert.equal(skip.code, 1, skip.err);
  const [d] = codes(skip.out);
  assert.equal(d.code, 'out-of-range');
  assert.equal(d.line, 4);
  const knob = await check(
    'knob.haqa.yaml',
    `version: 1\nmodel: ./model.onnx\nsearch:\n  space:\n    ? "quantize.bits@${long}"\n    : [4, 8]\n`,
  );
  assert.ok(knob.code === 1, knob.err);
  assert.ok(codes(knob.out).length > 0);
  assert.equal(globMatcher(long)('model.layers.0'), false);
});

test('haqa runs list shows a line without recipe_file (or with junk metrics) with placeholders', async () => {
  const ws = tempDir('haqa-runs-');
  fs.mkdirSync(path.join(ws, '.haqa', 'runs'), { recursive: true });
  const lines = [
    { id: 'r1', status: 'ok', metrics: {} },
    {
      id: 'r2',
      status: 'ok',
      recipe_file: 42,
      metrics: { decode_ms_per_token: { median: 'fast' }, ppl: '3' },
      speedups: { decode: 'x' },
    },
    { id: 'r3', status: 'error', metrics: null },
  ];
  fs.writeFileSync(path.join(ws, '.haqa', 'runs', 'runs.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  const r = await cli('runs', 'list', '--dir', ws);
  assert.equal(r.code, 0, r.err);
  const rows = r.out.split('\n').filter((l) => /^r\d/.test(l));
  assert.equal(rows.length, 3);
  for (const row of rows) assert.match(row, /^r\d\s+(ok|error)\s+-\s/);
});

test('a 50,000-line recipe is refused by its line count before the yaml parser sees it, also on an edit', () => {
  let text = 'version: 1\nmodel: ./model.onnx\nquantize:\n  overrides:\n';
  for (let i = 0; i < 12_500; i++)
    text +=
      `    - match: model.layers.${i % 4}.mlp.down_proj\n` +
      `      bits: 8\n      block_size: 64\n      accuracy_level: 4\n`;
  const p = parseYaml(text);
  assert.deepEqual(
    p.diagnostics.map((d) => d.code),
    ['file-too-large'],
  );
  assert.match(messageText(p.diagnostics[0]), /50005 lines; recipes over 10000 lines/);
  // Growing a checked recipe past the bound through the incremental path is refused the same way.
  const small = 'version: 1\nmodel: ./model.onnx\nquantize:\n  bits: 8\n';
  const prev = parseYaml(small);
  assert.equal(parseYaml(small + '#\n'.repeat(10_001), prev).diagnostics[0]?.code, 'file-too-large');
});

test('a mapping key that is a list or a mapping is a diagnostic on the key (not stringified with a warning)', () => {
  for (const text of ['model: ./m.onnx\n? [a, b]\n: 1\n', 'model: ./m.onnx\nquantize:\n  {a: 1}: 2\n']) {
    const p = parseYaml(text);
    assert.deepEqual(
      p.diagnostics.map((d) => d.code),
      ['yaml-unsupported-value'],
      text,
    );
    assert.equal(p.diagnostics[0].range.start.line, text.includes('?') ? 1 : 2);
    assert.equal(p.value, undefined);
  }
});

test('token-heavy junk is refused before the yaml parser (a megabyte of "- " in a flow list took seconds)', () => {
  for (const text of [
    `model: ./m.onnx\nx: [${'- '.repeat(500_000)}`,
    `model: ./m.onnx\nx: [${': '.repeat(200_000)}`,
    `${'- '.repeat(30)}x\n`.repeat(3000),
  ]) {
    const p = parseYaml(text);
    assert.deepEqual(
      p.diagnostics.map((d) => d.code),
      ['yaml-too-complex'],
    );
  }
  // A large but ordinary recipe is under the bound.
  let ok = 'version: 1\nmodel: ./m.onnx\nquantize:\n  overrides:\n';
  for (let i = 0; i < 2400; i++)
    ok +=
      `    - match: model.layers.${i}.mlp.down_proj\n      bits: 8\n` +
      `      block_size: 64\n      accuracy_level: 4\n`;
  assert.ok(!parseYaml(ok).diagnostics.some((d) => d.code === 'yaml-too-complex'));
});

test('thousands of YAML errors are reported as the first 100 and a count', () => {
  const p = parseYaml(`    quantize.bits: [4, \n${'- '.repeat(5000)}x\n`);
  const syntax = p.diagnostics.filter((d) => d.code === 'yaml-syntax');
  assert.equal(syntax.length, 101);
  assert.match(messageText(syntax[100]), /^and \d+ more YAML errors$/);
});

test('the plain-value reader used by edits and the tuner refuses with an Error, not a ReferenceError', () => {
  assert.throws(
    () => boundedYamlValue('a: *nothing\n'),
    (e: Error) => e.constructor === Error && /cannot read the recipe: .*alias/i.test(e.message),
  );
  assert.throws(() => boundedYamlValue(`x: ${'['.repeat(100)}`), /nests deeper than 64/);
  assert.deepEqual(boundedYamlValue('a: 1\n'), { a: 1 });
});
