// Never throw: random damage to a realistic recipe (deleted, duplicated, swapped characters, binary
// bytes, odd indentation) goes through the checks, hover, completion, code actions and edits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { analyzeRecipe } from '../../server/src/config/check';
import { analyzeHfConfig } from '../../server/src/config/hfCheck';
import { ModelCache } from '../../server/src/config/modelCache';
import { hoverRecipe } from '../../server/src/config/hover';
import { completeRecipe } from '../../server/src/config/complete';
import { recipeCodeActions } from '../../server/src/config/actions';
import { rng, tempDir } from '../helpers/tinyModel';
import { writeLlamaShapes, SMALL } from '../lsp/llamaShapes';

const example = fs.readFileSync(path.join(__dirname, '..', '..', 'examples', 'tiny-llama', 'haqa.yaml'), 'utf8');
const PIECES = [
  '\n',
  ' ',
  '  ',
  '- ',
  ': ',
  '{',
  '}',
  '[',
  ']',
  '"',
  "'",
  '#',
  '&a ',
  '*a',
  '!!binary ',
  '\u0000',
  '\t',
  '---\n',
  '**',
  '@',
  '2:4',
  '9',
  '-1',
  'null',
  '~',
  '|\n',
  '>\n',
  '\uFFFD',
  '😀',
];

function mutate(text: string, r: () => number): string {
  let t = text;
  const n = 1 + Math.floor(r() * 4);
  for (let i = 0; i < n; i++) {
    const at = Math.floor(r() * (t.length + 1));
    const op = Math.floor(r() * 4);
    if (op === 0) t = t.slice(0, at) + t.slice(at + 1 + Math.floor(r() * 20));
    else if (op === 1) t = t.slice(0, at) + PIECES[Math.floor(r() * PIECES.length)] + t.slice(at);
    else if (op === 2) t = t.slice(0, at) + t.slice(at, at + 40) + t.slice(at);
    else {
      const lines = t.split('\n');
      const a = Math.floor(r() * lines.length),
        b = Math.floor(r() * lines.length);
      [lines[a], lines[b]] = [lines[b], lines[a]];
      t = lines.join('\n');
    }
  }
  return t;
}

test('300 damaged recipes: checks, hover, completion and fixes never throw', async () => {
  const dir = tempDir('haqa-fuzz-');
  await writeLlamaShapes(dir, SMALL);
  fs.mkdirSync(path.join(dir, 'data'));
  const models = new ModelCache();
  const r = rng(2024);
  let withDiagnostics = 0;
  let prev;
  for (let i = 0; i < 300; i++) {
    const text = mutate(example, r);
    const a = await analyzeRecipe(text, path.join(dir, 'haqa.yaml'), { models }, i % 2 ? prev : undefined);
    prev = a;
    if (a.diagnostics.length) withDiagnostics++;
    for (const d of a.diagnostics) {
      assert.ok(d.range.start.line >= 0 && d.range.end.line >= d.range.start.line, JSON.stringify(d));
      assert.equal(d.source, 'haqa');
    }
    const lines = text.split('\n');
    for (let k = 0; k < 5; k++) {
      const line = Math.floor(r() * (lines.length + 2));
      const pos = { line, character: Math.floor(r() * ((lines[line]?.length ?? 0) + 3)) };
      hoverRecipe(a, pos);
      completeRecipe(text, pos, { layers: a.graph?.layers, index: a.index });
    }
    recipeCodeActions(text, 'u', a.diagnostics);
  }
  assert.ok(withDiagnostics > 150, `most damaged recipes are flagged (${withDiagnostics})`);
});

test('damaged config.json never throws', async () => {
  const models = new ModelCache();
  const cfg = fs.readFileSync(path.join(__dirname, '..', '..', 'examples', 'configs', 'Qwen2.5-0.5B.json'), 'utf8');
  const r = rng(99);
  for (let i = 0; i < 200; i++) await analyzeHfConfig(mutate(cfg, r), '/nonexistent/config.json', { models });
});
