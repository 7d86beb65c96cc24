// YAML with positions: paths map to exact ranges, and the incremental patch of a one-value edit gives
// exactly what a full parse gives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseYaml, rangeOf, pathAt, JsonPath, ParsedYaml } from '../../server/src/config/parse';
import { LineIndex } from '../../server/src/config/diagnostics';
import { rng } from '../helpers/tinyModel';

const TEXT = `# header
model: ./model.onnx # comment
quantize:
  bits: 4
  skip: [lm_head, "model.layers.0.*"]
  overrides:
    - match: model.layers.1.mlp.down_proj
      bits: 8
    - {match: x, block_size: 64}
`;

test('rangeOf: key and value ranges of nested paths; missing paths fall back to the deepest ancestor key', () => {
  const p = parseYaml(TEXT);
  const li = new LineIndex(TEXT);
  const text = (r: ReturnType<typeof rangeOf>) => TEXT.slice(li.offset(r.start), li.offset(r.end));
  assert.equal(text(rangeOf(p, ['quantize', 'overrides', 0, 'bits'], 'key')), 'bits');
  assert.equal(text(rangeOf(p, ['quantize', 'overrides', 0, 'bits'])), '8');
  assert.equal(text(rangeOf(p, ['quantize', 'overrides', 1, 'block_size'])), '64');
  assert.equal(text(rangeOf(p, ['quantize', 'skip', 1])), '"model.layers.0.*"');
  assert.equal(text(rangeOf(p, ['model'])), './model.onnx');
  assert.equal(text(rangeOf(p, ['quantize', 'overrides', 1, 'nothing'])), '{match: x, block_size: 64}');
  assert.equal(text(rangeOf(p, ['target', 'provider'])), 'model', 'nothing of the path exists: the first key');
  assert.deepEqual(pathAt(p.doc, TEXT.indexOf('down_proj'))?.path, ['quantize', 'overrides', 0, 'match']);
  assert.equal(pathAt(p.doc, TEXT.indexOf('bits: 8'))?.onKey, true);
});

function allPaths(v: unknown, base: JsonPath = []): JsonPath[] {
  if (Array.isArray(v)) return [base, ...v.flatMap((x, i) => allPaths(x, [...base, i]))];
  if (v && typeof v === 'object') return [base, ...Object.entries(v).flatMap(([k, x]) => allPaths(x, [...base, k]))];
  return [base];
}

function bigRecipe(n: number): string {
  const lines = ['model: ./model.onnx', 'quantize:', '  bits: 4 # default', '  overrides:'];
  for (let i = 0; i < n; i++)
    lines.push(
      `    - match: model.layers.${i}.mlp.down_proj`,
      `      bits: ${i % 2 ? 4 : 8}   # why`,
      '      block_size: 32',
    );
  lines.push('target:', '  memory_limit: 1GiB', '');
  return lines.join('\n');
}

test('a one-value edit patches the previous tree and equals a full parse (values and every range)', () => {
  let text = bigRecipe(40);
  let prev: ParsedYaml = parseYaml(text);
  const r = rng(7);
  const replacements = ['8', '16', '128', '4', 'gptq', '0.5', 'x.y.z', '2:4', '5%', '1024', 'true', '~', '-1'];
  let patched = 0;
  for (let step = 0; step < 60; step++) {
    const lines = text.split('\n');
    const candidates = lines.map((l, i) => [l, i] as const).filter(([l]) => /: \S/.test(l) && !l.includes('{'));
    const [line, i] = candidates[Math.floor(r() * candidates.length)];
    const m = /^(.*?: )(\S+)(.*)$/.exec(line)!;
    lines[i] = m[1] + replacements[Math.floor(r() * replacements.length)] + m[3];
    text = lines.join('\n');
    const inc = parseYaml(text, prev);
    const full = parseYaml(text);
    assert.deepEqual(inc.value, full.value);
    assert.deepEqual(inc.diagnostics, full.diagnostics);
    for (const p of allPaths(full.value)) {
      for (const kind of ['key', 'value', 'entry'] as const)
        assert.deepEqual(rangeOf(inc, p, kind), rangeOf(full, p, kind), JSON.stringify(p));
    }
    if (inc.incremental) patched++;
    prev = inc;
  }
  assert.ok(patched > 30, `most edits take the fast path (${patched})`);
});

test('lines added to and removed from a sequence item re-parse only that item, equal to a full parse', () => {
  let text = bigRecipe(30).replace(/block_size: 32/g, (m, o) => (o % 3 === 0 ? 'block_size: 32 # c' : m));
  let prev: ParsedYaml = parseYaml(text);
  const r = rng(11);
  const extra = [
    '      symmetric: false',
    '      accuracy_level: 4 # fast',
    '      method: gptq',
    '      # a comment line',
    '',
    '      skip: true',
    '    - match: added.layer',
    '  weird: 1',
    '      nested:\n        deeper: 2',
  ];
  let patched = 0;
  for (let step = 0; step < 80; step++) {
    const lines = text.split('\n');
    const i = 4 + Math.floor(r() * (lines.length - 6));
    if (r() < 0.5 && lines.length > 10) lines.splice(i, 1);
    else lines.splice(i, 0, extra[Math.floor(r() * extra.length)]);
    const before = text;
    text = lines.join('\n');
    const inc = parseYaml(text, prev);
    const full = parseYaml(text);
    assert.deepEqual(inc.value, full.value, text);
    assert.deepEqual(
      inc.diagnostics.map((d) => d.code),
      full.diagnostics.map((d) => d.code),
    );
    if (full.diagnostics.length) {
      // A broken document: go back to the last good one so the walk keeps exercising the fast path.
      text = before;
      prev = parseYaml(text);
      continue;
    }
    for (const p of allPaths(full.value)) {
      for (const kind of ['key', 'value', 'entry'] as const)
        assert.deepEqual(rangeOf(inc, p, kind), rangeOf(full, p, kind), `${JSON.stringify(p)} ${kind} at step ${step}`);
    }
    if (inc.incremental) patched++;
    prev = inc;
  }
  assert.ok(patched > 20, `many structural edits take the item fast path (${patched})`);
});

test('edits that can change structure take the full parse', () => {
  const p0 = parseYaml(TEXT);
  for (const edit of [
    TEXT.replace('bits: 4', 'bits: [4, 8]'),
    TEXT.replace('bits: 4', 'bits: "4"'),
    TEXT.replace('  bits: 4\n', '  bits: 4\n  block_size: 32\n'), // not inside a sequence item
    TEXT.replace('bits: 4', 'bits: 4 # now a comment'),
    TEXT.replace('bits: 4', 'bits: *a'),
  ]) {
    const p = parseYaml(edit, parseYaml(TEXT));
    assert.ok(!p.incremental, edit);
    assert.deepEqual(p.value, parseYaml(edit).value);
  }
  // A parse is patched at most once.
  const p1 = parseYaml(TEXT.replace('bits: 4', 'bits: 8'), p0);
  assert.ok(p1.incremental);
  assert.ok(!parseYaml(TEXT.replace('bits: 4', 'bits: 2'), p0).incremental);
});
