// The recipe checks: syntax, schema and semantics, each with its exact range, firing and not firing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { analyzeRecipe, CheckContext } from '../../server/src/config/check';
import { ModelCache } from '../../server/src/config/modelCache';
import type { Diagnostic } from '../../server/src/config/diagnostics';
import { LineIndex, messageText } from '../../server/src/config/diagnostics';
import { tempDir } from '../helpers/tinyModel';
import { writeLlamaShapes, SMALL } from '../lsp/llamaShapes';
import { int8Saturates } from '../../server/src/util/cpu';

// SMALL: 2 layers × (q 64×64, k 64×16, v 64×16, o 64×64, gate 64×96, up 64×96, down 96×64) + lm_head 64×128.
const dir = tempDir('haqa-config-');
const models = new ModelCache();
const ready = (async () => {
  await writeLlamaShapes(dir, SMALL);
  fs.mkdirSync(path.join(dir, 'data'));
  fs.writeFileSync(path.join(dir, 'data', 'eval.txt'), 'held out text');
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{}');
})();

async function check(text: string, ctx: Partial<CheckContext> = {}, file = path.join(dir, 'haqa.yaml')) {
  await ready;
  return analyzeRecipe(text, file, { models, ...ctx });
}
const codes = (ds: Diagnostic[]) => ds.map((d) => d.code).sort();
function only(ds: Diagnostic[], code: string): Diagnostic {
  const hits = ds.filter((d) => d.code === code);
  assert.equal(
    hits.length,
    1,
    `expected one ${code}, got ${JSON.stringify(
      ds.map((d) => [d.code, d.message]),
      null,
      1,
    )}`,
  );
  return hits[0];
}
/** The text a diagnostic's range covers. */
function covered(text: string, d: Diagnostic): string {
  const li = new LineIndex(text);
  return text.slice(li.offset(d.range.start), li.offset(d.range.end));
}

const BASE = `model: ./model.onnx
target:
  provider: cpu
quantize:
  bits: 4
  block_size: 32
  accuracy_level: 4
`;

test('a sound recipe has no diagnostics', async () => {
  const a = await check(
    BASE +
      `  skip: [lm_head]
  overrides:
    - match: model.layers.*.mlp.down_proj
      bits: 8
evaluation:
  text: ./data/eval.txt
  tokenizer: ./tokenizer.json
search:
  space:
    quantize.bits@model.layers.*.self_attn.*: [4, 8]
    low_rank.rank@model.layers.0.mlp.up_proj: [null, 8]
`,
  );
  assert.deepEqual(a.diagnostics, []);
  assert.equal(a.graph?.layers.length, 15);
});

test('unknown key: range on the key, allowed keys listed, did-you-mean with a rename fix', async () => {
  const text = BASE + '  bitz: 8\n';
  const a = await check(text);
  const d = only(a.diagnostics, 'unknown-key');
  assert.equal(covered(text, d), 'bitz');
  assert.deepEqual(d.range.start, { line: 7, character: 2 });
  assert.match(messageText(d), /did you mean 'bits'/);
  assert.match(messageText(d), /Allowed: .*block_size/);
  assert.deepEqual(d.data, { fix: 'rename-key', path: ['quantize', 'bitz'], to: 'bits' });
  assert.equal(d.severity, 1);
  assert.equal(d.source, 'haqa');
});

test('wrong type, enum and pattern errors land on the value and say what is allowed', async () => {
  const text = `model: ./model.onnx
target:
  provider: gpu
  threads: two
  memory_limit: 4 gigs
`;
  const a = await check(text);
  const en = a.diagnostics.find((d) => covered(text, d) === 'gpu')!;
  assert.equal(en.code, 'invalid-value');
  assert.match(messageText(en), /cpu, 'cuda'|'cpu', 'cuda'/);
  const ty = a.diagnostics.find((d) => covered(text, d) === 'two')!;
  assert.equal(ty.code, 'wrong-type');
  assert.match(messageText(ty), /must be integer, got string/);
  const pat = a.diagnostics.find((d) => covered(text, d) === '4 gigs')!;
  assert.equal(pat.code, 'invalid-value');
  assert.match(messageText(pat), /4GiB/);
  assert.equal(a.diagnostics.length, 3, 'anyOf branches are collapsed into one diagnostic');
});

test('unknown knob in search.space: range on the knob, knobs listed', async () => {
  const text = BASE + 'search:\n  space:\n    quantize.bitz: [4]\n';
  const d = only((await check(text)).diagnostics, 'unknown-knob');
  assert.equal(covered(text, d), 'quantize.bitz');
  assert.match(messageText(d), /quantize\.bits,/);
  const scoped = BASE + 'search:\n  space:\n    quantize.bloc_size@lm_head: [32]\n';
  const d2 = only((await check(scoped)).diagnostics, 'unknown-knob');
  assert.deepEqual(d2.data, {
    fix: 'rename-key',
    path: ['search', 'space', 'quantize.bloc_size@lm_head'],
    to: 'quantize.block_size@lm_head',
  });
});

test('semantic checks still run beside schema errors elsewhere', async () => {
  const text = BASE + '  bitz: 8\n  skip: [nothing.here]\n';
  const a = await check(text);
  assert.deepEqual(codes(a.diagnostics), ['pattern-no-match', 'unknown-key']);
});

test('bad input: YAML syntax, binary, empty, huge, not a mapping, duplicate keys — diagnostics, no throw', async () => {
  const syntax = await check('model: ./model.onnx\nquantize: [4, 8\n');
  assert.equal(syntax.diagnostics[0].code, 'yaml-syntax');
  assert.ok(syntax.diagnostics[0].range.start.line >= 1);
  const junk = await check(Buffer.from([0x00, 0xff, 0x13, 0x37, 0x00, 0x01, 0x02]).toString('latin1'));
  assert.deepEqual(codes(junk.diagnostics), ['binary-file']);
  assert.deepEqual(codes((await check('')).diagnostics), ['empty-recipe']);
  assert.deepEqual(codes((await check('# only a comment\n')).diagnostics), ['empty-recipe']);
  assert.deepEqual(codes((await check('a: 1\n'.repeat(600_000))).diagnostics), ['file-too-large']);
  const list = await check('- model: x\n');
  assert.equal(list.diagnostics[0].code, 'wrong-type');
  const dup = await check('model: a.onnx\nmodel: b.onnx\n');
  assert.equal(dup.diagnostics[0].code, 'yaml-syntax');
  assert.equal(dup.diagnostics[0].range.start.line, 1);
  const multi = await check('model: a.onnx\n---\nmodel: b.onnx\n');
  assert.equal(multi.diagnostics[0].code, 'yaml-syntax');
  const bomb = await check(
    'a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n' +
      'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n',
  );
  assert.ok(bomb.diagnostics.length > 0);
});

test('model: missing, a directory, corrupt, outside the workspace', async () => {
  await ready;
  const missing = only((await check('model: ./nope.onnx\n')).diagnostics, 'model-not-found');
  assert.equal(covered('model: ./nope.onnx\n', missing), './nope.onnx');
  fs.mkdirSync(path.join(dir, 'adir.onnx'), { recursive: true });
  only((await check('model: ./adir.onnx\n')).diagnostics, 'model-is-directory');
  fs.writeFileSync(path.join(dir, 'junk.onnx'), Buffer.from([0xff, 0xff, 0xff, 0x01, 0x02]));
  assert.match(
    messageText(only((await check('model: ./junk.onnx\n')).diagnostics, 'model-unreadable')),
    /not a valid ONNX model/,
  );
  // Outside: the recipe's folder is the workspace when none is given (the CLI's rule)...
  const sub = path.join(dir, 'sub');
  fs.mkdirSync(sub, { recursive: true });
  const out = await check('model: ../model.onnx\n', {}, path.join(sub, 'haqa.yaml'));
  only(out.diagnostics, 'model-outside-workspace');
  assert.equal(out.graph, undefined, 'a model outside the workspace is not read');
  // ...and the editor's workspace folders when given.
  const inside = await check('model: ../model.onnx\n', { workspaceRoots: [dir] }, path.join(sub, 'haqa.yaml'));
  assert.deepEqual(inside.diagnostics, []);
});

test('a symlink inside the workspace pointing outside is outside', async () => {
  await ready;
  const ws = path.join(dir, 'ws');
  fs.mkdirSync(ws, { recursive: true });
  try {
    fs.symlinkSync(path.join(dir, 'model.onnx'), path.join(ws, 'link.onnx'));
  } catch {
    return; // no symlinks on this filesystem
  }
  only(
    (await check('model: ./link.onnx\n', { workspaceRoots: [ws] }, path.join(ws, 'haqa.yaml'))).diagnostics,
    'model-outside-workspace',
  );
});

test('texts and tokenizer that do not exist are errors on their values', async () => {
  const text =
    'model: ./model.onnx\nevaluation:\n  text: ./data/missing.txt\n' +
    '  tokenizer: ./tok.json\ncalibration:\n  text: ./data\n';
  const a = await check(text);
  const nf = a.diagnostics.filter((d) => d.code === 'file-not-found').map((d) => covered(text, d));
  assert.deepEqual(nf.sort(), ['./data/missing.txt', './tok.json']);
  assert.equal(covered(text, only(a.diagnostics, 'path-is-directory')), './data');
});

test('patterns that match no layer: skip, override, rules, knob scopes; matching ones are quiet', async () => {
  const text = `model: ./model.onnx
quantize:
  skip: [lm_head, lm_haed]
  overrides:
    - match: model.layers.*.mlp.down_proj
      bits: 8
      accuracy_level: 4
    - match: model.layers.9.*
      bits: 8
sparsity:
  rules:
    - {match: "model.layers.*.mlp.up_proj", ratio: 0.5}
    - {match: "nothing.*", ratio: 0.5}
low_rank:
  rules:
    - {match: "model.*.attn", rank: 4}
search:
  space:
    quantize.bits@model.layers.*.mlp.*: [4, 8]
    quantize.bits@decoder.*: [4, 8]
`;
  const a = await check(text);
  const hits = a.diagnostics.filter((d) => d.code === 'pattern-no-match');
  assert.deepEqual(
    hits.map((d) => covered(text, d)),
    ['lm_haed', 'model.layers.9.*', '"nothing.*"', '"model.*.attn"', 'quantize.bits@decoder.*'],
  );
  assert.match(messageText(hits[0]), /did you mean 'lm_head'/);
  assert.deepEqual(hits[0].data, { fix: 'replace', path: ['quantize', 'skip', 1], values: ['lm_head'] });
  assert.deepEqual(hits[1].data, { fix: 'remove', path: ['quantize', 'overrides', 1] });
  assert.ok(hits.every((d) => d.severity === 2));
});

test('block_size not dividing K: names layers, suggests the nearest valid size, on the value that set it', async () => {
  const text = BASE.replace('block_size: 32', 'block_size: 64');
  const d = only((await check(text)).diagnostics, 'block-size-not-divisor');
  assert.deepEqual(d.range.start, { line: 5, character: 14 });
  assert.match(
    messageText(d),
    /block_size 64 does not divide K of 2 layers: model\.layers\.0\.mlp\.down_proj \(K=96\)/,
  );
  assert.match(messageText(d), /nearest valid block size: 32/);
  assert.deepEqual(d.data, { fix: 'set', path: ['quantize', 'block_size'], value: 32, title: 'Set block_size to 32' });
  // Set by an override: the diagnostic is on that override's value.
  const t2 = BASE + '  overrides:\n    - match: model.layers.1.mlp.down_proj\n      block_size: 128\n';
  const d2 = only((await check(t2)).diagnostics, 'block-size-not-divisor');
  assert.equal(d2.range.start.line, 9);
  assert.match(messageText(d2), /1 layer: model\.layers\.1\.mlp\.down_proj/);
  assert.deepEqual((await check(BASE)).diagnostics, []);
});

test('bit-widths the CPU kernels do not run are errors for cpu only', async () => {
  const text = BASE.replace('bits: 4', 'bits: 3');
  const d = only((await check(text)).diagnostics, 'bits-unsupported');
  assert.equal(covered(text, d), '3');
  assert.deepEqual((await check(text.replace('provider: cpu', 'provider: cuda'))).diagnostics, []);
  assert.deepEqual((await check(BASE.replace('bits: 4', 'bits: 8'))).diagnostics, []);
});

test('8 bits with accuracy_level 0 on CPU warns with the measured slowdown; level 4 does not', async () => {
  const text = BASE.replace('bits: 4', 'bits: 8').replace('accuracy_level: 4', 'accuracy_level: 0');
  const d = only((await check(text)).diagnostics, 'slow-8bit-kernel');
  assert.equal(covered(text, d), '8');
  assert.match(messageText(d), /slower than fp32/);
  assert.match(messageText(d), /bench\/REPORT\.md/, "it cites the project's measurement, not a fixed figure");
  assert.doesNotMatch(messageText(d), /FIELD-NOTES|on this CPU/);
  assert.deepEqual(d.data, {
    fix: 'set',
    path: ['quantize', 'accuracy_level'],
    value: 4,
    title: 'Set accuracy_level: 4 (int8 compute)',
  });
  assert.deepEqual((await check(BASE.replace('accuracy_level: 0', 'accuracy_level: 4'))).diagnostics, []);
});

test("int8 W8A8 weights warn where this CPU's int8 kernels saturate (no VNNI), with a fix to uint8", async () => {
  const w8a8 = BASE.replace('bits: 4', 'bits: 8') + '  activations: dynamic\n';
  const text = w8a8 + '  weight_type: int8\n';
  const found = (await check(text)).diagnostics.filter((d) => d.code === 'int8-saturates');
  if (int8Saturates()) {
    const [d] = found;
    assert.equal(found.length, 1);
    assert.equal(covered(text, d), 'int8');
    assert.match(messageText(d), /no VNNI/);
    assert.deepEqual(d.data, {
      fix: 'set',
      path: ['quantize', 'weight_type'],
      value: 'uint8',
      title: 'Set weight_type: uint8',
    });
  } else {
    assert.deepEqual(found, [], 'a CPU with VNNI does not saturate');
  }
  // uint8, and the default (which is uint8 on such a CPU), never warn.
  assert.deepEqual((await check(w8a8 + '  weight_type: uint8\n')).diagnostics, []);
  assert.deepEqual((await check(w8a8)).diagnostics, []);
});

test('N:M sparsity: a hint on CPU, an error when N >= M, nothing on CUDA', async () => {
  const sp = 'sparsity:\n  rules:\n    - match: "**"\n      pattern: "2:4"\n';
  const hint = only((await check(BASE + sp)).diagnostics, 'sparsity-no-speedup-cpu');
  assert.equal(hint.severity, 4);
  assert.deepEqual((await check((BASE + sp).replace('provider: cpu', 'provider: cuda'))).diagnostics, []);
  const bad = BASE + sp.replace('2:4', '4:4');
  assert.equal(covered(bad, only((await check(bad)).diagnostics, 'invalid-nm-pattern')), '"4:4"');
});

test('low rank that saves nothing warns with the break-even rank', async () => {
  const lr = (r: number) =>
    BASE + `low_rank:\n  rules:\n    - match: model.layers.*.self_attn.q_proj\n      rank: ${r}\n`;
  const d = only((await check(lr(32))).diagnostics, 'rank-saves-nothing');
  assert.match(messageText(d), /64×64: rank < 32/);
  assert.equal(covered(lr(32), d), '32');
  assert.deepEqual((await check(lr(31))).diagnostics, []);
});

test('estimated weight memory above the limit is an error with the estimate', async () => {
  const over = BASE.replace('target:\n', 'target:\n  memory_limit: 20KiB\n');
  const d = only((await check(over)).diagnostics, 'memory-over-limit');
  assert.equal(covered(over, d), '20KiB');
  assert.match(messageText(d), /estimated weights after compression: [\d.]+ KiB/);
  assert.deepEqual((await check(BASE.replace('target:\n', 'target:\n  memory_limit: 1MiB\n'))).diagnostics, []);
  // In float the same model does not fit in 100 KiB (≈ 230 KiB of fp32 weights).
  const f = only(
    (await check('model: ./model.onnx\ntarget:\n  memory_limit: 100KiB\n')).diagnostics,
    'memory-over-limit',
  );
  assert.match(messageText(f), /exceed memory_limit 100 KiB/);
});

test('search.space values outside what the knob takes are errors on the value', async () => {
  const text =
    BASE +
    'search:\n  space:\n    quantize.bits: [4, 9]\n    quantize.block_size: [32, 48]\n' +
    '    sparsity.pattern: [none, "2:4", 0.5]\n    quantize.skip: [true]\n';
  const a = await check(text);
  const bad = a.diagnostics.filter((d) => d.code === 'knob-value-invalid').map((d) => covered(text, d));
  assert.deepEqual(bad, ['9', '48', '0.5']);
  only(a.diagnostics, 'knob-needs-scope');
});

test('the model graph is read once and re-read when the file changes on disk', async () => {
  const d2 = tempDir('haqa-cache-');
  const file = await writeLlamaShapes(d2, SMALL);
  const cache = new ModelCache();
  const text = 'model: ./model.onnx\nquantize:\n  skip: [model.layers.3.mlp.up_proj]\n';
  const recipe = path.join(d2, 'haqa.yaml');
  const first = await analyzeRecipe(text, recipe, { models: cache });
  only(first.diagnostics, 'pattern-no-match');
  await analyzeRecipe(text, recipe, { models: cache });
  assert.equal(cache.reads, 1);
  await writeLlamaShapes(d2, { ...SMALL, layers: 4 });
  const future = new Date(Date.now() + 5000);
  fs.utimesSync(file, future, future); // mtime resolution must not hide the rewrite
  const after = await analyzeRecipe(text, recipe, { models: cache });
  assert.deepEqual(after.diagnostics, []);
  assert.equal(cache.reads, 2);
});
