// Issue 21 item 4: a mistyped glob gets nearest-pattern fixes (wildcards kept) that replace only the
// pattern text, so the override keeps its other keys and its comment; removal says what it drops.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { parse } from 'yaml';
import type { TextEdit } from 'vscode-languageserver-types';
import { analyzeRecipe } from '../../server/src/config/check';
import { ModelCache } from '../../server/src/config/modelCache';
import { recipeCodeActions } from '../../server/src/config/actions';
import { LineIndex, messageText } from '../../server/src/config/diagnostics';
import { nearestPatterns } from '../../server/src/config/nearest';
import { completeRecipe } from '../../server/src/config/complete';
import { tempDir } from '../helpers/tinyModel';
import { writeLlamaShapes, SMALL } from '../lsp/llamaShapes';

const dir = tempDir('haqa-globfix-');
const models = new ModelCache();
const ready = writeLlamaShapes(dir, SMALL);
const analyze = async (text: string) => (await ready, analyzeRecipe(text, path.join(dir, 'haqa.yaml'), { models }));
function applyEdits(text: string, edits: TextEdit[]): string {
  const li = new LineIndex(text);
  return [...edits]
    .sort((a, b) => li.offset(b.range.start) - li.offset(a.range.start))
    .reduce((t, e) => t.slice(0, li.offset(e.range.start)) + e.newText + t.slice(li.offset(e.range.end)), text);
}

test('nearestPatterns keeps wildcards and ranks by distance', () => {
  const names = [
    'model.layers.0.mlp.down_proj',
    'model.layers.1.mlp.down_proj',
    'model.layers.0.mlp.up_proj',
    'lm_head',
  ];
  assert.deepEqual(nearestPatterns('model.layers.*.mlp.down_prj', names), ['model.layers.*.mlp.down_proj']);
  assert.deepEqual(nearestPatterns('lm_haed', names), ['lm_head']);
  assert.deepEqual(nearestPatterns('model.layers.*.mlp.up_prj', names)[0], 'model.layers.*.mlp.up_proj');
  assert.deepEqual(nearestPatterns('something.else.entirely', names), []);
});

const TEXT = `model: ./model.onnx
quantize:
  bits: 4
  overrides:
    # the down projections need more bits
    - match: model.layers.*.mlp.down_prj
      bits: 8
      block_size: 64
`;

test('a mistyped override glob: the fix renames only the pattern; bits, block_size and the comment stay', async () => {
  const d = (await analyze(TEXT)).diagnostics.filter((x) => x.code === 'pattern-no-match');
  assert.equal(d.length, 1);
  assert.match(messageText(d[0]), /did you mean 'model\.layers\.\*\.mlp\.down_proj'/);
  const actions = recipeCodeActions(TEXT, 'u', d);
  assert.equal(actions[0].title, 'Change to model.layers.*.mlp.down_proj');
  assert.equal(actions[0].isPreferred, true);
  const fixed = applyEdits(TEXT, actions[0].edit!.changes!.u);
  assert.deepEqual(parse(fixed).quantize.overrides, [
    { match: 'model.layers.*.mlp.down_proj', bits: 8, block_size: 64 },
  ]);
  assert.ok(fixed.includes('# the down projections need more bits'));
  assert.equal(fixed, TEXT.replace('down_prj', 'down_proj'), 'nothing else in the text changes');
  assert.ok(!(await analyze(fixed)).diagnostics.some((x) => x.code === 'pattern-no-match'));
  const remove = actions.find((a) => /^Remove/.test(a.title))!;
  assert.equal(
    remove.title,
    'Remove this override (its pattern matches no layer)',
    'removal says it drops the whole override',
  );
});

test('a skip entry: the removal removes only that pattern', async () => {
  const text = 'model: ./model.onnx\nquantize:\n  bits: 4\n  skip:\n    - lm_head\n    - zzz_nothing_like_it\n';
  const d = (await analyze(text)).diagnostics.filter((x) => x.code === 'pattern-no-match');
  const [act] = recipeCodeActions(text, 'u', d);
  assert.equal(act.title, 'Remove the pattern that matches no layer');
  assert.deepEqual(parse(applyEdits(text, act.edit!.changes!.u)).quantize, { bits: 4, skip: ['lm_head'] });
});

test('layer completion on an empty match: right after the colon (with the space YAML needs) and after it', async () => {
  const good = (await analyze(TEXT)).graph!;
  for (const [line, insert] of [
    ['    - match:', ' '],
    ['    - match: ', ''],
  ] as const) {
    const text = `model: ./model.onnx\nquantize:\n  overrides:\n${line}\n`;
    const items = completeRecipe(text, { line: 3, character: line.length }, { layers: good.layers });
    const down = items.find((i) => i.label === 'model.layers.*.mlp.down_proj');
    assert.ok(down, `${JSON.stringify(line)}: ${items.map((i) => i.label).slice(0, 5)}`);
    assert.equal((down!.textEdit as TextEdit).newText, `${insert}model.layers.*.mlp.down_proj`);
  }
});
