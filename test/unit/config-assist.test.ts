// Hover, completion and quick fixes of the recipe service, without VS Code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { parse } from 'yaml';
import { analyzeRecipe } from '../../server/src/config/check';
import { ModelCache } from '../../server/src/config/modelCache';
import { hoverRecipe, HOVER_MAX_ROWS } from '../../server/src/config/hover';
import { completeRecipe, layerPatterns } from '../../server/src/config/complete';
import { recipeCodeActions } from '../../server/src/config/actions';
import { LineIndex } from '../../server/src/config/diagnostics';
import type { TextEdit } from 'vscode-languageserver-types';
import { tempDir } from '../helpers/tinyModel';
import { writeLlamaShapes, SMALL } from '../lsp/llamaShapes';

const dir = tempDir('haqa-assist-');
const models = new ModelCache();
const ready = writeLlamaShapes(dir, SMALL);
const analyze = async (text: string) => {
  await ready;
  return analyzeRecipe(text, path.join(dir, 'haqa.yaml'), { models });
};
const posOf = (text: string, needle: string, delta = 0) => new LineIndex(text).position(text.indexOf(needle) + delta);
const hoverText = (h: ReturnType<typeof hoverRecipe>) => (h?.contents as { value: string } | undefined)?.value ?? '';
function applyEdits(text: string, edits: TextEdit[]): string {
  const li = new LineIndex(text);
  return [...edits]
    .sort((a, b) => li.offset(b.range.start) - li.offset(a.range.start))
    .reduce((t, e) => t.slice(0, li.offset(e.range.start)) + e.newText + t.slice(li.offset(e.range.end)), text);
}

const RECIPE = `model: ./model.onnx
quantize:
  bits: 4
  skip: [lm_head]
  overrides:
    - match: model.layers.*.mlp.down_proj
      bits: 8
      accuracy_level: 4
search:
  space:
    quantize.bits@model.layers.*.self_attn.*: [4, 8]
`;

test('hover on a match pattern lists the layers with K×N, parameters and planned bytes', async () => {
  const a = await analyze(RECIPE);
  const h = hoverText(hoverRecipe(a, posOf(RECIPE, 'model.layers.*.mlp.down_proj', 3)));
  assert.match(h, /matches \*\*2\*\* of 15 layers/);
  assert.match(h, /`model\.layers\.0\.mlp\.down_proj` \| 96×64 \| 6\.1K \| int8 b32 acc4 \|/);
  assert.match(h, /`model\.layers\.1\.mlp\.down_proj`/);
  // 96×64 at 8 bits in blocks of 32: 6144 bytes of weights + 3×64 fp32 scales = 6912 bytes.
  assert.match(h, /\| 6\.75 KiB \|/);
});

test('hover on a skip entry and on a knob scope; many layers are truncated', async () => {
  const a = await analyze(RECIPE);
  const skip = hoverText(hoverRecipe(a, posOf(RECIPE, 'lm_head')));
  assert.match(skip, /matches \*\*1\*\* of 15 layers/);
  assert.match(skip, /\| fp32 \|/);
  const knob = hoverText(hoverRecipe(a, posOf(RECIPE, 'quantize.bits@', 2)));
  assert.match(knob, /\*\*quantize\.bits\*\* for layers `model\.layers\.\*\.self_attn\.\*`/);
  assert.match(knob, /matches \*\*8\*\* of 15/);
  const big = tempDir('haqa-assist-big-');
  await writeLlamaShapes(big, { ...SMALL, layers: 4 }); // 29 layers, more than a hover shows
  const all = `model: ./model.onnx\nquantize:\n  skip: ["**"]\n`;
  const many = hoverText(
    hoverRecipe(await analyzeRecipe(all, path.join(big, 'haqa.yaml'), { models }), posOf(all, '**')),
  );
  assert.match(many, /matches \*\*29\*\* of 29/);
  assert.equal(many.split('\n').filter((l) => l.startsWith('| `')).length, HOVER_MAX_ROWS);
  assert.match(many, new RegExp(`… and ${29 - HOVER_MAX_ROWS} more`));
});

test('hover on model shows totals; on a key, the schema description', async () => {
  const a = await analyze(RECIPE);
  const m = hoverText(hoverRecipe(a, posOf(RECIPE, './model.onnx')));
  assert.match(m, /15 compressible layers \(15 MatMul\)/);
  assert.match(m, /weights planned: /);
  const k = hoverText(hoverRecipe(a, posOf(RECIPE, 'accuracy_level')));
  assert.match(k, /\*\*accuracy_level\*\*: MatMulNBits `accuracy_level`/);
  assert.match(k, /Values: `0`, `1`/);
});

test('completion: keys from the schema at the cursor, without those already there', async () => {
  const text = 'model: ./model.onnx\nquantize:\n  bits: 4\n  \n';
  const labels = completeRecipe(text, { line: 3, character: 2 }).map((i) => i.label);
  assert.ok(labels.includes('block_size') && labels.includes('overrides'));
  assert.ok(!labels.includes('bits'), 'bits is already set');
  assert.ok(!labels.includes('model'));
  const item = `model: m\nquantize:\n  overrides:\n    - match: a\n      \n`;
  const inItem = completeRecipe(item, { line: 4, character: 6 }).map((i) => i.label);
  assert.ok(
    inItem.includes('bits') && inItem.includes('skip') && !inItem.includes('match') && !inItem.includes('overrides'),
  );
  const top = completeRecipe('model: m\n\n', { line: 1, character: 0 }).map((i) => i.label);
  assert.ok(top.includes('quantize') && top.includes('search') && !top.includes('model'));
});

test('completion: enum values at a value position', () => {
  const text = 'model: m\ntarget:\n  provider: \n';
  assert.deepEqual(
    completeRecipe(text, { line: 2, character: 12 }).map((i) => i.label),
    ['cpu', 'cuda', 'dml', 'coreml', 'webgpu'],
  );
  const bits = 'model: m\nquantize:\n  overrides:\n    - match: x\n      bits: \n';
  assert.deepEqual(
    completeRecipe(bits, { line: 4, character: 12 }).map((i) => i.label),
    ['2', '3', '4', '5', '6', '7', '8', '32'],
  );
  const bool = 'model: m\nquantize:\n  symmetric: \n';
  assert.deepEqual(
    completeRecipe(bool, { line: 2, character: 13 }).map((i) => i.label),
    ['true', 'false'],
  );
});

test('completion: layer names and patterns in match and skip positions', async () => {
  const a = await analyze(RECIPE);
  const ctx = { layers: a.graph!.layers, index: a.index };
  const text = 'model: m\nquantize:\n  overrides:\n    - match: \n  skip:\n    - \n';
  const m = completeRecipe(text, { line: 3, character: 13 }, ctx);
  const labels = m.map((i) => i.label);
  assert.ok(labels.includes('model.layers.*.mlp.down_proj'));
  assert.ok(labels.includes('model.layers.*.self_attn.*'));
  assert.ok(labels.includes('lm_head'));
  assert.ok(labels.includes('model.layers.1.self_attn.q_proj'));
  assert.equal(m.find((i) => i.label === 'model.layers.*.mlp.down_proj')!.detail, 'matches 2 layers');
  const s = completeRecipe(text, { line: 5, character: 6 }, ctx).map((i) => i.label);
  assert.ok(s.includes('lm_head') && s.includes('model.layers.*.mlp.up_proj'));
  assert.deepEqual(layerPatterns([]), ['**']);
});

test('completion: knob names in search.space', () => {
  const text = 'model: m\nsearch:\n  space:\n    quan\n';
  const items = completeRecipe(text, { line: 3, character: 8 });
  assert.ok(items.some((i) => i.label === 'quantize.bits'));
  assert.equal(
    items.find((i) => i.label === 'quantize.bits')!.textEdit!.newText,
    'quantize.bits: [2, 3, 4, 5, 6, 7, 8, 32]',
  );
});

test('quick fixes (typo, bad enum, unmatched glob, block size): applied, comments kept, diagnostic gone', async () => {
  const text = `# my recipe
model: ./model.onnx
target:
  provider: cpux # where it runs
quantize:
  bitz: 4 # default
  block_size: 64
  skip:
    - lm_head
    - model.layers.7.mlp.up_proj # stale
`;
  let cur = text;
  const pick: Record<string, RegExp> = {
    'unknown-key': /^Change 'bitz' to 'bits'$/,
    'invalid-value': /^Change to cpu$/,
    'pattern-no-match': /^Remove the pattern that matches no layer$/,
    'block-size-not-divisor': /^Set block_size to 32$/,
  };
  for (const code of Object.keys(pick)) {
    const a = await analyze(cur);
    const d = a.diagnostics.filter((x) => x.code === code);
    assert.equal(d.length, 1, `${code} before the fix: ${JSON.stringify(a.diagnostics.map((x) => x.code))}`);
    const actions = recipeCodeActions(cur, 'file:///r/haqa.yaml', d);
    assert.ok(actions.length >= 1, code);
    const chosen = actions.find((x) => pick[code].test(x.title));
    assert.ok(chosen, `${code}: ${actions.map((x) => x.title)}`);
    cur = applyEdits(cur, chosen.edit!.changes!['file:///r/haqa.yaml']);
    const after = await analyze(cur);
    assert.ok(!after.diagnostics.some((x) => x.code === code), `${code} after: ${cur}`);
  }
  assert.deepEqual(parse(cur), {
    model: './model.onnx',
    target: { provider: 'cpu' },
    quantize: { bits: 4, block_size: 32, skip: ['lm_head'] },
  });
  for (const c of ['# my recipe', '# where it runs', '# default']) assert.ok(cur.includes(c), c);
  assert.deepEqual((await analyze(cur)).diagnostics, []);
});

test('a pattern with a near miss offers the closest layer name first, and removal', async () => {
  const text = 'model: ./model.onnx\nquantize:\n  skip:\n    - lm_haed\n';
  const d = (await analyze(text)).diagnostics.filter((x) => x.code === 'pattern-no-match');
  const titles = recipeCodeActions(text, 'u', d).map((x) => [x.title, !!x.isPreferred]);
  assert.deepEqual(titles, [
    ['Change to lm_head', true],
    ['Remove the pattern that matches no layer', false],
  ]);
});

test('quick fix: accuracy_level 4 for slow 8-bit kernels', async () => {
  const text = 'model: ./model.onnx\nquantize:\n  bits: 8 # all eight\n';
  const a = await analyze(text);
  const d = a.diagnostics.filter((x) => x.code === 'slow-8bit-kernel');
  const [act] = recipeCodeActions(text, 'u', d);
  assert.equal(act.title, 'Set accuracy_level: 4 (int8 compute)');
  const fixed = applyEdits(text, act.edit!.changes!.u);
  assert.deepEqual(parse(fixed).quantize, { bits: 8, accuracy_level: 4 });
  assert.deepEqual((await analyze(fixed)).diagnostics, []);
});

test('code actions ignore diagnostics from other sources and stale paths', () => {
  assert.deepEqual(
    recipeCodeActions('model: m\n', 'u', [
      {
        range: { start: { line: 0, character: 0 }, end: { line: 0, character: 1 } },
        message: 'x',
        source: 'other',
        data: { fix: 'remove', path: ['model'] },
      },
    ]),
    [],
  );
  const stale = recipeCodeActions('model: m\n', 'u', [
    {
      range: { start: { line: 0, character: 0 }, end: { line: 0, character: 1 } },
      message: 'x',
      source: 'haqa',
      code: 'pattern-no-match',
      data: { fix: 'remove', path: ['quantize', 'skip', 4] },
    },
  ]);
  assert.deepEqual(stale, []);
});
