// The recipe highlighting grammar: valid JSON, the scope name package.json contributes, and each rule
// matching what it should on real recipe lines (JavaScript RegExp accepts these Oniguruma patterns).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.join(__dirname, '..', '..');
const grammar = JSON.parse(fs.readFileSync(path.join(root, 'syntaxes', 'haqa.injection.tmLanguage.json'), 'utf8'));
const rx = (name: string) => new RegExp(grammar.repository[name].match, 'g');
const all = (name: string, line: string) => [...line.matchAll(rx(name))].map((m) => (name === 'key' ? m[1] : m[0]));

test('scope name and injection target match the manifest', () => {
  assert.equal(grammar.scopeName, 'haqa.recipe.injection');
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  const g = pkg.contributes.grammars.find((x: { scopeName: string }) => x.scopeName === grammar.scopeName);
  assert.ok(g, 'package.json contributes this grammar');
  assert.deepEqual(g.injectTo, ['source.yaml']);
  assert.match(grammar.injectionSelector, /source\.yaml/);
  for (const p of grammar.patterns) assert.ok(grammar.repository[p.include.slice(1)], p.include);
});

test('keys, globs, N:M, sizes and knobs are recognised; plain words are not', () => {
  assert.deepEqual(all('key', '  block_size: 32'), ['block_size']);
  assert.deepEqual(all('key', '    - match: model.layers.*.mlp.down_proj'), ['match']);
  assert.deepEqual(all('key', '  not_a_key: 1'), []);
  assert.deepEqual(all('key', '    - {match: x, bits: 8}'), ['match', 'bits']);
  assert.deepEqual(all('key', '              rank: 8'), ['rank']);
  assert.deepEqual(all('key', '  model_path: x'), []);
  assert.deepEqual(all('glob', '    - match: model.layers.*.mlp.down_proj'), ['model.layers.*.mlp.down_proj']);
  assert.deepEqual(all('glob', '  skip: [lm_head, "**", model.layers.0.self_attn.*]'), [
    '**',
    'model.layers.0.self_attn.*',
  ]);
  assert.deepEqual(all('glob', '  metric: decode_latency'), []);
  assert.deepEqual(all('nm', '      pattern: "2:4"'), ['2:4']);
  assert.deepEqual(all('nm', '  time: 12:30:45'), []);
  assert.deepEqual(all('size', '  memory_limit: 4GiB # or 512 MB'), ['4GiB', '512 MB']);
  const knob = rx('knob').exec('    quantize.bits@model.layers.*.mlp.down_proj: [4, 8]')!;
  assert.deepEqual([knob[1], knob[3], knob[4], knob[5]], ['quantize', 'bits', '@', 'model.layers.*.mlp.down_proj']);
  assert.ok(rx('knob').exec('    runtime.intra_op_threads: [1, 2]'));
  assert.deepEqual(all('percent', '    max_ppl_increase: 5%'), ['5%']);
});

test("the key rule is zero-width around the key: YAML's dash, brace and comma are left to the YAML grammar", () => {
  for (const line of [
    '    - match: model.layers.*.mlp.down_proj',
    '    - {match: x, bits: 8}',
    '  block_size: 32',
    'quantize:',
  ]) {
    for (const m of line.matchAll(rx('key')))
      assert.equal(m[0], m[1], `${line}: the match is only the key, got ${JSON.stringify(m[0])}`);
  }
  assert.deepEqual(all('key', '    - {match: x, bits: 8}'), ['match', 'bits']);
});
